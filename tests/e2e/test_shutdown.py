"""run.py as a subprocess: SIGTERM/SIGINT drain, end the rest, exit 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.fake_upstream import FakeUpstream, Script, sse_stream
from tests.sse_client import contents, request

from .test_run_py import free_port

ROOT = Path(__file__).resolve().parents[2]


async def start_run_py(*args: str, extra_env: dict[str, str] | None = None,
                       ) -> tuple[asyncio.subprocess.Process, int, list[str]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PROMETHEUS_"))}
    env.update(extra_env or {})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "run.py", f"--port={port}", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    lines: list[str] = []
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line, lines
        lines.append(line)
        if f"listening on http://127.0.0.1:{port}/" in line:
            return proc, port, lines


async def collect_output(proc: asyncio.subprocess.Process, lines: list[str]) -> None:
    assert proc.stdout is not None
    async for raw in proc.stdout:
        lines.append(raw.decode())


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


@pytest.mark.parametrize("sig,log_format", [(signal.SIGTERM, "json"), (signal.SIGINT, "text")])
async def test_signal_drains_then_ends_the_rest(fake: FakeUpstream, sig: int, log_format: str) -> None:
    proc, port, lines = await start_run_py(
        f"--upstream-url={fake.url}", "--drain-timeout=1.5", "--retry-ms=2000",
        f"--log-format={log_format}")
    output = asyncio.ensure_future(collect_output(proc, lines))
    try:
        finishing = sse_stream(["one", "two", "three"])
        third = len(finishing) // 3 + 1
        # Script by question, not by arrival order: the two requests race.
        fake.default = lambda r: (Script.stream(finishing, piece=third, pause=0.3)
                                  if r.json["messages"][-1]["content"] == "finishes"
                                  else Script(hang=True))
        url = f"http://127.0.0.1:{port}/ai/streamChat?question="
        a = await request(url + quote("finishes"))
        b = await request(url + quote("hangs"))
        assert (await a.next_event()).event == "retry"  # type: ignore[union-attr]
        assert (await b.next_event()).event == "retry"  # type: ignore[union-attr]
        while len(fake.received) < 2:
            await asyncio.sleep(0.01)

        proc.send_signal(sig)
        # stop accepting: the listener closes right away
        for _ in range(100):
            if await refused(port):
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("still accepting connections after the signal")

        a_events, b_events = await asyncio.wait_for(asyncio.gather(a.events(), b.events()), 10)
        assert contents(a_events) == "onetwothree"
        assert a_events[-1].json == {"reason": "stop"}
        assert [e.event for e in b_events] == ["start", "retry", "end"]  # after the first retry
        assert 2000 <= int(b_events[1].data) <= 4000
        assert b_events[-1].json == {"reason": "shutdown"}
        hung = next(r for r in fake.received if r.json["messages"][-1]["content"] == "hangs")
        await asyncio.wait_for(hung.closed.wait(), 5)  # upstream aborted
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        await output
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    text = "".join(lines)
    assert "Traceback" not in text
    assert hung.closed_at is not None
    if log_format == "json":
        records = [json.loads(line) for line in lines if line.startswith("{")]
        assert len(records) >= 3
        ends = [r for r in records if r.get("event") == "stream_end"]
        assert sorted(r["reason"] for r in ends) == ["shutdown", "stop"]
        shut = next(r for r in ends if r["reason"] == "shutdown")
        assert shut["abort"] == "shutdown" and shut["status"] == 200
        assert any("drained: 1 streams finished, 1 ended by shutdown" in r.get("message", "")
                   for r in records)
    else:
        assert "reason=shutdown" in text and "abort=shutdown" in text
        assert "drained: 1 streams finished, 1 ended by shutdown" in text


async def test_idle_server_exits_at_once_on_sigterm(fake: FakeUpstream) -> None:
    proc, _, _ = await start_run_py(f"--upstream-url={fake.url}")
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 10) == 0
