"""Client tokens, per-token limits and usage, on /ai/* and /v1/*."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import openai
import pytest
from openai import AsyncOpenAI
from tornado.ioloop import IOLoop

from tests.conftest import Running
from tests.fake_upstream import FakeUpstream, Script, sse_stream
from tests.sse_client import contents, request
from tornado_sse.config import Settings

ALICE = "tok-alice-0123456789abcdef"
BOB = "tok-bob-0123456789abcdefgh"
USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
USER = [{"role": "user", "content": "hi"}]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def q(text: str, token: str | None = None) -> str:
    return "/ai/streamChat?question=" + quote(text) + (f"&token={token}" if token else "")


def chat_body(stream: bool = True) -> bytes:
    return json.dumps({"model": "m", "messages": USER, "stream": stream}).encode()


@pytest.fixture
def tokened(settings: Settings) -> Settings:
    return settings.replace(tokens=f"{ALICE} alice,{BOB} bob")


@pytest.fixture
def app2(make_app: Any, tokened: Settings) -> Running:
    running: Running = make_app(tokened)
    return running


@pytest.fixture
def sdk(app2: Running, io_loop: IOLoop) -> Iterator[Any]:
    made: list[AsyncOpenAI] = []

    def factory(token: str) -> AsyncOpenAI:
        client = AsyncOpenAI(base_url=app2.url("/v1"), api_key=token, max_retries=0)
        made.append(client)
        return client

    yield factory
    for client in made:
        io_loop.run_sync(client.close)


# -- 401 ------------------------------------------------------------------------

@pytest.mark.parametrize("path,method,body", [
    (q("hi"), "GET", None),
    ("/ai/streamChat", "POST", b'{"question": "hi"}'),
    ("/v1/chat/completions", "POST", b"{}"),
    ("/v1/models", "GET", None),
    ("/v1/usage", "GET", None),
])
@pytest.mark.parametrize("token,code", [(None, "missing_token"), ("wrong-token-0123456789", "invalid_token"),
                                        (ALICE[:-1], "invalid_token")])
async def test_every_endpoint_needs_a_valid_token(app2: Running, fake: FakeUpstream, path: str,
                                                  method: str, body: bytes | None, token: str | None,
                                                  code: str) -> None:
    resp = await request(app2.url(path), method, body, bearer(token) if token else {})
    assert resp.status == 401
    assert resp.headers["www-authenticate"] == 'Bearer realm="tornado_sse"'
    error = json.loads(resp.raw)["error"]
    assert error["code"] == code
    if path.startswith("/v1"):
        assert error["type"] == "authentication_error" and error["param"] is None
    else:
        assert set(error) == {"code", "message"}
    assert not fake.received


async def test_sdk_with_a_wrong_token_gets_authentication_error(sdk: Any, fake: FakeUpstream) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        await sdk("wrong-token-0123456789").chat.completions.create(model="m", messages=USER)
    assert info.value.code == "invalid_token"
    assert not fake.received


async def test_get_event_source_takes_query_or_cookie(app2: Running, fake: FakeUpstream) -> None:
    for path, headers in [(q("hi", ALICE), {}), (q("hi"), {"Cookie": f"tornado_sse_token={BOB}"}),
                          (q("hi"), bearer(ALICE))]:
        resp = await request(app2.url(path), "GET", None, headers)
        assert resp.status == 200, path
        assert contents(await resp.events()) == "Hello, world!"
    resp = await request(app2.url(q("hi", "not-a-token-0123456789")))
    assert resp.status == 401


async def test_post_does_not_take_query_or_cookie(app2: Running, fake: FakeUpstream) -> None:
    # A cookie (or a token in a link) on a POST would let any page spend it.
    for path, headers in [("/ai/streamChat?token=" + ALICE, {}),
                          ("/ai/streamChat", {"Cookie": f"tornado_sse_token={ALICE}"}),
                          ("/v1/chat/completions?token=" + ALICE, {})]:
        resp = await request(app2.url(path), "POST", b'{"question": "hi"}', headers)
        assert resp.status == 401, path
    resp = await request(app2.url("/ai/streamChat"), "POST", b'{"question": "hi"}', bearer(ALICE))
    assert resp.status == 200
    await resp.events()


async def test_tokens_never_cross_or_get_logged(app2: Running, fake: FakeUpstream, sdk: Any,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    raw = bytearray()
    resp = await request(app2.url(q("hi", ALICE)))
    await resp.events()
    raw += resp.raw
    resp = await request(app2.url(q("hi", "wrong-token-0123456789")))
    raw += resp.raw
    resp = await request(app2.url(q("hi")), "GET", None, {"Cookie": f"tornado_sse_token={BOB}"})
    await resp.events()
    raw += resp.raw
    stream = await sdk(ALICE).chat.completions.create(model="m", messages=USER, stream=True)
    [c async for c in stream]
    await sdk(BOB).chat.completions.create(model="m", messages=USER)
    assert len(fake.received) == 4
    for received in fake.received:
        assert received.headers["Authorization"] == "Bearer sk-test-SECRET-key-123456"
        seen = json.dumps(received.headers).encode() + received.body
        assert ALICE.encode() not in seen and BOB.encode() not in seen
    assert b"SECRET" not in raw
    # Our server's log lines (the test's own SDK client logs on its side).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("tornado"))
    # Access-log lines: the path, never the query string; the client by its token's name.
    assert "stream_end" in logged and "path=/ai/streamChat" in logged and "?question" not in logged
    assert "client=alice" in logged and "client=bob" in logged
    assert "request method=GET path=/ai/streamChat status=401 client=127.0.0.1" in logged
    assert "Authorization: Bearer [REDACTED]" in logged  # curl's debug lines, redacted
    for secret in (ALICE, BOB, "wrong-token-0123456789", "sk-test-SECRET"):
        assert secret not in logged


# -- 429 ------------------------------------------------------------------------

async def test_concurrent_streams_per_token(make_app: Any, tokened: Settings, fake: FakeUpstream,
                                            io_loop: IOLoop) -> None:
    running = make_app(tokened.replace(max_streams_per_token=1))
    fake.queue(Script(hang=True))
    first = await request(running.url(q("1")), "GET", None, bearer(ALICE))
    assert (await first.next_event()) is not None  # retry / start: the stream is open
    second = await request(running.url(q("2")), "GET", None, bearer(ALICE))
    assert second.status == 429 and second.headers["retry-after"] == "1"
    assert json.loads(second.raw)["error"]["code"] == "too_many_streams"
    sdk = AsyncOpenAI(base_url=running.url("/v1"), api_key=ALICE, max_retries=0)
    try:
        with pytest.raises(openai.RateLimitError) as info:
            await sdk.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
        assert info.value.response.headers["retry-after"] == "1"
        assert info.value.body["type"] == "rate_limit_error"  # type: ignore[index]
        # Another token is not affected.
        other = await request(running.url(q("3")), "GET", None, bearer(BOB))
        assert other.status == 200
        await other.events()
        # The slot comes back when the stream ends (here: its client leaves).
        first.close()
        for _ in range(100):
            if running.server.clients.limiter.streams(running.server.clients.authenticate(ALICE)) == 0:
                break
            await asyncio.sleep(0.01)
        answer = await sdk.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
        assert answer.choices[0].message.content == "Hello, world!"
    finally:
        await sdk.close()


async def test_requests_per_minute(make_app: Any, tokened: Settings, fake: FakeUpstream) -> None:
    running = make_app(tokened.replace(rate_limit=2))
    for _ in range(2):
        resp = await request(running.url(q("x")), "GET", None, bearer(ALICE))
        assert resp.status == 200
        await resp.events()
    resp = await request(running.url("/v1/chat/completions"), "POST", chat_body(), bearer(ALICE))
    assert resp.status == 429
    assert resp.headers["retry-after"] == "30"  # 2 a minute: one more in 30 s
    assert json.loads(resp.raw)["error"] == {
        "code": "rate_limited", "type": "rate_limit_error", "param": None,
        "message": "More than 2 requests per minute; retry in 30 s."}
    resp = await request(running.url(q("x")), "GET", None, bearer(BOB))
    assert resp.status == 200
    await resp.events()
    # Bad requests are refused before they count.
    resp = await request(running.url(q("")), "GET", None, bearer(BOB))
    assert resp.status == 400


# -- usage ----------------------------------------------------------------------

async def usage_of(running: Running, token: str | None) -> dict[str, Any]:
    resp = await request(running.url("/v1/usage"), "GET", None, bearer(token) if token else {})
    assert resp.status == 200
    return json.loads(resp.raw)  # type: ignore[no-any-return]


async def test_usage_recorded_per_token_and_in_the_end_event(app2: Running, fake: FakeUpstream,
                                                             sdk: Any) -> None:
    fake.default = lambda r: Script.stream(sse_stream(["Hi"], usage=USAGE))
    events = await (await request(app2.url(q("x")), "GET", None, bearer(ALICE))).events()
    assert events[-1].event == "end" and events[-1].json == {"reason": "stop", "usage": USAGE}
    assert fake.received[0].json["stream_options"] == {"include_usage": True}
    stream = await sdk(ALICE).chat.completions.create(model="m", messages=USER, stream=True)
    [c async for c in stream]
    await sdk(ALICE).chat.completions.create(model="m", messages=USER)
    await sdk(BOB).chat.completions.create(model="m", messages=USER)
    fake.default = lambda r: Script.stream(sse_stream(["no usage"]))
    await (await request(app2.url(q("x")), "GET", None, bearer(ALICE))).events()
    alice = await usage_of(app2, ALICE)
    assert alice == {"object": "usage", "client": "alice", "requests": 4, "requests_with_usage": 3,
                     "prompt_tokens": 27, "completion_tokens": 12, "total_tokens": 39,
                     "since": alice["since"], "open_streams": 0,
                     "limits": {"max_streams": None, "requests_per_minute": None}}
    bob = await usage_of(app2, BOB)
    assert (bob["client"], bob["requests"], bob["total_tokens"]) == ("bob", 1, 13)


async def test_no_upstream_usage_flag(make_app: Any, tokened: Settings, fake: FakeUpstream) -> None:
    running = make_app(tokened.replace(upstream_usage=False))
    await (await request(running.url(q("x")), "GET", None, bearer(ALICE))).events()
    resp = await request(running.url("/v1/chat/completions"), "POST", chat_body(), bearer(ALICE))
    await resp.events()
    assert all("stream_options" not in r.json for r in fake.received)
    assert (await usage_of(running, ALICE))["requests_with_usage"] == 0


# -- anonymous ------------------------------------------------------------------

async def test_without_tokens_everyone_is_anonymous(app: Running, fake: FakeUpstream) -> None:
    resp = await request(app.url("/v1/chat/completions"), "POST", chat_body(False))
    assert resp.status == 200
    assert json.loads(resp.raw)["choices"][0]["message"]["content"] == "Hello, world!"
    resp = await request(app.url(q("x")), "GET", None, bearer("whatever-token-12345678"))
    assert resp.status == 200
    await resp.events()
    usage = await usage_of(app, None)
    assert usage["client"] == "anonymous" and usage["requests"] == 2
