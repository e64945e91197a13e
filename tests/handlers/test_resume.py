"""Resume, the grace window and Stop, in one process (the in-memory store)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import Running
from tests.fake_upstream import FakeUpstream, Script, sse_stream
from tests.sse_client import Event, SSEResponse, contents, request
from tornado_sse.config import Settings
from tornado_sse.resume import EventRef, NotStreamOwner
from tornado_sse.session import new_stream_id

DELTAS = [f"第{i}段 part {i}. " for i in range(1, 31)]
ANSWER = "".join(DELTAS)
Q = "/ai/streamChat?question=" + quote("hello")


def paced(deltas: list[str] = DELTAS, pause: float = 0.03, **kw: Any) -> Script:
    """One upstream event per write, ``pause`` apart: the stream stays live for a while."""
    events = sse_stream(deltas).split(b"\n\n")
    body: list[bytes | float] = []
    for ev in events[:-1]:
        body += [ev + b"\n\n", pause]
    return Script(body=body, **kw)


async def read_updates(resp: SSEResponse, n: int) -> list[Event]:
    """Events up to and including the n-th update."""
    out: list[Event] = []
    while sum(e.event == "update" for e in out) < n:
        ev = await resp.next_event()
        assert ev is not None, out
        out.append(ev)
    return out


@pytest.fixture
def resumable(make_app: Any, settings: Settings) -> Running:
    return make_app(settings.replace(resume_window=5.0))  # type: ignore[no-any-return]


async def cut_after(app: Running, n: int) -> tuple[str, list[Event]]:
    first = await request(app.url(Q))
    assert first.status == 200
    seen = await read_updates(first, n)
    first.close()
    return seen[-1].id or "", seen


async def test_reconnect_with_last_event_id_gets_the_rest_once(resumable: Running,
                                                                 fake: FakeUpstream) -> None:
    fake.queue(paced())
    last_id, seen = await cut_after(resumable, 3)
    sid = seen[1].json["stream"]
    assert seen[1].event == "start" and seen[1].id == f"{sid}:0"
    assert last_id == f"{sid}:3"
    await asyncio.sleep(0.1)  # the relay notices the disconnect; deltas keep coming
    again = await request(resumable.url(Q), headers={"Last-Event-ID": last_id})
    assert again.status == 200
    assert again.headers["x-stream-id"] == sid
    assert again.headers["content-type"] == "text/event-stream; charset=utf-8"
    rest = await again.events()
    assert [e.event for e in rest][:1] == ["retry"]
    assert "start" not in [e.event for e in rest]  # a resume continues, it does not restart
    assert contents(seen) + contents(rest) == ANSWER  # all of it, once, in order
    ids = [int((e.id or "").split(":")[1]) for e in rest if e.event == "update"]
    assert ids == sorted(ids) and ids[0] > 3
    assert rest[-1].event == "end" and rest[-1].json == {"reason": "stop"}
    assert rest[-1].id == f"{sid}:{len(DELTAS) + 1}"
    assert len(fake.received) == 1  # the upstream was asked once


async def test_resume_through_query_parameter(resumable: Running, fake: FakeUpstream) -> None:
    fake.queue(paced())
    last_id, seen = await cut_after(resumable, 4)
    # The question is still in the URL (an EventSource keeps its URL); the id wins.
    again = await request(resumable.url(Q + "&lastEventId=" + quote(last_id)))
    rest = await again.events()
    assert contents(seen) + contents(rest) == ANSWER
    assert len(fake.received) == 1


async def test_resume_by_post_ignores_the_body(resumable: Running, fake: FakeUpstream) -> None:
    fake.queue(paced())
    last_id, seen = await cut_after(resumable, 2)
    again = await request(resumable.url("/ai/streamChat"), "POST", b"not json",
                          headers={"Last-Event-ID": last_id})
    rest = await again.events()
    assert contents(seen) + contents(rest) == ANSWER
    assert len(fake.received) == 1


async def test_cut_before_the_first_update_resumes_from_start(resumable: Running,
                                                              fake: FakeUpstream) -> None:
    fake.queue(paced(headers_delay=0.3))
    first = await request(resumable.url(Q))
    await first.next_event()  # retry
    start = await first.next_event()
    assert start is not None and start.event == "start"
    first.close()
    again = await request(resumable.url(Q), headers={"Last-Event-ID": start.id or ""})
    assert contents(await again.events()) == ANSWER
    assert len(fake.received) == 1


async def test_several_cuts(resumable: Running, fake: FakeUpstream) -> None:
    fake.queue(paced())
    got, last_id = "", None
    for _ in range(5):
        headers = {"Last-Event-ID": last_id} if last_id else {}
        resp = await request(resumable.url(Q), headers=headers)
        seen = await read_updates(resp, 1)
        resp.close()
        got += contents(seen)
        last_id = seen[-1].id
    resp = await request(resumable.url(Q), headers={"Last-Event-ID": last_id or ""})
    got += contents(await resp.events())
    assert got == ANSWER and len(fake.received) == 1


async def test_unknown_id_is_204(resumable: Running, fake: FakeUpstream) -> None:
    resp = await request(resumable.url(Q), headers={"Last-Event-ID": f"{new_stream_id()}:3"})
    assert resp.status == 204
    assert "content-type" not in resp.headers and "x-stream-id" not in resp.headers
    assert fake.received == []  # a resume never asks the question again


@pytest.mark.parametrize("value", ["nonsense", "x:1", "AbCdEfGhIjKlMnOpQrStUv:-2"])
async def test_malformed_id_is_400_json(resumable: Running, value: str) -> None:
    resp = await request(resumable.url(Q), headers={"Last-Event-ID": value})
    assert resp.status == 400
    assert json.loads(await resp.body())["error"]["code"] == "bad_last_event_id"
    resp = await request(resumable.url("/ai/streamChat?lastEventId=" + quote(value)))
    assert resp.status == 400


async def test_ended_stream_replays_remainder_and_end(resumable: Running, fake: FakeUpstream) -> None:
    fake.queue(paced(pause=0.01))
    last_id, seen = await cut_after(resumable, 2)
    await until(lambda: resumable.relay.active == 0)  # the answer finished meanwhile
    again = await request(resumable.url(Q), headers={"Last-Event-ID": last_id})
    rest = await again.events()
    assert contents(seen) + contents(rest) == ANSWER
    assert rest[-1].event == "end" and rest[-1].json == {"reason": "stop"}
    # All updates seen: only the end is left.
    again = await request(resumable.url(Q), headers={"Last-Event-ID": rest[-2].id or ""})
    assert [e.event for e in await again.events()] == ["retry", "end"]
    # The end seen too: 204, which makes an EventSource stop reconnecting.
    again = await request(resumable.url(Q), headers={"Last-Event-ID": rest[-1].id or ""})
    assert again.status == 204
    assert len(fake.received) == 1


async def test_ended_with_error_replays_the_error(resumable: Running, fake: FakeUpstream) -> None:
    partial = sse_stream(["one", "two"], done=False).rsplit(b"data:", 1)[0]
    fake.queue(Script(body=[partial, 0.05], drop=True))
    events = await (await request(resumable.url(Q))).events()
    sid = events[1].json["stream"]
    again = await request(resumable.url(Q), headers={"Last-Event-ID": f"{sid}:1"})
    rest = await again.events()
    assert contents(rest) == "two"
    assert [e.event for e in rest[-2:]] == ["error", "end"]
    assert rest[-2].json["code"] == "upstream_disconnected"


async def test_expired_stream_is_204(make_app: Any, settings: Settings, fake: FakeUpstream) -> None:
    app = make_app(settings.replace(resume_window=5.0, resume_ttl=0.2))
    events = await (await request(app.url(Q))).events()
    sid = events[1].json["stream"]
    assert (await request(app.url(Q), headers={"Last-Event-ID": f"{sid}:1"})).status == 200
    await asyncio.sleep(0.4)
    assert (await request(app.url(Q), headers={"Last-Event-ID": f"{sid}:1"})).status == 204


async def test_position_no_longer_buffered_is_204(make_app: Any, settings: Settings,
                                                  fake: FakeUpstream) -> None:
    app = make_app(settings.replace(resume_window=5.0, resume_buffer_bytes=40))
    fake.queue(Script.stream(sse_stream(DELTAS)))
    events = await (await request(app.url(Q))).events()  # DELTAS are ~17 bytes each
    sid = events[1].json["stream"]
    assert (await request(app.url(Q), headers={"Last-Event-ID": f"{sid}:2"})).status == 204
    late = await request(app.url(Q), headers={"Last-Event-ID": f"{sid}:{len(DELTAS) - 1}"})
    assert contents(await late.events()) == DELTAS[-1]


async def test_no_reconnect_aborts_upstream_after_the_window(make_app: Any, settings: Settings,
                                                             fake: FakeUpstream) -> None:
    app = make_app(settings.replace(resume_window=0.5))
    fake.queue(paced(pause=0.2))
    resp = await request(app.url(Q))
    await read_updates(resp, 1)
    resp.close()
    left = time.monotonic()
    await asyncio.wait_for(fake.received[0].closed.wait(), 5)
    waited = (fake.received[0].closed_at or 0) - left
    assert 0.45 <= waited < 2.0, waited  # kept for the window, then aborted shortly after
    assert not fake.received[0].finished
    await asyncio.sleep(0.05)
    assert app.relay.active == 0
    # What was relayed stays resumable until the ttl, ending as cancelled.
    rest = await (await request(app.url(Q), headers={"Last-Event-ID": resp_id(resp)})).events()
    assert rest[-1].json == {"reason": "cancelled"}


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def resp_id(resp: SSEResponse) -> str:
    text = resp.raw.decode()
    return [line[4:] for line in text.splitlines() if line.startswith("id: ")][-1]


async def test_window_restarts_when_a_resumed_client_leaves_again(make_app: Any, settings: Settings,
                                                                  fake: FakeUpstream) -> None:
    app = make_app(settings.replace(resume_window=0.6))
    fake.queue(paced(pause=0.1))
    resp = await request(app.url(Q))
    await read_updates(resp, 1)
    resp.close()
    await asyncio.sleep(0.4)
    resp = await request(app.url(Q), headers={"Last-Event-ID": resp_id(resp)})
    await read_updates(resp, 1)
    resp.close()
    left = time.monotonic()
    # The first departure's timer (due at 0.6) must not cut the second window short.
    await asyncio.wait_for(fake.received[0].closed.wait(), 5)
    assert (fake.received[0].closed_at or 0) - left >= 0.55


async def test_window_zero_aborts_at_once(app: Running, fake: FakeUpstream) -> None:
    fake.queue(paced(pause=0.2))
    resp = await request(app.url(Q))
    await read_updates(resp, 1)
    resp.close()
    left = time.monotonic()
    await asyncio.wait_for(fake.received[0].closed.wait(), 5)
    assert (fake.received[0].closed_at or 0) - left < 1.0


async def test_stop_aborts_upstream_and_ends_every_listener(resumable: Running,
                                                            fake: FakeUpstream) -> None:
    fake.queue(paced(pause=0.1))
    one = await request(resumable.url(Q))
    seen = await read_updates(one, 1)
    sid = seen[1].json["stream"]
    two = await request(resumable.url(Q), headers={"Last-Event-ID": f"{sid}:0"})
    await read_updates(two, 1)
    stop = await request(resumable.url(f"/ai/stop/{sid}"), "POST", b"")
    stopped_at = time.monotonic()
    assert stop.status == 200
    assert json.loads(await stop.body()) == {"stream": sid, "state": "stopped"}
    await asyncio.wait_for(fake.received[0].closed.wait(), 5)
    assert (fake.received[0].closed_at or 0) - stopped_at < 1.0
    assert not fake.received[0].finished
    for resp in (one, two):
        rest = await resp.events()
        assert rest[-1].event == "end" and rest[-1].json == {"reason": "cancelled"}
    # Stopping again says how it ended; unknown and malformed ids are refused.
    again = await request(resumable.url(f"/ai/stop/{sid}"), "POST", b"")
    assert json.loads(await again.body()) == {"stream": sid, "state": "ended", "reason": "cancelled"}
    unknown = await request(resumable.url(f"/ai/stop/{new_stream_id()}"), "POST", b"")
    assert unknown.status == 404
    assert json.loads(await unknown.body())["error"]["code"] == "unknown_stream"
    bad = await request(resumable.url("/ai/stop/x%20y"), "POST", b"")
    assert bad.status == 400
    assert json.loads(await bad.body())["error"]["code"] == "bad_stream_id"
    assert len(fake.received) == 1


async def test_stop_during_the_grace_window(resumable: Running, fake: FakeUpstream) -> None:
    fake.queue(paced(pause=0.1))
    resp = await request(resumable.url(Q))
    seen = await read_updates(resp, 1)
    resp.close()
    await asyncio.sleep(0.1)
    stop = await request(resumable.url(f"/ai/stop/{seen[1].json['stream']}"), "POST", b"")
    assert stop.status == 200
    await asyncio.wait_for(fake.received[0].closed.wait(), 1.0)


async def test_only_the_owner_may_resume_or_stop(resumable: Running, fake: FakeUpstream) -> None:
    # The hook client tokens (issue 6) plug into: handlers pass stream_owner().
    fake.queue(paced(pause=0.1))
    relay = resumable.relay
    stream = relay.open(b"{}", owner="alice")
    ref = EventRef(stream.session.id, 0)
    with pytest.raises(NotStreamOwner):
        await relay.resume(ref, "bob")
    with pytest.raises(NotStreamOwner):
        await relay.resume(ref, None)
    assert await relay.resume(ref, "alice") is not None
    assert (await relay.stop(stream.session.id, "bob")).state == "forbidden"
    assert (await relay.stop(stream.session.id, "alice")).state == "stopped"
    assert (await relay.stop(stream.session.id, "bob")).state == "forbidden"


async def test_other_streams_unaffected_by_stop(resumable: Running, fake: FakeUpstream) -> None:
    fake.queue(paced(pause=0.05), paced(pause=0.01))
    a, b = await asyncio.gather(request(resumable.url(Q)), request(resumable.url(Q)))
    a_seen = await read_updates(a, 1)
    await request(resumable.url(f"/ai/stop/{a_seen[1].json['stream']}"), "POST", b"")
    assert contents(await b.events()) == ANSWER
    assert (await a.events())[-1].json == {"reason": "cancelled"}


async def test_with_client_tokens_only_the_starting_client_resumes_or_stops(
        make_app: Any, settings: Settings, fake: FakeUpstream) -> None:
    alice, bob = "tok-alice-0123456789abcdef", "tok-bob-0123456789abcdefgh"
    app = make_app(settings.replace(resume_window=5.0, tokens=f"{alice} alice,{bob} bob"))
    fake.queue(paced(pause=0.05))
    first = await request(app.url(Q + "&token=" + alice))
    seen = await read_updates(first, 2)
    first.close()
    sid, last = seen[1].json["stream"], seen[-1].id or ""
    for token, status in [(None, 401), (bob, 403)]:
        url = app.url(Q + (f"&token={token}" if token else ""))
        resp = await request(url, headers={"Last-Event-ID": last})
        assert resp.status == status
        body = json.loads(await resp.body())
        assert body["error"]["code"] == ("missing_token" if token is None else "not_stream_owner")
        stop = await request(app.url(f"/ai/stop/{sid}"), "POST", b"",
                             headers={"Authorization": f"Bearer {token}"} if token else {})
        assert stop.status == status
    resp = await request(app.url(Q + "&token=" + alice), headers={"Last-Event-ID": last})
    assert resp.status == 200
    await read_updates(resp, 1)
    # A Stop is a POST: the token must come in Authorization, never the query or a cookie.
    assert (await request(app.url(f"/ai/stop/{sid}?token={alice}"), "POST", b"")).status == 401
    stop = await request(app.url(f"/ai/stop/{sid}"), "POST", b"",
                         headers={"Authorization": f"Bearer {alice}"})
    assert stop.status == 200
    assert (await resp.events())[-1].json["reason"] == "cancelled"
    assert len(fake.received) == 1
