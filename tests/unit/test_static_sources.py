"""Static checks of the demo page's sources: the rules its safety rests on.

The browser tests show that hostile model output stays text; these keep the code from
drifting towards the patterns that would break that, and the page within its CSP."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from handlers.static_page import STATIC_DIR

SCRIPTS = sorted(STATIC_DIR.glob("*.js"))

# Sinks that parse strings as HTML or code. The CSP (Trusted Types, no unsafe-eval) would
# make them throw at run time; this finds them before anyone runs the page.
FORBIDDEN = [
    r"\.innerHTML\b", r"\.outerHTML\b", r"insertAdjacentHTML", r"document\.write",
    r"\beval\s*\(", r"new\s+Function\b", r"createContextualFragment", r"DOMParser",
    r"setTimeout\s*\(\s*['\"`]", r"setInterval\s*\(\s*['\"`]", r"\.srcdoc\b",
]


def test_the_page_has_scripts() -> None:
    assert {p.name for p in SCRIPTS} >= {"app.js", "sse-reader.js", "transports.js", "render.js"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_use_no_html_or_code_sinks(script: Path) -> None:
    code = script.read_text()
    for pattern in FORBIDDEN:
        assert not re.search(pattern, code), f"{script.name} uses {pattern}"


def test_index_has_no_inline_script_style_or_handlers() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts
    for attrs, body in scripts:
        assert 'src="' in attrs and not body.strip(), attrs
    assert not re.search(r"<style\b", html)
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)
    assert "javascript:" not in html


def test_no_remote_resources() -> None:
    # Only a comment citing the spec and the SVG's XML namespace name other hosts.
    allowed = ("https://html.spec.whatwg.org/", "http://www.w3.org/2000/svg")
    for path in STATIC_DIR.iterdir():
        for url in re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", path.read_text()):
            assert url.startswith(allowed), (path.name, url)
