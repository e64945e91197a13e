"""The seed's own front-end logic, unchanged, in Chromium against our server.

The seed page is served from our server's origin by Playwright (``page.route``), so its
``EventSource`` on ``/ai/streamChat`` reaches the real app, which relays from the fake
upstream.
"""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import ConsoleMessage, Page, Route, expect

from tests.fake_upstream import Script, sse_stream

from .live_server import LiveServer

SEED_PAGE = Path(__file__).parent / "seed_page"
DELTAS = ["你好", "！我是", "一个演示", "模型", "。", " Emoji: 🌍🚀", " 👩‍👩‍👧", " done."]


def open_seed_page(page: Page, live: LiveServer) -> list[ConsoleMessage]:
    def serve(route: Route) -> None:
        name = route.request.url.rsplit("/", 1)[1]
        kind = "text/javascript" if name.endswith(".js") else "text/html"
        route.fulfill(body=(SEED_PAGE / name).read_bytes(), content_type=f"{kind}; charset=utf-8")

    page.route("**/__seed__/*", serve)
    messages: list[ConsoleMessage] = []
    page.on("console", lambda m: messages.append(m))
    page.goto(live.url("/__seed__/index.html"))
    return messages


def test_seed_page_collects_the_full_answer(page: Page, live: LiveServer) -> None:
    # Five-byte writes: UTF-8 characters and `data:` lines are cut between chunks upstream.
    live.queue(Script.stream(sse_stream(DELTAS), piece=5, pause=0.002))
    console = open_seed_page(page, live)
    page.fill("#question", "你好")
    with page.expect_console_message(lambda m: m.text == "流式传输结束"):
        page.click("#start")
    expect(page.locator("#output")).to_have_text("".join(DELTAS))
    assert page.evaluate("() => window.seedVm.eventSource.readyState") == 2  # CLOSED
    assert [m.text for m in console if m.type == "error"] == []
    time.sleep(0.5)  # retry is 200 ms: no second request after `end`
    assert len(live.received()) == 1
    assert live.received()[0].json["messages"] == [{"role": "user", "content": "你好"}]


def test_seed_page_error_listener_gets_the_servers_error(page: Page, live: LiveServer) -> None:
    live.queue(Script(status=503, content_type="application/json", body=[b"{}"]))
    console = open_seed_page(page, live)
    page.fill("#question", "会失败吗")
    with page.expect_console_message(lambda m: m.type == "error" and m.text.startswith("SSE错误")):
        page.click("#start")
    assert page.evaluate("() => window.seedVm.eventSource.readyState") == 2
    assert page.evaluate("() => window.seedVm.output") == ""
    time.sleep(0.5)
    assert len(live.received()) == 1
    assert not any(m.text == "流式传输结束" for m in console)
