"""Metrics stay right with several worker processes (prometheus_client multiprocess mode).

Two run.py processes share one PROMETHEUS_MULTIPROC_DIR, as ``--processes`` workers
(or systemd template instances) do: /metrics on either reports the sum of both,
active streams count live workers only, and a killed worker's gauges disappear
while its counters stay.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from urllib.parse import quote

from tests.fake_upstream import FakeUpstream, Script, sse_stream
from tests.prom import value
from tests.sse_client import request

from .test_shutdown import start_run_py

ROOT = Path(__file__).resolve().parents[2]


async def scrape(port: int) -> str:
    resp = await request(f"http://127.0.0.1:{port}/metrics")
    assert resp.status == 200
    return resp.raw.decode()


async def test_two_processes_one_sum(fake: FakeUpstream, tmp_path: Path) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    p1, port1, _ = await start_run_py(f"--upstream-url={fake.url}", "--max-streams=10", extra_env=env)
    p2, port2, _ = await start_run_py(f"--upstream-url={fake.url}", "--max-streams=20", extra_env=env)
    try:
        fake.default = lambda r: Script.stream(sse_stream(["a", "b", "c"]))
        for port in (port1, port2, port2):
            events = await (await request(f"http://127.0.0.1:{port}/ai/streamChat?question=x")).events()
            assert events[-1].json == {"reason": "stop"}
        fake.queue(Script(hang=True))
        held = await request(f"http://127.0.0.1:{port2}/ai/streamChat?question=" + quote("held"))
        await held.next_event()
        while len(fake.received) < 4:
            await asyncio.sleep(0.01)

        for port in (port1, port2):  # either worker answers for both
            text = await scrape(port)
            assert value(text, "tornado_sse_streams_started_total") == 4
            assert value(text, "tornado_sse_streams_finished_total", reason="stop", code="") == 3
            assert value(text, "tornado_sse_deltas_total") == 9
            assert value(text, "tornado_sse_streams_active") == 1
            assert value(text, "tornado_sse_streams_capacity") == 30
            assert value(text, "tornado_sse_stream_duration_seconds_count") == 3

        p2.kill()  # no clean exit: its live gauges are left behind...
        await p2.wait()
        text = await scrape(port1)
        assert value(text, "tornado_sse_streams_active") == 0  # ...and dropped at the scrape
        assert value(text, "tornado_sse_streams_capacity") == 10
        assert value(text, "tornado_sse_streams_started_total") == 4  # totals survive
        p1.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(p1.wait(), 10) == 0
        assert not list(tmp_path.glob(f"gauge_livesum_{p1.pid}.db"))  # a clean exit removes its own
    finally:
        for p in (p1, p2):
            if p.returncode is None:
                p.kill()
                await p.wait()


def test_enable_multiprocess_then_fork(tmp_path: Path) -> None:
    """What a --processes parent does: enable, fork workers, any of them sums all."""
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from tornado_sse.metrics import Metrics, enable_multiprocess
        path = enable_multiprocess({str(tmp_path)!r})
        open(os.path.join(path, "stale_1.db"), "w").close()  # left by an earlier run
        enable_multiprocess(path)  # wipes it
        pids = []
        for i in range(3):
            pid = os.fork()
            if pid == 0:
                m = Metrics(max_streams=5)
                m.started.inc(i + 1)
                m.close()
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            assert os.waitpid(pid, 0)[1] == 0
        body, ctype = Metrics().render()
        sys.stdout.write(ctype + "\\n" + body.decode())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"})
    assert out.returncode == 0, out.stderr
    ctype, text = out.stdout.split("\n", 1)
    assert ctype.startswith("text/plain; version=0.0.4")
    assert value(text, "tornado_sse_streams_started_total") == 6
    assert value(text, "tornado_sse_streams_capacity") == 0  # every worker exited cleanly
    assert not (tmp_path / "stale_1.db").exists()


def test_metrics_endpoint_over_plain_http_in_multiprocess_mode(tmp_path: Path) -> None:
    from .test_run_py import free_port
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    proc = subprocess.Popen([sys.executable, "run.py", f"--port={port}", "--demo-delay=0.001"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if "listening on" in line:
                break
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ai/streamChat?question=hi",
                                    timeout=30) as resp:
            resp.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
            text = resp.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert value(text, "tornado_sse_streams_started_total") == 1
    assert value(text, "tornado_sse_deltas_total") > 10
    assert proc.returncode == 0
