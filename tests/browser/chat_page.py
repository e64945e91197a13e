"""A small page object for the demo page, so tests read as what a user does."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Locator, Page, expect

from .live_server import LiveServer

# Records the length of the latest answer at every DOM change, from inside the page:
# polling from the test could miss short-lived intermediate states.
_RECORD_LENGTHS = """() => {
  window.__lengths = [];
  const log = document.getElementById("conversation");
  new MutationObserver(() => {
    const answers = log.querySelectorAll(".msg.assistant .answer");
    if (answers.length) window.__lengths.push(answers[answers.length - 1].textContent.length);
  }).observe(log, {childList: true, subtree: true, characterData: true});
}"""


class ChatPage:
    def __init__(self, page: Page, live: LiveServer) -> None:
        self.page = page
        self.live = live
        self.status = page.locator("#status")
        self.question = page.locator("#question")
        self.send = page.locator("#send")
        self.stop = page.locator("#stop")

    def open(self, transport: str = "fetch") -> ChatPage:
        self.page.goto(self.live.url(f"/?transport={transport}"))
        expect(self.page.locator(f'input[name="transport"][value="{transport}"]')).to_be_checked()
        expect(self.status).to_have_attribute("data-state", "idle")
        return self

    def ask(self, question: str) -> None:
        self.question.fill(question)
        self.question.press("Enter")

    def record_lengths(self) -> None:
        self.page.evaluate(_RECORD_LENGTHS)

    def lengths(self) -> list[int]:
        return list(self.page.evaluate("() => window.__lengths"))

    def answers(self) -> Locator:
        return self.page.locator(".msg.assistant .answer")

    def answer(self, index: int = -1) -> Locator:
        n = self.answers().count()
        return self.answers().nth(index % n if n else 0)

    def message(self, index: int = -1) -> Locator:
        msgs = self.page.locator(".msg.assistant")
        n = msgs.count()
        return msgs.nth(index % n if n else 0)

    def wait_state(self, state: str, timeout: float = 10_000) -> None:
        expect(self.status).to_have_attribute("data-state", state, timeout=timeout)

    def notes(self) -> list[str]:
        return [t.strip() for t in self.message().locator(".note").all_text_contents()]

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)
