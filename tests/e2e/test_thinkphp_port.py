"""examples/thinkphp_port.py runs on its own, against the embedded demo upstream."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

from .test_run_py import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_example_runs_and_streams() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = str(ROOT)  # as after `pip install -e .`
    proc = subprocess.Popen(
        [sys.executable, "examples/thinkphp_port.py", f"--port={port}", "--demo-delay=0.002"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if f"listening on http://127.0.0.1:{port}/" in line:
                break
        url = f"http://127.0.0.1:{port}/ai/streamChat?question=" + urllib.parse.quote("你好")
        with urllib.request.urlopen(url, timeout=30) as resp:
            assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
            body = resp.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    blocks = [b for b in body.split("\n\n") if b]
    assert blocks[0] == "retry: 3000"
    assert blocks[1].startswith("event: start\n")
    text = "".join(json.loads(b.split("data: ", 1)[1])["content"]
                   for b in blocks if b.startswith("event: update\n"))
    assert text.startswith("你问的是：“你好”。")
    # end's id is one past the last update, as on the main endpoint (resume's 204 rule).
    assert re.fullmatch(r'event: end\nid: [\w-]+:\d+\ndata: \{"reason":"stop"\}', blocks[-1])
    assert proc.returncode == 0, out
    assert "Traceback" not in out
