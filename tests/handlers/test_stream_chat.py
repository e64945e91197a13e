"""/ai/streamChat against a fake upstream that speaks real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import quote

import pytest

from tests.conftest import Running
from tests.fake_upstream import FakeUpstream, Script, chunk_json, sse_stream
from tests.sse_client import contents, request

DELTAS = ["你好", "，世界", "! 🌍🚀", " emoji 👩‍👩‍👧", " and ascii", "。"]


def q(text: str) -> str:
    return "/ai/streamChat?question=" + quote(text)


async def test_headers_and_event_sequence(app: Running, fake: FakeUpstream) -> None:
    fake.queue(Script.stream(sse_stream(DELTAS)))
    resp = await request(app.url(q("hi")))
    assert resp.status == 200
    assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert resp.headers["cache-control"] == "no-cache"
    assert resp.headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in resp.headers
    events = await resp.events()
    assert events[0].event == "retry" and events[0].data == "3000"
    assert events[1].event == "start"
    stream_id = events[1].json["stream"]
    assert resp.headers["x-stream-id"] == stream_id
    updates = [e for e in events if e.event == "update"]
    assert [e.json["content"] for e in updates] == DELTAS
    assert [e.id for e in updates] == [f"{stream_id}:{i}" for i in range(1, len(DELTAS) + 1)]
    assert events[-1].event == "end" and events[-1].json == {"reason": "stop"}
    # non-ASCII kept as is, like PHP's JSON_UNESCAPED_UNICODE
    assert "你好".encode() in resp.raw
    assert resp.raw.endswith(b"\n\n")


async def test_upstream_request_shape(app: Running, fake: FakeUpstream) -> None:
    resp = await request(app.url(q("问题")))
    await resp.events()
    sent = fake.received[0]
    assert sent.json["stream"] is True
    assert sent.json["messages"] == [{"role": "user", "content": "问题"}]
    assert sent.headers["Authorization"] == "Bearer sk-test-SECRET-key-123456"


@pytest.mark.parametrize("variant", ["one_byte", "crlf", "cr", "keepalive", "bom", "big_pieces"])
async def test_contents_survive_any_framing(app: Running, fake: FakeUpstream, variant: str) -> None:
    eol = {"crlf": "\r\n", "cr": "\r"}.get(variant, "\n")
    data = sse_stream(DELTAS, eol=eol, keepalive=variant == "keepalive")
    if variant == "bom":
        data = b"\xef\xbb\xbf" + data
    piece = {"one_byte": 1, "big_pieces": 7}.get(variant)
    pause = 0.001 if variant == "one_byte" else 0.0
    fake.queue(Script.stream(data, piece=piece, pause=pause))
    resp = await request(app.url(q("x")))
    events = await resp.events()
    assert contents(events) == "".join(DELTAS)
    assert events[-1].json == {"reason": "stop"}


async def test_finish_reason_maps_to_end_reason(app: Running, fake: FakeUpstream) -> None:
    fake.queue(Script.stream(sse_stream(["a"], finish="length")))
    events = await (await request(app.url(q("x")))).events()
    assert events[-1].event == "end" and events[-1].json == {"reason": "length"}


async def test_post_question_and_messages(app: Running, fake: FakeUpstream) -> None:
    body = json.dumps({"question": "hello"}).encode()
    events = await (await request(app.url("/ai/streamChat"), "POST", body)).events()
    assert contents(events) == "Hello, world!"
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"}, {"role": "user", "content": "again"}]
    body = json.dumps({"messages": messages, "model": "m2", "temperature": 0.5}).encode()
    events = await (await request(app.url("/ai/streamChat"), "POST", body)).events()
    assert events[-1].event == "end"
    assert fake.received[1].json["messages"] == messages
    assert fake.received[1].json["model"] == "m2"
    assert fake.received[1].json["temperature"] == 0.5


async def test_client_disconnect_aborts_upstream_within_1s(app: Running, fake: FakeUpstream) -> None:
    body = sse_stream(["a"] * 200)
    fake.queue(Script.stream(body, piece=200, pause=0.05))
    resp = await request(app.url(q("x")))
    while (ev := await resp.next_event()) is not None and ev.event != "update":
        pass
    resp.close()
    t0 = time.monotonic()
    await asyncio.wait_for(fake.received[0].closed.wait(), 5)
    assert fake.received[0].closed_at is not None
    assert fake.received[0].closed_at - t0 < 1.0
    assert not fake.received[0].finished
    await asyncio.sleep(0.05)
    assert app.relay.active == 0


async def test_disconnect_while_upstream_silent_aborts(app: Running, fake: FakeUpstream) -> None:
    fake.queue(Script(hang=True))
    resp = await request(app.url(q("x")))
    await resp.next_event()  # start
    while not fake.received:
        await asyncio.sleep(0.01)
    resp.close()
    t0 = time.monotonic()
    await asyncio.wait_for(fake.received[0].closed.wait(), 5)
    assert fake.received[0].closed_at - t0 < 1.0  # type: ignore[operator]


async def test_silent_upstream_heartbeats_then_timeout(make_app, settings, fake: FakeUpstream) -> None:  # type: ignore[no-untyped-def]
    running = make_app(settings.replace(heartbeat=0.2, first_token_timeout=1.2))
    fake.queue(Script(hang=True))
    resp = await request(running.url(q("x")))
    events = await resp.events(with_comments=True)
    kinds = [e.comment if e.comment is not None else e.event for e in events]
    assert kinds[:2] == ["retry", "start"]
    assert kinds.count("heartbeat") >= 3
    assert kinds[-2:] == ["error", "end"]
    error = events[-2].json
    assert error["code"] == "upstream_timeout" and error["retryable"] is True
    assert events[-1].json == {"reason": "error"}
    await asyncio.wait_for(fake.received[0].closed.wait(), 2)


async def test_idle_timeout_between_chunks(make_app, settings, fake: FakeUpstream) -> None:  # type: ignore[no-untyped-def]
    # Regression: the watchdog slept on the (later) first-token deadline.
    running = make_app(settings.replace(idle_timeout=0.5, first_token_timeout=30))
    first = sse_stream(["a"], done=False).split(b"\n\n")
    fake.queue(Script(body=[b"\n\n".join(first[:2]) + b"\n\n"], hang=True))
    t0 = time.monotonic()
    events = await (await request(running.url(q("x")))).events()
    assert contents(events) == "a"
    assert events[-2].json["code"] == "upstream_idle"
    assert time.monotonic() - t0 < 20  # the idle limit, not the first-token one


async def test_total_timeout(make_app, settings, fake: FakeUpstream) -> None:  # type: ignore[no-untyped-def]
    running = make_app(settings.replace(total_timeout=0.6, idle_timeout=5))
    fake.queue(Script.stream(sse_stream(["a"] * 100), piece=60, pause=0.05))
    events = await (await request(running.url(q("x")))).events()
    assert events[-2].json["code"] == "upstream_total"
    assert events[-1].json == {"reason": "error"}


async def test_upstream_401_never_leaks(app: Running, fake: FakeUpstream) -> None:
    leak = b'{"error": {"message": "Incorrect API key provided: sk-test-SECRET-key-123456 UPSTREAM-TEXT"}}'
    fake.queue(Script(status=401, content_type="application/json", body=[leak]))
    resp = await request(app.url(q("x")))
    events = await resp.events()
    assert events[-2].event == "error"
    assert events[-2].json == {"msg": "The AI service rejected this server's credentials.",
                               "code": "upstream_auth", "retryable": False}
    assert events[-1].json == {"reason": "error"}
    assert b"SECRET" not in resp.raw and b"UPSTREAM-TEXT" not in resp.raw
    assert b"Incorrect" not in resp.raw


@pytest.mark.parametrize("status,code", [(429, "upstream_rate_limited"), (500, "upstream_error"),
                                         (403, "upstream_auth")])
async def test_upstream_status_codes(app: Running, fake: FakeUpstream, status: int, code: str) -> None:
    fake.queue(Script(status=status, content_type="application/json", body=[b'{"error":"x"}']))
    events = await (await request(app.url(q("x")))).events()
    assert events[-2].json["code"] == code


async def test_upstream_drop_mid_stream(app: Running, fake: FakeUpstream) -> None:
    partial = sse_stream(["one", "two"], done=False).rsplit(b"data:", 1)[0]
    fake.queue(Script(body=[partial, 0.05], drop=True))
    events = await (await request(app.url(q("x")))).events()
    assert contents(events) == "onetwo"
    assert events[-2].event == "error"
    assert events[-2].json["code"] == "upstream_disconnected"
    assert events[-2].json["retryable"] is True
    assert events[-1].json == {"reason": "error"}
    assert not any(e.event == "end" and e.json["reason"] == "stop" for e in events)


async def test_clean_close_without_done_or_finish_is_disconnected(app: Running, fake: FakeUpstream) -> None:
    data = b"".join(b"data: " + json.dumps(chunk_json(t)).encode() + b"\n\n" for t in ["a", "b"])
    fake.queue(Script(body=[data]))
    events = await (await request(app.url(q("x")))).events()
    assert events[-2].json["code"] == "upstream_disconnected"


async def test_in_band_error(app: Running, fake: FakeUpstream) -> None:
    data = (b"data: " + json.dumps(chunk_json("partial")).encode() + b"\n\n"
            + b'data: {"error": {"message": "model overloaded sk-test-SECRET-key-123456", "type": "server_error"}}\n\n')
    fake.queue(Script(body=[data], hang=True))
    resp = await request(app.url(q("x")))
    events = await resp.events()
    assert contents(events) == "partial"
    assert events[-2].json["code"] == "upstream_error"
    assert b"overloaded" not in resp.raw and b"SECRET" not in resp.raw
    await asyncio.wait_for(fake.received[0].closed.wait(), 2)


async def test_unparseable_chunk_is_protocol_error(app: Running, fake: FakeUpstream) -> None:
    fake.queue(Script(body=[b"data: {not json\n\n"], hang=True))
    events = await (await request(app.url(q("x")))).events()
    assert events[-2].json["code"] == "upstream_protocol"


async def test_oversized_event_is_protocol_error(make_app, settings, fake: FakeUpstream) -> None:  # type: ignore[no-untyped-def]
    running = make_app(settings.replace(max_event_bytes=1000))
    fake.queue(Script(body=[b"data: " + b"x" * 5000], hang=True))
    events = await (await request(running.url(q("x")))).events()
    assert events[-2].json["code"] == "upstream_protocol"


async def test_wrong_content_type_is_protocol_error(app: Running, fake: FakeUpstream) -> None:
    fake.queue(Script(content_type="text/html", body=[b"<html>hi</html>"]))
    events = await (await request(app.url(q("x")))).events()
    assert events[-2].json["code"] == "upstream_protocol"


async def test_connect_refused(make_app, settings) -> None:  # type: ignore[no-untyped-def]
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    running = make_app(settings.replace(upstream_url=f"http://user:pw@127.0.0.1:{port}/v1"))
    resp = await request(running.url(q("x")))
    events = await resp.events()
    assert events[-2].json["code"] == "upstream_connect"
    assert b"127.0.0.1:%d" % port not in resp.raw and b"pw" not in resp.raw


async def test_other_streams_unaffected_by_a_failing_one(app: Running, fake: FakeUpstream) -> None:
    fake.queue(Script(status=500, body=[b"boom"]), Script.stream(sse_stream(DELTAS), piece=20, pause=0.01))
    bad, good = await asyncio.gather(request(app.url(q("bad"))), request(app.url(q("good"))))
    bad_events, good_events = await asyncio.gather(bad.events(), good.events())
    assert bad_events[-2].json["code"] == "upstream_error"
    assert contents(good_events) == "".join(DELTAS)


async def test_connect_timeout(make_app, settings) -> None:  # type: ignore[no-untyped-def]
    # A listener whose accept queue is full drops further SYNs, so connect()
    # hangs: libcurl's connect timeout (the only limit we give libcurl) fires.
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    try:
        running = make_app(settings.replace(upstream_url=f"http://127.0.0.1:{port}/v1",
                                            connect_timeout=0.5, first_token_timeout=20))
        t0 = time.monotonic()
        events = await (await request(running.url(q("x")))).events()
        assert events[-2].json["code"] == "upstream_connect"
        assert time.monotonic() - t0 < 10  # the connect limit, not the first-token one
    finally:
        for s in fillers:
            s.close()
        listener.close()
