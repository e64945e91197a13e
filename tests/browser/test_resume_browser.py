"""A real browser's EventSource survives a cut connection: Chromium reconnects on its
own with ``Last-Event-ID`` and the answer continues where it stopped, with no second
upstream call. The test cuts the connection with a small TCP proxy between the
browser and the server, so the server is exactly the one users run.

Uses this package's ``browser``/``page`` fixtures (headless Debian Chromium, skipped
with a message if it is missing) and its live server on a background loop; the proxy
runs on that loop too.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.handlers.test_resume import ANSWER, Q, paced

from .live_server import LiveServer

PAGE = "<!doctype html><meta charset=utf-8><title>resume test</title>"
OPEN = """url => {
  window.updates = []; window.opens = 0; window.errors = 0; window.ended = null;
  const es = new EventSource(url);
  es.onopen = () => { window.opens += 1; };
  es.onerror = () => { window.errors += 1; };  // a cut: the browser will reconnect
  es.addEventListener('update', e => {
    window.updates.push([e.lastEventId, JSON.parse(e.data).content]);
  });
  es.addEventListener('end', e => { window.ended = JSON.parse(e.data); es.close(); });
}"""


class CuttingProxy:
    """Forwards loopback TCP to ``target``; :meth:`cut` drops every open connection."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.heads: list[bytes] = []  # the first bytes of each connection: its request
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._writers += [writer, up_writer]
        index = len(self.heads)
        self.heads.append(b"")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: bool) -> None:
            try:
                while data := await src.read(65536):
                    if record and len(self.heads[index]) < 4096:
                        self.heads[index] += data
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()  # no FIN handshake: a network blip
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def test_eventsource_reconnects_and_resumes(page: Any, live: LiveServer) -> None:
    # The live server (tests/browser/live_server.py) sends retry: 200 ms, so the
    # browser's own reconnect comes quickly, and keeps the default resume window.
    proxy = CuttingProxy(live.running.port)
    live.call(proxy.start)
    origin = f"http://127.0.0.1:{proxy.port}"
    try:
        live.queue(paced(pause=0.06))  # 30 deltas over ~2 s
        page.route(origin + "/resume-test.html",
                   lambda route: route.fulfill(content_type="text/html", body=PAGE))
        page.goto(origin + "/resume-test.html")
        page.evaluate(OPEN, Q)
        page.wait_for_function("window.updates.length >= 5", timeout=10_000)
        live.call(proxy.cut)
        page.wait_for_function("window.ended !== null", timeout=20_000)
        result = page.evaluate("""() => ({
            text: window.updates.map(u => u[1]).join(''),
            ids: window.updates.map(u => u[0]),
            opens: window.opens, errors: window.errors, end: window.ended})""")
    finally:
        live.call(proxy.close)
    assert result["text"] == ANSWER  # the whole answer, once, in order
    assert result["end"] == {"reason": "stop"}
    assert result["opens"] == 2 and result["errors"] >= 1  # it did reconnect, by itself
    seqs = [int(i.split(":")[1]) for i in result["ids"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    requests = [h for h in proxy.heads if h.startswith(b"GET /ai/streamChat")]
    assert len(requests) == 2
    resumed_from = [line for line in requests[1].split(b"\r\n")
                    if line.lower().startswith(b"last-event-id:")]
    assert resumed_from, requests[1]
    last_seen = resumed_from[0].split(b":", 1)[1].strip().decode()
    assert last_seen in result["ids"] and last_seen != result["ids"][-1]  # cut mid-answer
    assert len(live.received()) == 1  # the question went upstream once
