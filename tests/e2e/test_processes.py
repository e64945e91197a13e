"""run.py --processes=N: workers on one port, supervised by the parent."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable

from tests.sse_client import contents, request

from .run_py import ANSWER, ROOT, Proc, Q, updates


def test_workers_without_redis_say_resume_is_per_process(procs: Callable[..., Proc]) -> None:
    server = procs("--processes=2", listening=2)
    assert server.count("resume is per process") == 1


def test_processes_need_a_fixed_port() -> None:
    out = subprocess.run([sys.executable, "run.py", "--port=0", "--processes=2"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "--processes needs a fixed --port" in out.stderr


async def test_sigterm_to_the_parent_drains_every_worker(procs: Callable[..., Proc]) -> None:
    server = procs("--processes=2", listening=2)
    streams = [await request(server.url(Q)) for _ in range(4)]  # likely on both workers
    firsts = [await updates(resp, 1) for resp in streams]
    server.proc.terminate()  # the parent passes it on; each worker drains its streams
    rests = await asyncio.gather(*(resp.events() for resp in streams))
    for (text, _), rest in zip(firsts, rests, strict=True):
        assert text + contents(rest) == ANSWER  # finished, not cut
        assert rest[-1].json["reason"] == "stop"
    await asyncio.get_running_loop().run_in_executor(None, server.proc.wait, 15)
    assert server.proc.returncode == 0
    assert server.count("tornado_sse.shutdown: drained:") == 2  # one line per worker
