"""The porting API (SSEHandler) and examples/thinkphp_port.py, against the fake upstream."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar
from urllib.parse import quote

import pytest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from tests.conftest import Running
from tests.fake_upstream import FakeUpstream, Script, chunk_json, sse_stream
from tests.sse_client import Event, request
from tornado_sse.sse_handler import SSEHandler

ROOT = Path(__file__).resolve().parents[2]
DELTAS = ["你好", "，世界", "! 🌍🚀", " emoji 👩‍👩‍👧", " and ascii", "。"]


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("thinkphp_port", ROOT / "examples" / "thinkphp_port.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLE = load_example()


class Mounted:
    """An extra Application on the same relay, on its own loopback port."""

    def __init__(self, app: Application) -> None:
        sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        self.server = HTTPServer(app)
        self.server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def mount(io_loop: Any) -> Iterator[Any]:
    mounted: list[Mounted] = []

    def factory(app: Application) -> Mounted:
        mounted.append(Mounted(app))
        return mounted[-1]

    yield factory
    for m in mounted:
        m.server.stop()
        io_loop.run_sync(m.server.close_all_connections)


def normalized(events: list[Event], stream_id: str) -> list[tuple[str, str, str | None]]:
    out = []
    for e in events:
        out.append((e.event, e.data.replace(stream_id, "SID"),
                    None if e.id is None else e.id.replace(stream_id, "SID")))
    return out


def q(text: str) -> str:
    return "/ai/streamChat?question=" + quote(text)


def hang_after(deltas: list[str]) -> bytes:
    return b"".join(b"data: " + json.dumps(chunk_json(d)).encode() + b"\n\n" for d in deltas)


SCRIPTS = {
    "deltas_byte_split": lambda: Script.stream(sse_stream(DELTAS), piece=1),
    "finish_length": lambda: Script.stream(sse_stream(["a", "b"], finish="length")),
    "usage": lambda: Script.stream(sse_stream(["a"], usage={"prompt_tokens": 1, "completion_tokens": 1,
                                                            "total_tokens": 2})),
    "upstream_500": lambda: Script(status=500, content_type="application/json", body=[b'{"error":"x"}']),
    "drop_mid_stream": lambda: Script(body=[hang_after(["one", "two"]), 0.05], drop=True),
    "in_band_error": lambda: Script(body=[hang_after(["partial"])
                                          + b'data: {"error": {"message": "boom"}}\n\n'], hang=True),
    "first_token_timeout": lambda: Script(hang=True),
}


@pytest.mark.parametrize("case", sorted(SCRIPTS))
async def test_port_sends_the_same_events_as_the_main_endpoint(
        make_app: Any, settings: Any, fake: FakeUpstream, mount: Any, case: str) -> None:
    if case == "first_token_timeout":
        settings = settings.replace(first_token_timeout=0.5)
    app: Running = make_app(settings)
    port = mount(EXAMPLE.make_app(app.relay))
    results = []
    for base in (app, port):
        fake.queue(SCRIPTS[case]())
        resp = await request(base.url(q("同一个问题")))
        assert resp.status == 200
        events = await resp.events()
        assert events[1].event == "start"
        stream_id = events[1].json["stream"]
        assert resp.headers["x-stream-id"] == stream_id
        assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert resp.headers["cache-control"] == "no-cache"
        assert resp.headers["x-accel-buffering"] == "no"
        assert resp.raw.endswith(b"\n\n")
        results.append(normalized(events, stream_id))
    main, ported = results
    assert ported == main
    assert main[-1][0] == "end"
    # and the upstream was asked the same thing, with the port's temperature
    assert fake.received[1].json["messages"] == fake.received[0].json["messages"]
    assert fake.received[1].json["stream"] is True and fake.received[1].json["temperature"] == 0.7


async def test_port_refuses_bad_input_and_overload_as_json(make_app: Any, settings: Any,
                                                           fake: FakeUpstream, mount: Any) -> None:
    app: Running = make_app(settings.replace(max_streams=1))
    port = mount(EXAMPLE.make_app(app.relay))
    resp = await request(port.url("/ai/streamChat"))
    assert resp.status == 400
    assert json.loads(resp.raw)["error"]["code"] == "missing_question"
    fake.queue(Script(hang=True))
    held = await request(port.url(q("held")))
    await held.next_event()
    resp = await request(port.url(q("one too many")))
    assert resp.status == 503 and resp.headers["retry-after"] == "1"
    assert json.loads(resp.raw)["error"]["code"] == "overloaded"


async def test_port_disconnect_aborts_upstream_within_1s(app: Running, fake: FakeUpstream,
                                                        mount: Any) -> None:
    port = mount(EXAMPLE.make_app(app.relay))
    fake.queue(Script.stream(sse_stream(["a"] * 200), piece=200, pause=0.05))
    resp = await request(port.url(q("x")))
    while (ev := await resp.next_event()) is not None and ev.event != "update":
        pass
    resp.close()
    t0 = time.monotonic()
    await asyncio.wait_for(fake.received[0].closed.wait(), 5)
    assert fake.received[0].closed_at is not None and fake.received[0].closed_at - t0 < 1.0
    assert not fake.received[0].finished
    await asyncio.sleep(0.05)
    assert app.relay.active == 0


class Custom(SSEHandler):
    """Exercises send/comment/heartbeats/disconnected without an upstream."""

    seen: ClassVar[list[bool]] = []

    async def get(self) -> None:
        self.start_sse()
        self.send("note", "line one\nline two\n\nevent: forged")
        self.send(None, {"emoji": "🚀", "zh": "你好"}, id="7")
        self.comment("just a comment")
        for _ in range(int(self.get_query_argument("waits", "5"))):
            await asyncio.sleep(0.1)
        Custom.seen.append(self.disconnected)
        self.send("done", "")


async def test_sse_handler_send_comment_heartbeat(make_app: Any, settings: Any, mount: Any) -> None:
    app: Running = make_app(settings.replace(heartbeat=0.15))
    site = mount(Application([(r"/x", Custom, {"relay": app.relay})]))
    resp = await request(site.url("/x"))
    assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
    events = await resp.events(with_comments=True)
    assert events[0].event == "note"
    # newlines in data cannot forge an event: still one event, data lines joined back
    assert events[0].data == "line one\nline two\n\nevent: forged"
    assert events[1].event == "message" and events[1].id == "7"
    assert events[1].json == {"emoji": "🚀", "zh": "你好"}
    assert '"你好"'.encode() in resp.raw  # not \\u escaped
    assert events[2].comment == "just a comment"
    assert [e.comment for e in events[3:-1]].count("heartbeat") >= 1
    assert events[-1].event == "done" and events[-1].data == ""
    assert Custom.seen[-1] is False


async def test_sse_handler_disconnected_turns_true(make_app: Any, settings: Any, mount: Any) -> None:
    app: Running = make_app(settings)
    site = mount(Application([(r"/x", Custom, {"relay": app.relay})]))
    before = len(Custom.seen)
    resp = await request(site.url("/x?waits=5"))
    await resp.next_event()
    resp.close()
    for _ in range(100):
        if len(Custom.seen) > before:
            break
        await asyncio.sleep(0.02)
    assert Custom.seen[-1] is True


class Buggy(SSEHandler):
    async def get(self) -> None:
        call = self.open_upstream({"messages": [{"role": "user", "content": "x"}]})

        def on_delta(text: str) -> None:
            raise RuntimeError("bug in the port")

        try:
            await call.stream(on_delta)
        except RuntimeError:
            self.send("end", {"reason": "error"})


async def test_callback_bug_aborts_the_upstream(app: Running, fake: FakeUpstream, mount: Any) -> None:
    site = mount(Application([(r"/x", Buggy, {"relay": app.relay})]))
    fake.queue(Script.stream(sse_stream(["a"] * 100), piece=100, pause=0.05))
    resp = await request(site.url("/x"))
    events = await resp.events()
    assert events[-1].json == {"reason": "error"}
    await asyncio.wait_for(fake.received[0].closed.wait(), 5)
    assert not fake.received[0].finished


def test_example_controller_is_about_thirty_lines() -> None:
    source = (ROOT / "examples" / "thinkphp_port.py").read_text()
    start = source.index("class AiController")
    end = source.index("def make_app")
    lines = [ln for ln in source[start:end].splitlines() if ln.strip()]
    assert len(lines) <= 35, len(lines)
