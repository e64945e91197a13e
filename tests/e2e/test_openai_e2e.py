"""run.py as a subprocess: client tokens, the loopback-only rule, and the openai SDK
against the embedded demo upstream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from .test_run_py import ROOT, free_port

TOKEN = "e2e-token-0123456789abcdef"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TORNADO_SSE_"))}
    env.update(extra)
    return env


def run_briefly(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, env=clean_env(**env),
                          capture_output=True, text=True, timeout=30)


def test_refuses_to_listen_beyond_loopback_without_tokens() -> None:
    # The check runs before anything binds: nothing ever listens on 0.0.0.0 here.
    done = run_briefly(["--host=0.0.0.0", f"--port={free_port()}"])
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0 without client tokens" in done.stderr
    assert "--allow-anonymous" in done.stderr


def test_refuses_a_bad_tokens_file_without_printing_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"{TOKEN} alice\nshort-secret bob\n")
    done = run_briefly([f"--tokens-file={path}", f"--port={free_port()}"])
    assert done.returncode == 2
    assert "line 2: a token must be 16 to 512 characters" in done.stderr
    assert TOKEN not in done.stderr + done.stdout and "short-secret" not in done.stderr


class Server:
    def __init__(self, *args: str, **env: str) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "run.py", f"--port={port}", *args], cwd=ROOT, env=clean_env(**env),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        self.log: list[str] = []
        for line in self.proc.stdout:
            self.log.append(line)
            if f"listening on http://127.0.0.1:{port}/" in line:
                break
            assert len(self.log) < 20, self.log

    def stop(self) -> str:
        """Stop the server; all it printed."""
        if self.proc.returncode is None:
            self.proc.terminate()
            out, _ = self.proc.communicate(timeout=10)
            self.log.append(out)
        return "".join(self.log)


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server("--demo-delay=0.001", TORNADO_SSE_TOKENS=f"{TOKEN} e2e")
    try:
        yield running
    finally:
        running.stop()
    assert running.proc.returncode == 0


def test_openai_sdk_against_run_py(server: Server) -> None:
    base = server.base
    assert "client tokens: 1)" in server.log[-1]
    with OpenAI(base_url=base + "/v1", api_key=TOKEN, max_retries=0) as sdk:
        stream = sdk.chat.completions.create(model="demo", messages=[{"role": "user", "content": "你好"}],
                                             stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.startswith("你问的是：“你好”。")
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 10
        answer = sdk.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content.startswith('You asked: "hi".')  # type: ignore[union-attr]
        assert answer.usage is not None
    # The page's way in: EventSource GET with ?token=.
    url = base + "/ai/streamChat?question=hi&token=" + TOKEN
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert b"event: end" in resp.read()
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(base + "/ai/streamChat?question=hi", timeout=30)
    assert info.value.code == 401
    info.value.close()
    request = urllib.request.Request(base + "/v1/usage", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        usage = json.load(resp)
    assert usage["client"] == "e2e" and usage["requests"] == 3 and usage["requests_with_usage"] == 3
    server_log = server.stop()
    # Access-log lines carry the path only (never the query string with the
    # token or the question) and name the client by its token's name.
    assert "path=/ai/streamChat" in server_log and "client=e2e" in server_log
    assert TOKEN not in server_log


def test_help_lists_the_token_flags() -> None:
    out = run_briefly(["--help"]).stdout
    for flag in ("--tokens-file", "--allow-anonymous", "--max-streams-per-token", "--rate-limit",
                 "--no-upstream-usage", "TORNADO_SSE_TOKENS"):
        assert flag in out
