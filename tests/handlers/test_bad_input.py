"""Bad input: a 4xx with a JSON body naming the problem; the server carries on."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import Running
from tests.fake_upstream import FakeUpstream, Script
from tests.sse_client import contents, request

BAD = [
    ("GET", "/ai/streamChat", None, 400, "missing_question"),
    ("GET", "/ai/streamChat?question=", None, 400, "empty_question"),
    ("GET", "/ai/streamChat?question=%20%20", None, 400, "empty_question"),
    ("GET", "/ai/streamChat?question=%ff%fe", None, 400, "bad_utf8"),
    ("GET", "/ai/streamChat?question=" + "x" * 40000, None, 400, "question_too_long"),
    ("POST", "/ai/streamChat", b"{bad json", 400, "bad_json"),
    ("POST", "/ai/streamChat", b'{"question": "\xff"}', 400, "bad_utf8"),
    ("POST", "/ai/streamChat", b'{"messages": [{"role": "user"}]}', 400, "bad_messages"),
    ("POST", "/ai/streamChat", b'{"question": ""}', 400, "empty_question"),
    ("POST", "/ai/streamChat", b'{"question": "' + b"y" * (2 << 20) + b'"}', 413, "body_too_large"),
]


@pytest.mark.parametrize("method,path,body,status,code", BAD)
async def test_bad_input_then_normal_stream(app: Running, fake: FakeUpstream, method: str, path: str,
                                            body: bytes | None, status: int, code: str) -> None:
    resp = await request(app.url(path), method, body)
    assert resp.status == status
    assert resp.headers["content-type"].startswith("application/json")
    payload = json.loads(await resp.body())
    assert payload["error"]["code"] == code
    assert payload["error"]["message"]
    assert "Traceback" not in payload["error"]["message"]
    assert fake.received == []  # the upstream was never asked
    events = await (await request(app.url("/ai/streamChat?question=ok"))).events()
    assert contents(events) == "Hello, world!"


async def test_unknown_method_is_json_405(app: Running) -> None:
    resp = await request(app.url("/ai/streamChat"), "DELETE")
    assert resp.status == 405
    assert json.loads(await resp.body())["error"]["code"] == "http_405"


async def test_upstream_key_and_error_text_never_logged(app: Running, fake: FakeUpstream,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake.queue(Script(status=401, content_type="application/json",
                      body=[b'{"error": {"message": "Incorrect API key provided: sk-test-SECRET-key-123456"}}']))
    events = await (await request(app.url("/ai/streamChat?question=x"))).events()
    assert events[-2].json["code"] == "upstream_auth"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "upstream_auth" in logged  # the detail is logged ...
    assert "sk-test-SECRET-key-123456" not in logged  # ... redacted
