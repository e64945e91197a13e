"""Resume and Stop across real processes: two run.py servers sharing a redis-server,
and one run.py with --processes=2. The embedded demo upstream's answer is a pure
function of the question, so the text a client pieces together can be checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.redis_server import free_port
from tests.sse_client import SSEResponse, contents, request
from tornado_sse.demo_upstream import compose_answer

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "How do reconnects work?"
ANSWER = compose_answer(QUESTION)
Q = "/ai/streamChat?question=" + quote(QUESTION)


class Proc:
    """run.py in a subprocess; its output is collected by a thread (never blocks it)."""

    def __init__(self, *args: str, listening: int = 1) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TORNADO_SSE_"))}
        self.proc = subprocess.Popen(
            [sys.executable, "run.py", f"--port={self.port}", "--demo-delay=0.02", *args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.wait_for(lambda: self.count(f"listening on http://127.0.0.1:{self.port}/") >= listening)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def count(self, text: str) -> int:
        return "".join(self.lines).count(text)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None or condition(), "".join(self.lines)
            assert time.monotonic() < deadline, "".join(self.lines)
            time.sleep(0.02)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> int:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        finally:
            self.reader.join(timeout=15)  # workers may outlive the parent by a moment
            assert self.proc.stdout is not None
            self.proc.stdout.close()
        return self.proc.returncode


@pytest.fixture
def procs() -> Iterator[Callable[..., Proc]]:
    started: list[Proc] = []

    def start(*args: str, listening: int = 1) -> Proc:
        p = Proc(*args, listening=listening)
        started.append(p)
        return p

    yield start
    codes = [p.stop() for p in started]
    assert codes == [0] * len(started), "".join(line for p in started for line in p.lines)


async def updates(resp: SSEResponse, n: int) -> tuple[str, str | None]:
    """Read up to ``n`` updates: (their text, last event id seen)."""
    text, last, got = "", None, 0
    while got < n:
        ev = await resp.next_event()
        if ev is None:
            break
        if ev.id:
            last = ev.id
        if ev.event == "update":
            text += ev.json["content"]
            got += 1
    return text, last


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
    assert one.count("POST /v1/chat/completions") == 1 and two.count("/v1/chat/completions") == 0

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
    assert server.count("POST /v1/chat/completions") == 1

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


def test_workers_without_redis_say_resume_is_per_process(procs: Callable[..., Proc]) -> None:
    server = procs("--processes=2", listening=2)
    assert server.count("resume is per process") == 1


def test_processes_need_a_fixed_port() -> None:
    out = subprocess.run([sys.executable, "run.py", "--port=0", "--processes=2"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "--processes needs a fixed --port" in out.stderr


def test_unreachable_redis_fails_at_start() -> None:
    out = subprocess.run([sys.executable, "run.py", f"--port={free_port()}",
                          f"--redis-url=redis://:hunter2@127.0.0.1:{free_port()}/0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "cannot reach Redis at redis://127.0.0.1:" in out.stderr
    assert "hunter2" not in out.stderr + out.stdout
