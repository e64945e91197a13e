"""Resume and Stop across processes: two app instances sharing a real redis-server.

Each app has its own relay, store and Redis connections, exactly as two worker
processes would; only the event loop is shared.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.conftest import Running
from tests.fake_upstream import FakeUpstream, Script, chunk_json, sse_stream
from tests.handlers.test_resume import ANSWER, DELTAS, Q, paced, read_updates, until
from tests.sse_client import contents, request
from tornado_sse.config import Settings
from tornado_sse.redis_store import RedisStore
from tornado_sse.session import new_stream_id
from tornado_sse.store import StoreError


@pytest.fixture
def pair(make_app: Any, settings: Settings, redis_url: str) -> Any:
    async def start(**changes: Any) -> tuple[Running, Running]:
        cfg = settings.replace(**{"redis_url": redis_url, "resume_window": 5.0, **changes})
        a, b = make_app(cfg), make_app(cfg)
        await asyncio.gather(a.relay.store.wait_ready(), b.relay.store.wait_ready())
        return a, b
    return start


async def test_start_on_one_resume_on_another(pair: Any, fake: FakeUpstream,
                                              caplog: pytest.LogCaptureFixture) -> None:
    a, b = await pair()
    fake.queue(paced())
    first = await request(a.url(Q))
    seen = await read_updates(first, 3)
    sid = seen[1].json["stream"]
    first.close()
    caplog.set_level("INFO", "tornado_sse.store")
    again = await request(b.url(Q), headers={"Last-Event-ID": seen[-1].id or ""})
    assert again.status == 200 and again.headers["x-stream-id"] == sid
    rest = await again.events()
    assert contents(seen) + contents(rest) == ANSWER  # all of it, once, in order
    assert rest[-1].event == "end" and rest[-1].json == {"reason": "stop"}
    assert rest[-1].id == f"{sid}:{len(DELTAS) + 1}"
    assert len(fake.received) == 1
    assert f"stream {sid}: following it from Redis" in caplog.text
    assert b.relay.active == 0  # b relayed nothing itself


async def test_resume_right_after_the_cut_never_duplicates(pair: Any, fake: FakeUpstream) -> None:
    # The relaying process writes to Redis a few ms after its own clients see a
    # delta; a client that resumes elsewhere at once can be ahead of Redis.
    a, b = await pair()
    fake.queue(paced(pause=0.01))
    got, last_id = "", None
    for app in [a, b, a, b, b, a]:
        resp = await request(app.url(Q), headers={"Last-Event-ID": last_id} if last_id else {})
        seen = await read_updates(resp, 2)
        resp.close()
        got += contents(seen)
        last_id = seen[-1].id
    rest = await (await request(b.url(Q), headers={"Last-Event-ID": last_id or ""})).events()
    assert got + contents(rest) == ANSWER
    assert len(fake.received) == 1


async def test_stop_from_another_process(pair: Any, fake: FakeUpstream) -> None:
    a, b = await pair()
    fake.queue(paced(pause=0.1))
    on_a = await request(a.url(Q))
    seen = await read_updates(on_a, 1)
    sid = seen[1].json["stream"]
    on_b = await request(b.url(Q), headers={"Last-Event-ID": f"{sid}:0"})  # a second listener
    await read_updates(on_b, 1)
    stop = await request(b.url(f"/ai/stop/{sid}"), "POST", b"")
    stopped_at = time.monotonic()
    assert stop.status == 202
    assert json.loads(await stop.body()) == {"stream": sid, "state": "stopping"}
    await asyncio.wait_for(fake.received[0].closed.wait(), 5)
    assert (fake.received[0].closed_at or 0) - stopped_at < 1.0
    for resp in (on_a, on_b):
        rest = await resp.events()
        assert rest[-1].event == "end" and rest[-1].json == {"reason": "cancelled"}
    await until(lambda: a.relay.active == 0)
    await asyncio.sleep(0.05)  # the end reaches Redis
    again = await request(b.url(f"/ai/stop/{sid}"), "POST", b"")
    assert json.loads(await again.body()) == {"stream": sid, "state": "ended", "reason": "cancelled"}
    unknown = await request(b.url(f"/ai/stop/{new_stream_id()}"), "POST", b"")
    assert unknown.status == 404


async def test_follower_elsewhere_keeps_the_upstream_past_the_window(pair: Any,
                                                                     fake: FakeUpstream) -> None:
    a, b = await pair(resume_window=0.3)
    fake.queue(paced(pause=0.05))  # ~1.5 s, five windows
    first = await request(a.url(Q))
    seen = await read_updates(first, 1)
    again = await request(b.url(Q), headers={"Last-Event-ID": seen[-1].id or ""})
    first.close()  # a has no listener left; b's client follows through Redis
    rest = await again.events()
    assert contents(seen) + contents(rest) == ANSWER
    assert rest[-1].json == {"reason": "stop"}


async def test_remote_follower_gone_then_window_aborts(pair: Any, fake: FakeUpstream) -> None:
    a, b = await pair(resume_window=0.3)
    fake.queue(paced(pause=0.2))
    first = await request(a.url(Q))
    seen = await read_updates(first, 1)
    first.close()
    again = await request(b.url(Q), headers={"Last-Event-ID": seen[-1].id or ""})
    await read_updates(again, 1)
    again.close()
    left = time.monotonic()
    await asyncio.wait_for(fake.received[0].closed.wait(), 10)
    # The follower's announcement outlives it by up to 3 s, then one window.
    assert (fake.received[0].closed_at or 0) - left < 6.0
    assert not fake.received[0].finished


async def test_ended_stream_from_another_process(pair: Any, fake: FakeUpstream) -> None:
    a, b = await pair()
    fake.queue(Script.stream(sse_stream(DELTAS)))
    events = await (await request(a.url(Q))).events()
    sid = events[1].json["stream"]
    await asyncio.sleep(0.05)  # the end reaches Redis
    rest = await (await request(b.url(Q), headers={"Last-Event-ID": f"{sid}:10"})).events()
    assert contents(rest) == "".join(DELTAS[10:])
    assert rest[-1].json == {"reason": "stop"} and rest[-1].id == f"{sid}:{len(DELTAS) + 1}"
    assert (await request(b.url(Q), headers={"Last-Event-ID": rest[-1].id or ""})).status == 204
    unknown = await request(b.url(Q), headers={"Last-Event-ID": f"{new_stream_id()}:1"})
    assert unknown.status == 204


async def test_error_end_crosses_without_upstream_text(pair: Any, fake: FakeUpstream) -> None:
    a, b = await pair()
    data = (b"data: " + json.dumps(chunk_json("x")).encode() + b"\n\n"
            + b'data: {"error": {"message": "SECRET upstream text"}}\n\n')
    fake.queue(Script(body=[data], hang=True))
    events = await (await request(a.url(Q))).events()
    sid = events[1].json["stream"]
    await asyncio.sleep(0.05)
    resp = await request(b.url(Q), headers={"Last-Event-ID": f"{sid}:0"})
    rest = await resp.events()
    assert contents(rest) == "x"
    assert rest[-2].event == "error" and rest[-2].json["code"] == "upstream_error"
    assert b"SECRET" not in resp.raw


async def test_expired_in_redis_is_204(pair: Any, fake: FakeUpstream, redis_url: str) -> None:
    a, b = await pair()
    events = await (await request(a.url(Q))).events()
    sid = events[1].json["stream"]
    await asyncio.sleep(0.05)
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert 0 < await client.ttl(f"tornado_sse:s:{sid}") <= 60
        await client.delete(f"tornado_sse:s:{sid}")  # what EXPIRE does after the ttl
    finally:
        await client.aclose()
    assert (await request(b.url(Q), headers={"Last-Event-ID": f"{sid}:1"})).status == 204


async def test_redis_trims_to_the_buffer(pair: Any, fake: FakeUpstream, redis_url: str) -> None:
    a, b = await pair(resume_buffer_bytes=60)
    fake.queue(paced(pause=0.005))
    events = await (await request(a.url(Q))).events()
    sid = events[1].json["stream"]
    await asyncio.sleep(0.05)
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        entries = await client.xrange(f"tornado_sse:s:{sid}")
    finally:
        await client.aclose()
    texts = [t for _, fields in entries for k, t in fields.items() if k.isdigit()]
    assert sum(len(t.encode()) for t in texts) < 60 + 3 * 20  # whole entries, about the buffer
    assert "end" in entries[-1][1]
    assert (await request(b.url(Q), headers={"Last-Event-ID": f"{sid}:1"})).status == 204


async def test_unreachable_redis_is_reported(settings: Settings) -> None:
    from tests.redis_server import free_port
    from tornado_sse.memory_store import MemoryStore

    store = RedisStore(f"redis://:pw@127.0.0.1:{free_port()}/0", MemoryStore())
    store.start(lambda _id: None)
    try:
        with pytest.raises(StoreError) as info:
            await store.wait_ready(timeout=0.5)
        assert "cannot reach Redis at redis://127.0.0.1:" in info.value.message
        assert "pw" not in info.value.message
    finally:
        await store.close()


async def test_owner_travels_with_the_stream(pair: Any, fake: FakeUpstream) -> None:
    alice, bob = "tok-alice-0123456789abcdef", "tok-bob-0123456789abcdefgh"
    a, b = await pair(tokens=f"{alice} alice,{bob} bob")
    fake.queue(paced(pause=0.05))
    first = await request(a.url(Q + "&token=" + alice))
    seen = await read_updates(first, 2)
    first.close()
    sid, last = seen[1].json["stream"], seen[-1].id or ""
    as_bob = await request(b.url(Q + "&token=" + bob), headers={"Last-Event-ID": last})
    assert as_bob.status == 403
    stop = await request(b.url(f"/ai/stop/{sid}"), "POST", b"", headers={"Authorization": f"Bearer {bob}"})
    assert stop.status == 403
    as_alice = await request(b.url(Q + "&token=" + alice), headers={"Last-Event-ID": last})
    assert as_alice.status == 200
    assert contents(seen) + contents(await as_alice.events()) == ANSWER
