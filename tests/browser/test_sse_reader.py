"""The page's SSE reader (static/sse-reader.js), run in Chromium, against the library's
parser (tornado_sse.sse_parser, itself tested against the spec) on an edge-case corpus,
with every stream cut at every byte position and also fed one byte at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page

from tornado_sse.sse_parser import SSEParser

from .live_server import LiveServer

CORPUS: dict[str, bytes] = {
    "simple": b"data: hello\n\n",
    "server_events": (b'retry: 3000\n\nevent: start\ndata: {"stream": "s1"}\n\nevent: update\n'
                      b'id: s1:1\ndata: {"content":"\xe4\xbd\xa0\xe5\xa5\xbd"}\n\n: heartbeat\n\n'
                      b'event: end\ndata: {"reason":"stop"}\n\n'),
    "crlf": b"event: update\r\ndata: one\r\ndata: two\r\n\r\ndata: three\r\n\r\n",
    "cr_only": b"data: a\rdata: b\r\revent: x\rdata: c\r\r",
    "mixed_eols": b"data: a\r\n\ndata: b\n\r\ndata: c\r\r\n",
    "bom": b"\xef\xbb\xbfdata: after bom\n\n",
    "bom_not_at_start": b"data: a\n\n\xef\xbb\xbfdata: b\n\ndata: c\n\n",
    "comments": b": heartbeat\n\n:\n:no space\ndata: y\n\n",
    "colon_spacing": b"data:x\ndata:  two spaces\ndata: : colon\n\n",
    "field_without_colon": b"data\n\nevent\ndata: z\n\n",
    "empty_data": b"data:\n\ndata\ndata\n\n",
    "id_rules": b"id: a\x00b\ndata: 1\n\nid: ok\ndata: 2\n\ndata: 3\n\nid\ndata: 4\n\n",
    "retry_rules": b"retry: 12a\ndata: r1\n\nretry: 500\ndata: r2\n\nretry: -1\ndata: r3\n\n",
    "unknown_fields": b"foo: bar\nDATA: no\ndata: q\n\n",
    "empty_event_type": b"event:\ndata: m\n\nevent: custom\ndata: n\n\n",
    "no_data_no_event": b"event: lonely\n\ndata: after\n\n",
    "unterminated_tail": b"data: done\n\ndata: partial",
    "multibyte": "data: 🌍🚀 👩‍👩‍👧 你好，世界 é\n\n".encode(),
    "invalid_utf8": b"data: \xff\xfe ok \xe4\xbd\n\ndata: \xc3\n\n",
    "unicode_line_separators": "data: a\u2028b\u0085c\x0bd\x0ce\n\n".encode(),
}

# Feeds `stream` (array of byte values) whole, cut once at every position, and one byte
# at a time; returns the events of the whole feed and the first cut that disagreed.
_FEED = """async ([stream]) => {
  const { SSEReader } = await import("/static/sse-reader.js");
  const bytes = Uint8Array.from(stream);
  const run = (chunks) => {
    const reader = new SSEReader();
    const events = [];
    for (const chunk of chunks) events.push(...reader.feed(chunk));
    events.push(...reader.end());
    return { events: events.map((e) => [e.type, e.data, e.lastEventId]), retry: reader.retry };
  };
  const whole = run([bytes]);
  const expected = JSON.stringify(whole);
  const cuts = [];
  for (let i = 1; i < bytes.length; i++) cuts.push([bytes.subarray(0, i), bytes.subarray(i)]);
  cuts.push(Array.from(bytes, (b) => Uint8Array.of(b)));
  for (const [n, chunks] of cuts.entries()) {
    const got = JSON.stringify(run(chunks));
    if (got !== expected) return { whole, failed: { cut: n, got } };
  }
  return { whole, failed: null };
}"""


def python_parse(stream: bytes) -> dict[str, Any]:
    parser = SSEParser()
    events = parser.feed(stream) + parser.close()
    return {"events": [[e.event, e.data, e.id] for e in events], "retry": parser.retry}


@pytest.fixture(scope="module")
def page_on_site(browser: Any, live_server: LiveServer) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.goto(live_server.url("/"))
    yield page
    context.close()


@pytest.mark.parametrize("name", list(CORPUS))
def test_reader_matches_the_library_parser_at_every_cut(page_on_site: Page, name: str) -> None:
    stream = CORPUS[name]
    result = page_on_site.evaluate(_FEED, [list(stream)])
    assert result["failed"] is None, result["failed"]
    assert result["whole"] == python_parse(stream)
