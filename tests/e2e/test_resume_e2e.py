"""Resume and Stop across real processes: two run.py servers sharing a redis-server,
and one run.py with --processes=2 and Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

from tests.redis_server import free_port
from tests.sse_client import contents, request

from .run_py import ANSWER, ROOT, Proc, Q, updates


async def test_resume_and_stop_across_two_servers(procs: Callable[..., Proc], redis_url: str) -> None:
    one = procs(f"--redis-url={redis_url}")
    two = procs(f"--redis-url={redis_url}")
    first = await request(one.url(Q))
    text, last = await updates(first, 5)
    first.close()
    again = await request(two.url(Q), headers={"Last-Event-ID": last or ""})
    events = await again.events()
    assert text + contents(events) == ANSWER
    assert events[-1].event == "end" and events[-1].json["reason"] == "stop"
    assert events[-1].json["usage"]["completion_tokens"] > 10  # usage crosses processes too
    assert two.count("following it from Redis") == 1
    # One access-log line per relayed stream: one relayed it, two only followed it.
    sid = (last or "").split(":")[0]
    one.wait_for(lambda: one.count(f"stream_end stream={sid}") == 1)
    assert two.count("stream_end") == 0

    # Stop on two, for a stream that one relays.
    started = await request(one.url(Q))
    _, last = await updates(started, 1)
    sid = (last or "").split(":")[0]
    stop = await request(two.url(f"/ai/stop/{sid}"), "POST", b"")
    assert stop.status == 202
    assert json.loads(await stop.body()) == {"stream": sid, "state": "stopping"}
    rest = await started.events()
    assert rest[-1].event == "end" and rest[-1].json == {"reason": "cancelled"}
    one.wait_for(lambda: one.count(f"stream {sid}: stopped from another process") == 1)


async def test_two_workers_share_streams_through_redis(procs: Callable[..., Proc],
                                                       redis_url: str) -> None:
    server = procs("--processes=2", f"--redis-url={redis_url}", listening=2)
    assert server.count("without --redis-url") == 0
    # Cut every few updates: each reconnect is a new connection, which the kernel
    # hands to either worker, until one lands on the worker not relaying it.
    got, last = "", None
    for _ in range(200):
        resp = await request(server.url(Q), headers={"Last-Event-ID": last} if last else {})
        if resp.status == 204:
            break  # the end was seen already
        text, last = await updates(resp, 3)
        resp.close()
        got += text
    assert got == ANSWER
    assert server.count("following it from Redis") >= 1
    assert server.count("stream_end stream=") == 1  # relayed once, by one worker

    # Stop requests, too, reach whichever worker; the stream ends either way.
    for _ in range(20):
        resp = await request(server.url(Q))
        _, last = await updates(resp, 1)
        sid = (last or "").split(":")[0]
        stop = await request(server.url(f"/ai/stop/{sid}"), "POST", b"")
        assert stop.status in (200, 202)
        rest = await resp.events()
        assert rest[-1].json == {"reason": "cancelled"}
        if stop.status == 202:  # the worker that got the Stop passed it on
            break
    assert stop.status == 202
    server.wait_for(lambda: server.count(f"stream {sid}: stopped from another process") == 1)


def test_unreachable_redis_fails_at_start() -> None:
    out = subprocess.run([sys.executable, "run.py", f"--port={free_port()}",
                          f"--redis-url=redis://:hunter2@127.0.0.1:{free_port()}/0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "cannot reach Redis at redis://127.0.0.1:" in out.stderr
    assert "hunter2" not in out.stderr + out.stdout
