"""static/render.js in Chromium: an answer rendered as it streams ends up exactly as the
same text rendered at once, wherever the tokens were cut, and is made of text only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page

from .live_server import LiveServer

TEXTS = {
    "paragraphs": "One.\nStill one.\n\nTwo with `code` and **bold**.\n\n\nThree.\n",
    "code_fence": "Intro:\n\n```python\ndef f():\n\n    return '<b>'\n```\nAfter the fence.",
    "unclosed_fence": "Text\n```\nnever closed <script>x</script>\n\nstill code",
    "tilde_and_long_fences": "~~~\na\n```\nb\n~~~\n\n````md\n```\ninner\n```\n````\nend",
    "crlf": "Line one\r\nline two\r\n\r\nNext paragraph\r\n```js\r\nlet x = 1;\r\n```\r\n",
    "html_and_markers": "<img src=x onerror=alert(1)> ** not bold ** `unclosed and **half",
}

# Renders `text` at once, then streamed in pieces cut at every position (two pieces) and
# in 3-character tokens, and reports any streamed rendering that differs.
_CHECK = """async ([text]) => {
  const { TextRenderer } = await import("/static/render.js");
  const render = (pieces) => {
    const box = document.createElement("div");
    const renderer = new TextRenderer(box);
    for (const piece of pieces) renderer.append(piece);
    return box;
  };
  const once = render([text]);
  const expected = once.innerHTML;
  const variants = [];
  for (let i = 1; i < text.length; i++) variants.push([text.slice(0, i), text.slice(i)]);
  variants.push(text.match(/[\\s\\S]{1,3}/g));
  for (const pieces of variants) {
    const got = render(pieces).innerHTML;
    if (got !== expected) return { expected, got, pieces };
  }
  const tags = [...once.querySelectorAll("*")].map((e) => e.tagName.toLowerCase());
  return { ok: true, html: expected, tags, text: once.textContent };
}"""


@pytest.fixture(scope="module")
def site_page(browser: Any, live_server: LiveServer) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.goto(live_server.url("/"))
    yield page
    context.close()


@pytest.mark.parametrize("name", list(TEXTS))
def test_streamed_rendering_equals_rendering_at_once(site_page: Page, name: str) -> None:
    result = site_page.evaluate(_CHECK, [TEXTS[name]])
    assert result.get("ok"), result
    # Only the elements the renderer makes; the model's own tags are text.
    assert set(result["tags"]) <= {"p", "pre", "code", "strong"}, result["tags"]


def test_blocks(site_page: Page) -> None:
    html = site_page.evaluate(_CHECK, [TEXTS["code_fence"]])["html"]
    assert html == ('<p>Intro:</p><pre class="code-block" data-lang="python"><code>def f():\n\n'
                    "    return '&lt;b&gt;'</code></pre><p>After the fence.</p>")
    html = site_page.evaluate(_CHECK, [TEXTS["html_and_markers"]])["html"]
    assert html == ("<p>&lt;img src=x onerror=alert(1)&gt; ** not bold ** `unclosed and **half</p>")
