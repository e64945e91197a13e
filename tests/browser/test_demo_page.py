"""The demo page in headless Chromium against the app and a fake upstream."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.fake_upstream import Script

from .chat_page import ChatPage
from .live_server import LiveServer, paced

TRANSPORTS = ["fetch", "eventsource"]
DELTAS = ["Streaming", " answers", " arrive", " one", " token", " at", " a", " time", " —",
          " 你好", "，世界", " 🌍", "."]


@pytest.fixture
def chat(page: Page, live: LiveServer) -> ChatPage:
    return ChatPage(page, live)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_answer_grows_token_by_token_and_ends_done(chat: ChatPage, live: LiveServer,
                                                   transport: str) -> None:
    live.queue(paced(DELTAS, pause=0.04))
    chat.open(transport)
    chat.record_lengths()
    chat.ask("How do streams work?")
    expect(chat.stop).to_be_visible()
    chat.wait_state("done")
    final = "".join(DELTAS)
    expect(chat.answer()).to_have_text(final)
    intermediate = {n for n in chat.lengths() if 0 < n < len(final)}
    assert len(intermediate) >= 2, chat.lengths()
    expect(chat.message()).to_have_attribute("data-state", "done")
    expect(chat.send).to_be_visible()
    expect(chat.stop).to_be_hidden()
    # Time to first token and rate are shown; the count is of `update` events.
    meta = chat.message().locator(".meta-text").text_content() or ""
    assert "first token" in meta and "tok/s" in meta and f"{len(DELTAS)} tokens" in meta, meta
    expect(chat.page.locator("#ttft")).to_contain_text("first token")
    sent = live.received()[0].json
    assert sent["messages"] == [{"role": "user", "content": "How do streams work?"}]


def test_fetch_sends_the_whole_conversation(chat: ChatPage, live: LiveServer) -> None:
    live.queue(paced(["Hi", " there."], pause=0.01), paced(["Sure", "."], pause=0.01))
    chat.open("fetch")
    chat.ask("Hello")
    chat.wait_state("done")
    chat.ask("Line one\nline two, 第二行")
    chat.wait_state("done")
    assert live.received()[1].json["messages"] == [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there."},
        {"role": "user", "content": "Line one\nline two, 第二行"},
    ]
    expect(chat.answers()).to_have_count(2)


def test_eventsource_is_closed_after_end_and_never_asks_again(chat: ChatPage, live: LiveServer) -> None:
    live.queue(paced(["One", " answer."], pause=0.01))
    chat.open("eventsource")
    chat.ask("Only once, please")
    chat.wait_state("done")
    # The server sends `retry: 200` here; an EventSource left open would be back by now.
    time.sleep(1.0)
    assert len(live.received()) == 1
    expect(chat.answer()).to_have_text("One answer.")


XSS = ['Look: <img src=x onerror="window.__pwned=1">', " and <script>window.__pwned=2</script>",
       ' <iframe src="javascript:window.__pwned=3"></iframe>', " &lt;b&gt; <b>not bold</b>"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_model_output_is_text_and_runs_nothing(chat: ChatPage, live: LiveServer, transport: str) -> None:
    live.queue(paced(XSS, pause=0.02))
    chat.open(transport)
    chat.js("""() => {
      window.__violations = [];
      document.addEventListener("securitypolicyviolation",
                                (e) => window.__violations.push(e.violatedDirective));
    }""")
    chat.ask("Say something nasty")
    chat.wait_state("done")
    time.sleep(0.2)  # give an onerror handler, had one been created, time to fire
    expect(chat.answer()).to_have_text("".join(XSS))
    assert chat.js("() => window.__pwned") is None
    assert chat.page.locator("#conversation img, #conversation script, #conversation iframe, "
                             "#conversation b").count() == 0
    assert chat.js("() => window.__violations") == []


def test_light_formatting_is_built_from_text(chat: ChatPage, live: LiveServer) -> None:
    answer = ("First paragraph with `inline <code>` and **bold <i>**.\n\n"
              "```html\n<script>window.__pwned = 1</script>\n<p>kept as text</p>\n```\n\n"
              "Last paragraph.")
    # Cut the answer mid-fence and mid-backtick, as a model's tokens would.
    live.queue(paced([answer[i:i + 7] for i in range(0, len(answer), 7)], pause=0.005))
    chat.open("fetch")
    chat.ask("Format something")
    chat.wait_state("done")
    ans = chat.answer()
    expect(ans.locator(":scope > p")).to_have_count(2)
    expect(ans.locator(":scope > pre.code-block")).to_have_count(1)
    expect(ans.locator("pre code")).to_have_text("<script>window.__pwned = 1</script>\n<p>kept as text</p>")
    expect(ans.locator("pre")).to_have_attribute("data-lang", "html")
    expect(ans.locator("p code")).to_have_text("inline <code>")
    expect(ans.locator("p strong")).to_have_text("bold <i>")
    expect(ans.locator(":scope > p").last).to_have_text("Last paragraph.")
    assert chat.js("() => window.__pwned") is None
    assert ans.locator("script, i").count() == 0


def test_csp_blocks_inline_script_and_html_sinks(chat: ChatPage) -> None:
    chat.open("fetch")
    result = chat.js("""() => {
      const out = {};
      try {
        document.body.insertAdjacentElement("beforeend", document.createElement("div")).innerHTML =
          '<img src=x onerror="window.__pwned=1">';
        out.innerHTML = "allowed";
      } catch (e) { out.innerHTML = e.name; }
      try {
        const s = document.createElement("script");
        s.textContent = "window.__pwned = 2";
        document.body.append(s);
        out.script = "allowed";
      } catch (e) { out.script = e.name; }
      return out;
    }""")
    assert result == {"innerHTML": "TypeError", "script": "TypeError"}  # Trusted Types refuse
    time.sleep(0.1)
    assert chat.js("() => window.__pwned") is None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stop_mid_answer_closes_the_upstream(chat: ChatPage, live: LiveServer, transport: str) -> None:
    live.queue(paced(["Part", " one", " of", " a", " long", " answer"], pause=0.05, hang=True))
    chat.open(transport)
    stream_ids: list[str] = []
    stop_requests: list[str] = []
    chat.page.on("response", lambda r: stream_ids.append(r.headers["x-stream-id"])
                 if "/ai/streamChat" in r.url else None)
    chat.page.on("request", lambda r: stop_requests.append(f"{r.method} {r.url}")
                 if "/ai/stop/" in r.url else None)
    chat.ask("Tell me a long story")
    expect(chat.answer()).to_contain_text("Part one")
    chat.stop.click()
    chat.wait_state("stopped")
    expect(chat.send).to_be_visible()
    live.wait_until(lambda: live.fake.received[0].closed_at is not None, timeout=5,
                    what="the fake upstream to see its connection closed")
    live.wait_until(lambda: live.running.relay.active == 0, timeout=5, what="the relay to drop the stream")
    text = chat.answer().text_content()
    time.sleep(0.3)
    assert chat.answer().text_content() == text  # nothing more arrives
    assert text and text.startswith("Part one") and "Stopped." in chat.notes()
    # The page also asked the server to stop the stream by its id (POST /ai/stop/<id>);
    # a server without that endpoint answers 404, and the closed connection does the work.
    assert stop_requests == [f"POST {live.url('/ai/stop/' + stream_ids[0])}"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_upstream_failure_shows_the_error_message(chat: ChatPage, live: LiveServer, transport: str) -> None:
    live.queue(Script(status=500, content_type="application/json",
                      body=[b'{"error": {"message": "db password is hunter2"}}']))
    chat.open(transport)
    chat.ask("Will this work?")
    chat.wait_state("error")
    assert chat.notes() == ["The AI service returned an error."]
    assert "hunter2" not in (chat.page.text_content("body") or "")
    expect(chat.message()).to_have_attribute("data-state", "error")
    expect(chat.status.locator(".pill")).to_have_text("error")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_upstream_cut_mid_answer_keeps_the_text_and_says_so(chat: ChatPage, live: LiveServer,
                                                            transport: str) -> None:
    script = paced(["Half", " an", " answer"], pause=0.02, hang=True)
    script.hang, script.drop = False, True
    live.queue(script)
    chat.open(transport)
    chat.ask("Go")
    chat.wait_state("error")
    expect(chat.answer()).to_have_text("Half an answer")
    assert chat.notes() == ["The connection to the AI service was lost mid-answer."]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_dropped_connection_says_so_and_does_not_reconnect(chat: ChatPage, live: LiveServer,
                                                           transport: str) -> None:
    live.queue(paced(["Before", " the", " cut"], pause=0.02, hang=True))
    chat.open(transport)
    chat.ask("Hold on")
    expect(chat.answer()).to_have_text("Before the cut")
    live.drop_client_connections()
    chat.wait_state("error")
    assert chat.notes() == ["The connection to the server was lost before the answer finished."]
    expect(chat.answer()).to_have_text("Before the cut")
    time.sleep(0.8)  # retry is 200 ms: a reconnecting EventSource would have asked again
    assert len(live.received()) == 1


def test_refused_request_shows_the_servers_message(chat: ChatPage, live: LiveServer) -> None:
    chat.open("fetch")
    chat.ask("x" * 40_000)  # over the 32 KiB question limit: a 400 before any stream
    chat.wait_state("error")
    assert chat.notes()[0].startswith("'question' is 40000 bytes; the limit is")
    assert live.received() == []


def test_enter_sends_shift_enter_newline_ime_enter_does_not(chat: ChatPage, live: LiveServer) -> None:
    live.queue(paced(["ok"], pause=0.01))
    chat.open("fetch")
    q = chat.question
    q.click()
    chat.page.keyboard.type("first line")
    chat.page.keyboard.press("Shift+Enter")
    chat.page.keyboard.type("second line")
    expect(q).to_have_value("first line\nsecond line")
    expect(chat.page.locator(".msg")).to_have_count(0)

    # Enter that confirms an input-method candidate (Chinese, Japanese) must not send.
    chat.js("""() => { window.__enters = []; document.getElementById("question").addEventListener(
        "keydown", (e) => { if (e.key === "Enter") window.__enters.push(e.isComposing); }, true); }""")
    cdp = chat.page.context.new_cdp_session(chat.page)
    cdp.send("Input.imeSetComposition", {"text": "nihao", "selectionStart": 5, "selectionEnd": 5})
    chat.page.keyboard.press("Enter")
    assert chat.js("() => window.__enters") == [True]  # a real composition was in progress
    expect(chat.page.locator(".msg")).to_have_count(0)
    cdp.send("Input.insertText", {"text": "你好"})  # the IME commits its candidate
    # Safari's variant: the confirming keydown arrives after compositionend with keyCode 229.
    chat.js("""() => document.getElementById("question").dispatchEvent(
        new KeyboardEvent("keydown", {key: "Enter", keyCode: 229, bubbles: true, cancelable: true}))""")
    expect(chat.page.locator(".msg")).to_have_count(0)
    cdp.detach()

    # (Without a real IME the emulated Enter may also have added a newline; the point is
    # that nothing was sent.)
    typed = q.input_value()
    assert typed.startswith("first line\nsecond line") and "你好" in typed
    chat.page.keyboard.press("Enter")
    chat.wait_state("done")
    assert live.received()[0].json["messages"][-1]["content"] == typed
    expect(q).to_have_value("")


def test_new_chat_clears_the_conversation(chat: ChatPage, live: LiveServer) -> None:
    live.queue(paced(["a"], pause=0.01), paced(["b"], pause=0.01))
    chat.open("fetch")
    chat.ask("one")
    chat.wait_state("done")
    chat.page.locator("#new-chat").click()
    expect(chat.page.locator(".msg")).to_have_count(0)
    expect(chat.page.locator("#welcome")).to_be_visible()
    chat.ask("two")
    chat.wait_state("done")
    assert live.received()[1].json["messages"] == [{"role": "user", "content": "two"}]


def test_transport_choice_is_remembered(chat: ChatPage) -> None:
    chat.open("fetch")
    chat.page.locator('label:has(input[value="eventsource"])').click()
    chat.page.goto(chat.live.url("/"))
    expect(chat.page.locator('input[name="transport"][value="eventsource"]')).to_be_checked()
    expect(chat.page.locator("#transport-note")).to_contain_text("EventSource")


def no_horizontal_overflow(page: Page) -> Any:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_narrow_phone_screen(browser: Any, live: LiveServer, page_errors: list[str]) -> None:
    long_code = "```sh\ncurl -N 'http://127.0.0.1:8888/ai/streamChat?question=" + "x" * 120 + "'\n```"
    live.queue(paced(["A", " long", " unbroken", " word: " + "ab" * 80 + "\n\n", long_code], pause=0.01))
    ctx = browser.new_context(viewport={"width": 360, "height": 640}, device_scale_factor=2,
                              is_mobile=True, has_touch=True)
    try:
        page = ctx.new_page()
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        chat = ChatPage(page, live).open("fetch")
        for sel in ("#question", "#send", "#new-chat", 'input[value="eventsource"] + span'):
            box = page.locator(sel).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 360, (sel, box)
        chat.question.fill("Phone test")
        chat.send.tap()
        chat.wait_state("done")
        assert no_horizontal_overflow(page)
        box = page.locator("#question").bounding_box()
        assert box and box["y"] + box["height"] <= 640  # the composer stays on screen
        code = page.locator("pre.code-block")
        # The long line scrolls inside its block instead of widening the page.
        assert code.evaluate("e => e.scrollWidth > e.clientWidth")
    finally:
        ctx.close()


def test_screenshot_of_a_finished_conversation(browser: Any, live: LiveServer, artifacts: Any) -> None:
    first = ("Server-Sent Events keep one HTTP response open and push `event:`/`data:` blocks "
             "down it, so each token of an answer reaches the page as soon as the model "
             "writes it.\n\nTry it from a terminal:\n\n"
             "```sh\ncurl -N 'http://127.0.0.1:8888/ai/streamChat?question=hi'\n```\n\n"
             "Each `update` event carries one piece of the answer; `end` says it is complete.")
    second = ("Press **Stop** while an answer streams: the page aborts the request and the "
              "server aborts the upstream call, so nobody pays for tokens no one reads.")
    first_tokens = [first[i:i + 5] for i in range(0, len(first), 5)]
    second_tokens = re.findall(r"\S+\s*", second)
    for name, viewport, scheme in (("demo", {"width": 1100, "height": 820}, "light"),
                                   ("demo-phone-dark", {"width": 390, "height": 844}, "dark")):
        live.queue(paced(first_tokens, pause=0.012), paced(second_tokens, pause=0.02))
        ctx = browser.new_context(viewport=viewport, color_scheme=scheme, device_scale_factor=1)
        try:
            page = ctx.new_page()
            chat = ChatPage(page, live).open("fetch")
            chat.ask("What are Server-Sent Events, in short?")
            chat.wait_state("done")
            chat.ask("And what does Stop do?")
            chat.wait_state("done")
            page.locator("#question").blur()
            path = artifacts / f"{name}.png"
            page.screenshot(path=str(path))
            assert path.stat().st_size > 10_000
        finally:
            ctx.close()
