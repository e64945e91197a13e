"""run.py in a subprocess, for the e2e tests of resume and --processes. The embedded
demo upstream's answer is a pure function of the question, so the text a client
pieces together from cut connections can be checked exactly."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from tests.redis_server import free_port
from tests.sse_client import SSEResponse
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


