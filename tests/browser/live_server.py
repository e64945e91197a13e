"""The app and a fake upstream on their own event loop in a background thread.

Playwright's sync API drives the browser from the test's thread; the server must keep
serving meanwhile, so it runs on a loop of its own. Tests touch server-side objects only
through :meth:`LiveServer.call`, which runs a function on that loop and waits for it.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tests.conftest import Running, start_app
from tests.fake_upstream import FakeUpstream, Received, Script, sse_stream
from tornado_sse.config import Settings

T = TypeVar("T")


class LiveServer:
    def __init__(self, **settings: Any) -> None:
        self.settings_changes = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="live-server", daemon=True)
        self.fake: FakeUpstream
        self.running: Running

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> LiveServer:
        self.thread.start()
        self.call(self._start)
        return self

    async def _start(self) -> None:
        self.fake = FakeUpstream().start()
        settings = Settings(upstream_url=self.fake.url, api_key="sk-test-SECRET-browser-key",
                            max_streams=50).replace(**self.settings_changes)
        self.running, _ = start_app(settings)

    def stop(self) -> None:
        self.call(self._stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _stop(self) -> None:
        await self.running.server.close()
        await self.fake.stop()
        for server in self.running.server.servers:
            await server.close_all_connections()
        await asyncio.sleep(0.05)  # let closed transports finish on this loop

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 10) -> Any:
        """Run ``fn(*args)`` (awaited if it returns an awaitable) on the server's loop."""
        async def run() -> Any:
            result = fn(*args)
            if inspect.isawaitable(result):
                result = await result
            return result
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def url(self, path: str = "/") -> str:
        return self.running.url(path)

    # -- the fake upstream, from the test's thread ---------------------------------------

    def reset(self) -> None:
        def reset() -> None:
            self.fake.scripts.clear()
            self.fake.received.clear()
        self.call(reset)

    def queue(self, *scripts: Script) -> None:
        self.call(self.fake.queue, *scripts)

    def received(self) -> list[Received]:
        return list(self.call(lambda: list(self.fake.received)))

    def active_streams(self) -> int:
        return int(self.call(lambda: self.running.relay.active))

    def drop_client_connections(self) -> None:
        """Cut every browser connection from the server side, as a network failure would."""
        async def cut() -> None:
            for server in self.running.server.servers:
                await server.close_all_connections()
        self.call(cut)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0,
                   what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not self.call(predicate):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.02)


def paced(deltas: list[str], pause: float = 0.05, *, hang: bool = False, **kw: Any) -> Script:
    """A well-formed OpenAI stream of ``deltas``, one event per write, ``pause`` apart.
    With ``hang``, the stream stops after the deltas (no finish, no [DONE]) and waits."""
    data = sse_stream(deltas, **kw)
    events = [e + b"\n\n" for e in data.split(b"\n\n") if e]
    if hang:
        events = events[:1 + len(deltas)]  # the role chunk, then the deltas
    body: list[bytes | float] = []
    for event in events:
        body += [event, pause]
    return Script(body=body, hang=hang)
