"""/healthz, /metrics, the access log and CORS, against the in-process app."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import Running
from tests.fake_upstream import FakeUpstream, Script, sse_stream
from tests.prom import value
from tests.sse_client import contents, request

DELTAS = ["你好", "，世界", "! 🌍", " and ascii", "。"]
SECRET = "sk-test-SECRET-key-123456"


def q(text: str) -> str:
    return "/ai/streamChat?question=" + quote(text)


async def metrics_text(app: Running) -> str:
    resp = await request(app.url("/metrics"))
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return resp.raw.decode()


def access_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.fields for r in caplog.records  # type: ignore[attr-defined]
            if r.name == "tornado_sse.access" and getattr(r, "event", None) == "stream_end"]


async def test_healthz(app: Running) -> None:
    resp = await request(app.url("/healthz"))
    assert resp.status == 200
    assert json.loads(resp.raw) == {"status": "ok", "streams": 0}
    assert resp.headers["cache-control"] == "no-store"


async def test_metrics_after_a_finished_stream(app: Running, fake: FakeUpstream) -> None:
    upstream_body = sse_stream(DELTAS)
    fake.queue(Script.stream(upstream_body, piece=7))
    resp = await request(app.url(q("hi")))
    events = await resp.events()
    assert contents(events) == "".join(DELTAS)
    text = await metrics_text(app)
    assert value(text, "tornado_sse_streams_started_total") == 1
    assert value(text, "tornado_sse_streams_active") == 0
    assert value(text, "tornado_sse_streams_finished_total", reason="stop", code="") == 1
    assert value(text, "tornado_sse_deltas_total") == len(DELTAS)
    assert value(text, "tornado_sse_client_bytes_total") == len(resp.raw)
    assert value(text, "tornado_sse_upstream_bytes_total") == len(upstream_body)
    assert value(text, "tornado_sse_upstream_ttft_seconds_count") == 1
    assert value(text, "tornado_sse_stream_duration_seconds_count") == 1
    assert value(text, "tornado_sse_streams_capacity") == app.server.settings.max_streams
    for cause in ("disconnect", "stop", "timeout", "slow_client"):
        assert value(text, "tornado_sse_upstream_aborts_total", cause=cause) == 0
    # the process collector is there in single-process mode
    assert "process_resident_memory_bytes" in text


async def test_active_streams_gauge(app: Running, fake: FakeUpstream) -> None:
    fake.queue(Script(hang=True), Script(hang=True))
    a = await request(app.url(q("a")))
    b = await request(app.url(q("b")))
    await a.next_event()
    await b.next_event()
    assert value(await metrics_text(app), "tornado_sse_streams_active") == 2
    a.close()
    await asyncio.wait_for(fake.received[0].closed.wait(), 5)
    assert value(await metrics_text(app), "tornado_sse_streams_active") == 1


async def test_metrics_by_reason_code_and_abort_cause(make_app: Any, settings: Any,
                                                     fake: FakeUpstream) -> None:
    app = make_app(settings.replace(heartbeat=0.2, first_token_timeout=0.7))
    # 1. first-token timeout: aborted for "timeout", heartbeats meanwhile
    fake.queue(Script(hang=True))
    events = await (await request(app.url(q("slow")))).events()
    assert events[-2].json["code"] == "upstream_timeout"
    # 2. the client leaves: aborted for "disconnect"
    fake.queue(Script(hang=True))
    resp = await request(app.url(q("leave")))
    await resp.next_event()
    while len(fake.received) < 2:
        await asyncio.sleep(0.01)
    resp.close()
    await asyncio.wait_for(fake.received[1].closed.wait(), 5)
    # 3. upstream 500: an error, but nothing to abort (the upstream ended it)
    fake.queue(Script(status=500, body=[b"boom"]))
    await (await request(app.url(q("err")))).events()
    await asyncio.sleep(0.05)
    text = await metrics_text(app)
    assert value(text, "tornado_sse_streams_finished_total", reason="error", code="upstream_timeout") == 1
    assert value(text, "tornado_sse_streams_finished_total", reason="cancelled", code="") == 1
    assert value(text, "tornado_sse_streams_finished_total", reason="error", code="upstream_error") == 1
    assert value(text, "tornado_sse_upstream_aborts_total", cause="timeout") == 1
    assert value(text, "tornado_sse_upstream_aborts_total", cause="disconnect") == 1
    assert value(text, "tornado_sse_upstream_aborts_total", cause="error") == 0
    assert value(text, "tornado_sse_heartbeats_total") >= 2
    assert value(text, "tornado_sse_upstream_ttft_seconds_count") == 0  # no stream had a token
    assert value(text, "tornado_sse_streams_active") == 0


async def test_refusals_counted(make_app: Any, settings: Any, fake: FakeUpstream) -> None:
    app = make_app(settings.replace(max_streams=1))
    fake.queue(Script(hang=True))
    held = await request(app.url(q("held")))
    await held.next_event()
    refused = await request(app.url(q("one too many")))
    assert refused.status == 503 and refused.headers["retry-after"]
    bad = await request(app.url("/ai/streamChat"))
    assert bad.status == 400
    text = await metrics_text(app)
    assert value(text, "tornado_sse_requests_refused_total", status="503") == 1
    assert value(text, "tornado_sse_requests_refused_total", status="400") == 1
    assert value(text, "tornado_sse_requests_refused_total", status="429") == 0


async def test_one_access_line_per_stream(app: Running, fake: FakeUpstream,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake.queue(Script.stream(sse_stream(DELTAS)))
    question = "my private question 秘密"
    resp = await request(app.url(q(question)), headers={"Authorization": "Bearer client-token-XYZ"})
    await resp.events()
    await asyncio.sleep(0.05)
    lines = access_records(caplog)
    assert len(lines) == 1
    line = lines[0]
    assert line["stream"] == resp.headers["x-stream-id"]
    assert line["client"] == "127.0.0.1"
    assert line["method"] == "GET" and line["path"] == "/ai/streamChat"
    assert line["status"] == 200
    assert line["reason"] == "stop" and line["code"] is None and line["abort"] is None
    assert line["deltas"] == len(DELTAS)
    assert line["bytes"] == len(resp.raw)
    assert 0 <= line["ttft"] <= line["duration"]
    assert "question" not in line
    # No question text, client token or upstream key anywhere in the logs; and
    # Tornado's own per-request line is not written for the stream.
    for record in caplog.records:
        message = record.getMessage()
        for secret in ("private", quote("private"), "秘密", "client-token", SECRET):
            assert secret not in message, (record.name, message)
    assert not [r for r in caplog.records if r.name == "tornado.access"
                and "/ai/streamChat" in r.getMessage()]


async def test_access_line_for_cancelled_and_failed_streams(
        make_app: Any, settings: Any, fake: FakeUpstream, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app = make_app(settings.replace(first_token_timeout=0.5))
    fake.queue(Script(hang=True))
    resp = await request(app.url(q("leave")))
    await resp.next_event()
    while not fake.received:
        await asyncio.sleep(0.01)
    resp.close()
    await asyncio.wait_for(fake.received[0].closed.wait(), 5)
    fake.queue(Script(hang=True))
    await (await request(app.url(q("timeout")))).events()
    await asyncio.sleep(0.05)
    cancelled, timed_out = access_records(caplog)
    assert cancelled["reason"] == "cancelled" and cancelled["abort"] == "disconnect"
    assert cancelled["ttft"] is None and cancelled["deltas"] == 0
    assert timed_out["reason"] == "error" and timed_out["code"] == "upstream_timeout"
    assert timed_out["abort"] == "timeout"


async def test_log_content_opts_in_redacted(make_app: Any, settings: Any, fake: FakeUpstream,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app = make_app(settings.replace(log_content=True))
    body = json.dumps({"question": "why is sk-abcdefghijklmnop in my\nlogs?"}).encode()
    await (await request(app.url("/ai/streamChat"), "POST", body)).events()
    await asyncio.sleep(0.05)
    (line,) = access_records(caplog)
    assert line["question"] == "why is [REDACTED] in my\nlogs?"
    text_line = next(r.getMessage() for r in caplog.records if r.name == "tornado_sse.access")
    assert 'question="why is [REDACTED] in my\\nlogs?"' in text_line  # still one line


async def test_refused_request_logged_without_query(app: Running,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    resp = await request(app.url("/ai/streamChat?question=&token=tok-SECRET"))
    assert resp.status == 400
    await asyncio.sleep(0.05)
    lines = [r for r in caplog.records if r.name == "tornado.access"]
    assert len(lines) == 1
    assert lines[0].fields == {  # type: ignore[attr-defined]
        "method": "GET", "path": "/ai/streamChat", "status": 400, "client": "127.0.0.1",
        "duration": lines[0].fields["duration"]}  # type: ignore[attr-defined]
    assert lines[0].levelno == logging.WARNING
    assert "SECRET" not in lines[0].getMessage()


async def test_cors(make_app: Any, settings: Any, fake: FakeUpstream) -> None:
    app = make_app(settings.replace(cors_origins=("https://app.example",)))
    origin = {"Origin": "https://app.example"}
    resp = await request(app.url(q("x")), headers=origin)
    assert resp.headers["access-control-allow-origin"] == "https://app.example"
    assert resp.headers["access-control-allow-credentials"] == "true"
    assert "X-Stream-Id" in resp.headers["access-control-expose-headers"]
    await resp.events()
    # errors too, so the page can read them
    bad = await request(app.url("/ai/streamChat"), headers=origin)
    assert bad.status == 400 and bad.headers["access-control-allow-origin"] == "https://app.example"
    # preflight for a JSON POST
    pre = await request(app.url("/ai/streamChat"), "OPTIONS", headers={
        **origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert pre.status == 204
    assert pre.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert pre.headers["access-control-allow-headers"] == "content-type"
    # an origin not listed: no grant, and a readable refusal of the preflight
    other = {"Origin": "https://evil.example"}
    resp = await request(app.url("/healthz"), headers=other)
    assert "access-control-allow-origin" not in resp.headers
    pre = await request(app.url("/ai/streamChat"), "OPTIONS",
                        headers={**other, "Access-Control-Request-Method": "POST"})
    assert pre.status == 403
    assert json.loads(pre.raw)["error"]["code"] == "cors_forbidden"


async def test_no_cors_by_default(app: Running) -> None:
    resp = await request(app.url("/healthz"), headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in resp.headers
    pre = await request(app.url("/ai/streamChat"), "OPTIONS", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert pre.status == 403


async def test_slow_client_abort_is_counted(app: Running, fake: FakeUpstream,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    big = "x" * 16384
    fake.queue(Script.stream(sse_stream([big] * 800), piece=65536))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and then never read
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", app.port))
        sock.send(b"GET /ai/streamChat?question=x HTTP/1.1\r\nHost: x\r\n\r\n")
        while not fake.received:
            await asyncio.sleep(0.01)
        await asyncio.wait_for(fake.received[0].closed.wait(), 20)
    finally:
        sock.close()
    assert not fake.received[0].finished
    text = await metrics_text(app)
    assert value(text, "tornado_sse_upstream_aborts_total", cause="slow_client") == 1
    assert value(text, "tornado_sse_streams_finished_total", reason="error", code="slow_client") == 1
    (line,) = access_records(caplog)
    assert line["reason"] == "error" and line["code"] == "slow_client"
    assert line["abort"] == "slow_client"


async def test_preflight_needs_no_token(make_app: Any, settings: Any, fake: FakeUpstream) -> None:
    app = make_app(settings.replace(cors_origins=("https://app.example",),
                                    tokens="tok-alice-0123456789abcdef alice"))
    for path in ("/ai/streamChat", "/v1/chat/completions"):
        pre = await request(app.url(path), "OPTIONS", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert pre.status == 204, path
        assert pre.headers["access-control-allow-headers"] == "authorization, content-type"
    # the actual request still needs its token, and its refusal is readable cross-origin
    resp = await request(app.url(q("x")), headers={"Origin": "https://app.example"})
    assert resp.status == 401
    assert resp.headers["access-control-allow-origin"] == "https://app.example"


async def test_rate_limit_refusals_counted(make_app: Any, settings: Any, fake: FakeUpstream) -> None:
    app = make_app(settings.replace(max_streams_per_token=1))
    fake.queue(Script(hang=True))
    held = await request(app.url(q("held")))
    await held.next_event()
    refused = await request(app.url(q("second")))
    assert refused.status == 429
    text = await metrics_text(app)
    assert value(text, "tornado_sse_requests_refused_total", status="429") == 1
    assert value(text, "tornado_sse_requests_refused_total", status="503") == 0
