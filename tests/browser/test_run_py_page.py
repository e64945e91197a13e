"""What a newcomer does: ``python run.py``, open the printed URL, chat.

run.py runs as a subprocess with no configuration (the embedded demo upstream), and the
browser opens exactly the URL it printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import ROOT


@pytest.fixture(scope="module")
def printed_url() -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    proc = subprocess.Popen(
        [sys.executable, "run.py", "--port=0", "--demo-delay=0.002"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    try:
        url = None
        for _ in range(20):  # log lines may come first
            line = proc.stdout.readline()
            match = re.search(r"listening on (http://127\.0\.0\.1:\d+/)", line)
            if match:
                url = match.group(1)
                break
        assert url, "run.py did not print its URL"
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0


@pytest.mark.parametrize("transport", ["fetch", "eventsource"])
def test_newcomer_chats_with_the_demo_upstream(browser: Any, printed_url: str, transport: str) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(printed_url)
        page.locator(f'label:has(input[value="{transport}"])').click()
        page.locator(".suggestion").first.click()  # "What are Server-Sent Events good for?"
        expect(page.locator("#status")).to_have_attribute("data-state", "done", timeout=30_000)
        answer = page.locator(".msg.assistant .answer")
        expect(answer).to_contain_text('You asked: "What are Server-Sent Events good for?".')
        expect(answer).to_contain_text("point OPENAI_BASE_URL at a real model for real answers.")
    finally:
        context.close()
