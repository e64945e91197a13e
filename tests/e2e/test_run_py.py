"""run.py as a subprocess with no configuration: the embedded demo upstream."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server() -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    proc = subprocess.Popen(
        [sys.executable, "run.py", f"--port={port}", "--demo-delay=0.002"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    try:
        seen = []
        for line in proc.stdout:  # log lines may come first
            seen.append(line)
            if "listening on http://127.0.0.1:%d/" % port in line:
                break
            assert len(seen) < 20, seen
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_streams_a_full_answer_with_plain_http(server: str) -> None:
    url = server + "/ai/streamChat?question=" + urllib.parse.quote("你好，介绍一下你自己")
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        body = resp.read().decode()
    blocks = [b for b in body.split("\n\n") if b]
    assert blocks[0] == "retry: 3000"
    assert blocks[1].startswith("event: start\n")
    updates = [b for b in blocks if b.startswith("event: update\n")]
    text = "".join(re.search(r'data: \{"content":"(.*)"\}', u).group(1) for u in updates)  # type: ignore[union-attr]
    assert text.startswith("你问的是：“你好，介绍一下你自己”。")
    assert len(updates) > 10
    sid = re.search(r'"stream":"([^"]+)"', blocks[1]).group(1)  # type: ignore[union-attr]
    end = blocks[-1]
    # end's id is one past the last update: a reconnect after it gets 204.
    assert end.startswith(f'event: end\nid: {sid}:{len(updates) + 1}\n'
                          'data: {"reason":"stop","usage":{"prompt_tokens":')
    assert json.loads(end.split("data: ", 1)[1])["usage"]["completion_tokens"] > 10


def test_help_lists_flags() -> None:
    out = subprocess.run([sys.executable, "run.py", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=30).stdout
    for flag in ("--host", "--port", "--upstream-url", "--model", "--heartbeat", "--connect-timeout",
                 "--first-token-timeout", "--idle-timeout", "--total-timeout", "--max-question-bytes"):
        assert flag in out


def test_busy_port_is_a_clear_error_not_a_traceback() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run([sys.executable, "run.py", f"--port={port}"], cwd=ROOT,
                             capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert f"run.py: cannot listen on 127.0.0.1:{port}: Address already in use" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


@pytest.mark.parametrize("flag,message", [("--port=70000", "--port must be within 0..65535"),
                                          ("--max-streams=0", "--max-streams must be >= 1"),
                                          ("--idle-timeout=-1", "--idle-timeout must be >= 0")])
def test_out_of_range_flags_are_refused(flag: str, message: str) -> None:
    out = subprocess.run([sys.executable, "run.py", flag], cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr
