"""/v1 against the real ``openai`` SDK (AsyncOpenAI on the test loop, OpenAI in a
thread), our server, and the real-HTTP fake upstream."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from tornado.ioloop import IOLoop

from tests.conftest import Running
from tests.fake_upstream import FakeUpstream, Script, chunk_json, sse_stream
from tests.sse_client import request
from tornado_sse.config import Settings
from tornado_sse.errors import SAFE_MESSAGES

ALICE = "tok-alice-0123456789abcdef"
DELTAS = ["你好", "，世界", "! 🌍🚀", " emoji 👩‍👩‍👧", " and ascii", "。"]
USAGE = {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}
USER = [{"role": "user", "content": "hi"}]
KEY = b"sk-test-SECRET-key-123456"


@pytest.fixture
def v1(make_app: Any, settings: Settings) -> Running:
    running: Running = make_app(settings.replace(tokens=f"{ALICE} alice"))
    return running


@pytest.fixture
def client(v1: Running, io_loop: IOLoop) -> Iterator[AsyncOpenAI]:
    # pytest-tornasync runs async tests, not async fixtures: close on the loop here.
    sdk = AsyncOpenAI(base_url=v1.url("/v1"), api_key=ALICE, max_retries=0)
    yield sdk
    io_loop.run_sync(sdk.close)


def no_secret_crossed(fake: FakeUpstream, *client_bytes: bytes) -> None:
    """The upstream never saw the client's token; the client never saw our key."""
    for received in fake.received:
        assert received.headers["Authorization"] == "Bearer " + KEY.decode()
        assert ALICE not in json.dumps(received.headers) and ALICE.encode() not in received.body
    for raw in client_bytes:
        assert KEY not in raw and b"SECRET" not in raw


async def test_streaming_chunks_and_no_usage_unless_asked(client: AsyncOpenAI, fake: FakeUpstream) -> None:
    fake.queue(Script.stream(sse_stream(DELTAS, usage=USAGE)))
    stream = await client.chat.completions.create(model="gpt-x", messages=USER, stream=True)  # type: ignore[arg-type]
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(DELTAS)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices and c.usage is None for c in chunks)  # usage chunk stripped
    assert len(chunks) == len(DELTAS) + 2
    sent = fake.received[0].json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == "gpt-x" and sent["messages"] == USER
    no_secret_crossed(fake)


async def test_streaming_with_include_usage(client: AsyncOpenAI, fake: FakeUpstream) -> None:
    fake.queue(Script.stream(sse_stream(DELTAS, usage=USAGE)))
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True,  # type: ignore[arg-type]
                                                  stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 15


async def test_non_streaming_is_aggregated(client: AsyncOpenAI, fake: FakeUpstream) -> None:
    fake.queue(Script.stream(sse_stream(DELTAS, finish="length", usage=USAGE), piece=13))
    answer = await client.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
    assert answer.object == "chat.completion" and answer.id == "chatcmpl-fake"
    assert answer.choices[0].message.content == "".join(DELTAS)
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.prompt_tokens == 9
    assert fake.received[0].json["stream"] is True  # the upstream always streams


async def test_sync_client_in_a_thread(v1: Running, fake: FakeUpstream) -> None:
    fake.queue(Script.stream(sse_stream(DELTAS)), Script.stream(sse_stream(DELTAS)))

    def use_sdk() -> tuple[str, str | None, str | None]:
        with OpenAI(base_url=v1.url("/v1"), api_key=ALICE, max_retries=0) as sdk:
            stream = sdk.chat.completions.create(model="m", messages=USER, stream=True)  # type: ignore[arg-type]
            streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            answer = sdk.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
            return streamed, answer.choices[0].message.content, answer._request_id

    streamed, whole, request_id = await asyncio.to_thread(use_sdk)
    assert streamed == whole == "".join(DELTAS)
    assert request_id  # X-Request-Id: the stream id


@pytest.mark.parametrize("eol,pause", [("\r\n", 0.0005), ("\n", 0.0), ("\r", 0.0)])
async def test_byte_split_upstream_yields_well_formed_chunks(client: AsyncOpenAI, fake: FakeUpstream,
                                                             eol: str, pause: float) -> None:
    # Every write one byte, so every UTF-8 character and every line is cut
    # (with a pause, each byte also reaches us in its own curl callback).
    fake.queue(Script.stream(sse_stream(DELTAS, eol=eol, keepalive=True, usage=USAGE), piece=1,
                             pause=pause))
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True,  # type: ignore[arg-type]
                                                  stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    contents = [c.choices[0].delta.content for c in chunks if c.choices]
    assert contents == ["", *DELTAS, None]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


async def test_wire_format_is_our_encoding(v1: Running, fake: FakeUpstream) -> None:
    # Upstream with CRLF, comments and extra spacing; we send compact "data: {...}\n\n" events.
    fake.queue(Script.stream(sse_stream(["a", "b"], eol="\r\n", keepalive=True), piece=5))
    body = json.dumps({"model": "m", "messages": USER, "stream": True}).encode()
    resp = await request(v1.url("/v1/chat/completions"), "POST", body,
                         {"Authorization": f"Bearer {ALICE}", "Content-Type": "application/json"})
    raw = await resp.body()
    assert resp.status == 200
    assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert resp.headers["x-accel-buffering"] == "no"
    blocks = raw.decode().split("\n\n")
    assert blocks[-1] == "" and blocks[-2] == "data: [DONE]"
    assert b"\r" not in raw and b"keep-alive" not in raw
    for block in blocks[:-2]:
        assert block.startswith("data: {") and "\n" not in block
        json.loads(block[6:])
    assert len(blocks) == 2 + 2 + 2  # role, a, b, finish, [DONE], ""


async def test_tool_calls_stream_and_aggregate(client: AsyncOpenAI, fake: FakeUpstream) -> None:
    parts = [
        chunk_json(role="assistant"),
        {**chunk_json(), "choices": [{"index": 0, "finish_reason": None, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "weather", "arguments": ""}}]}}]},
        *({**chunk_json(), "choices": [{"index": 0, "finish_reason": None, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": a}}]}}]} for a in ['{"ci', 'ty": "巴', '黎"}']),
        chunk_json(finish="tool_calls"),
    ]
    data = "".join(f"data: {json.dumps(p, ensure_ascii=False)}\n\n" for p in parts) + "data: [DONE]\n\n"
    fake.queue(Script.stream(data.encode(), piece=7), Script.stream(data.encode(), piece=7))
    tools: Any = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    stream = await client.chat.completions.create(model="m", messages=USER, tools=tools,  # type: ignore[arg-type]
                                                  stream=True)
    args = "".join((c.choices[0].delta.tool_calls or [None])[0].function.arguments or ""  # type: ignore[union-attr]
                   for c in [c async for c in stream] if c.choices and c.choices[0].delta.tool_calls)
    assert json.loads(args) == {"city": "巴黎"}
    answer = await client.chat.completions.create(model="m", messages=USER, tools=tools)  # type: ignore[arg-type]
    call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.id == "call_1" and call.function.name == "weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "巴黎"}  # type: ignore[union-attr]
    assert answer.choices[0].finish_reason == "tool_calls"
    assert answer.choices[0].message.content is None
    assert fake.received[0].json["tools"] == tools


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("status,code,ours", [(401, "upstream_auth", 502),
                                              (429, "upstream_rate_limited", 429),
                                              (500, "upstream_error", 502)])
async def test_upstream_error_before_any_byte_is_an_http_status(
        client: AsyncOpenAI, fake: FakeUpstream, stream: bool, status: int, code: str, ours: int) -> None:
    leak = b'{"error": {"message": "Incorrect API key provided: sk-test-SECRET-key-123456 UPSTREAM-TEXT"}}'
    fake.queue(Script(status=status, content_type="application/json", body=[leak]))
    with pytest.raises(openai.APIStatusError) as info:
        result = await client.chat.completions.create(model="m", messages=USER, stream=stream)  # type: ignore[call-overload]
        if stream:
            [c async for c in result]
    err = info.value
    assert err.status_code == ours and err.code == code
    assert err.body == {"message": SAFE_MESSAGES[code], "param": None, "code": code,
                        "type": "rate_limit_error" if ours == 429 else "server_error"}
    assert err.response.headers["content-type"].startswith("application/json")
    text = json.dumps(err.body) + err.message
    assert "SECRET" not in text and "UPSTREAM-TEXT" not in text and "Incorrect" not in text
    if ours == 429:
        assert err.response.headers["retry-after"] == "1"


async def test_in_band_error_after_the_stream_started(client: AsyncOpenAI, fake: FakeUpstream) -> None:
    data = (b"data: " + json.dumps(chunk_json("partial")).encode() + b"\n\n"
            + b'data: {"error": {"message": "overloaded sk-test-SECRET-key-123456", "type": "x"}}\n\n')
    fake.queue(Script(body=[data], hang=True))
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True)  # type: ignore[arg-type]
    got: list[str] = []
    with pytest.raises(openai.APIError) as info:
        async for c in stream:
            got.append(c.choices[0].delta.content or "")
    assert got == ["partial"]
    assert info.value.code == "upstream_error"
    assert info.value.message == "The AI service returned an error."
    assert "SECRET" not in json.dumps(info.value.body)
    await asyncio.wait_for(fake.received[0].closed.wait(), 2)


async def test_upstream_cut_mid_stream_is_an_in_band_error_without_done(v1: Running,
                                                                        fake: FakeUpstream) -> None:
    partial = sse_stream(["one", "two"], done=False).rsplit(b"data:", 1)[0]
    fake.queue(Script(body=[partial, 0.05], drop=True))
    body = json.dumps({"model": "m", "messages": USER, "stream": True}).encode()
    resp = await request(v1.url("/v1/chat/completions"), "POST", body, {"Authorization": f"Bearer {ALICE}"})
    events = await resp.events()
    assert resp.status == 200
    assert events[-1].json["error"]["code"] == "upstream_disconnected"
    assert events[-1].json["error"]["type"] == "server_error"
    assert not any(e.data == "[DONE]" for e in events)
    assert "".join(e.json["choices"][0]["delta"].get("content", "") for e in events[:-1]) == "onetwo"
    no_secret_crossed(fake, bytes(resp.raw))


async def test_silent_upstream_times_out_as_504(make_app: Any, settings: Settings,
                                                fake: FakeUpstream) -> None:
    running = make_app(settings.replace(first_token_timeout=0.5, heartbeat=30))
    fake.queue(Script(hang=True))
    async with AsyncOpenAI(base_url=running.url("/v1"), api_key="x", max_retries=0) as sdk:
        with pytest.raises(openai.APIStatusError) as info:
            await sdk.chat.completions.create(model="m", messages=USER, stream=True)  # type: ignore[arg-type]
    assert info.value.status_code == 504 and info.value.code == "upstream_timeout"


async def test_heartbeat_commits_the_stream_then_errors_are_in_band(make_app: Any, settings: Settings,
                                                                     fake: FakeUpstream) -> None:
    running = make_app(settings.replace(first_token_timeout=1.0, heartbeat=0.2))
    fake.queue(Script(hang=True))
    body = json.dumps({"model": "m", "messages": USER, "stream": True}).encode()
    resp = await request(running.url("/v1/chat/completions"), "POST", body)
    events = await resp.events(with_comments=True)
    assert resp.status == 200
    assert events[0].comment == "heartbeat"
    assert events[-1].json["error"]["code"] == "upstream_timeout"


async def test_tool_call_stream_counts_as_started(make_app: Any, settings: Settings,
                                                  fake: FakeUpstream) -> None:
    # Regression: only text deltas reset the first-token deadline, so a long
    # tool call was cut as "did not start answering".
    running = make_app(settings.replace(first_token_timeout=0.4, idle_timeout=5))
    call = {**chunk_json(), "choices": [{"index": 0, "finish_reason": None, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": "x"}}]}}]}
    piece = f"data: {json.dumps(call)}\n\n".encode()
    fake.queue(Script(body=[piece, 0.15] * 6 + [sse_stream([]).split(b"\n\n", 1)[1]]))
    async with AsyncOpenAI(base_url=running.url("/v1"), api_key="x", max_retries=0) as sdk:
        answer = await sdk.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
    assert answer.choices[0].message.tool_calls[0].function.arguments == "x" * 6  # type: ignore[index, union-attr]


@pytest.mark.parametrize("stream", [True, False])
async def test_client_disconnect_aborts_upstream_within_1s(v1: Running, fake: FakeUpstream,
                                                           stream: bool) -> None:
    fake.queue(Script.stream(sse_stream(["a"] * 200), piece=200, pause=0.05))
    body = json.dumps({"model": "m", "messages": USER, "stream": stream}).encode()
    if stream:
        resp = await request(v1.url("/v1/chat/completions"), "POST", body,
                             {"Authorization": f"Bearer {ALICE}"})
        await resp.next_event()
        resp.close()
    else:
        # No byte comes back before the whole answer: send the request raw.
        _reader, writer = await asyncio.open_connection("127.0.0.1", v1.port)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     + ALICE.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        while not fake.received:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        writer.close()
    t0 = time.monotonic()
    await asyncio.wait_for(fake.received[0].closed.wait(), 5)
    assert fake.received[0].closed_at is not None and fake.received[0].closed_at - t0 < 1.0
    assert not fake.received[0].finished
    await asyncio.sleep(0.05)
    assert v1.relay.active == 0
    assert v1.server.clients.limiter.streams(v1.server.clients.authenticate(ALICE)) == 0


async def test_bad_request_is_a_400_in_openai_shape(client: AsyncOpenAI, fake: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="m", messages=[{"role": "wizard", "content": "x"}])  # type: ignore[list-item]
    assert info.value.code == "bad_messages"
    assert info.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert not fake.received


async def test_models(client: AsyncOpenAI, settings: Settings) -> None:
    models = await client.models.list()
    assert [m.id for m in models.data] == [settings.model]
    model = await client.models.retrieve(settings.model)
    assert model.id == settings.model and model.owned_by == "tornado_sse"
    with pytest.raises(openai.NotFoundError) as info:
        await client.models.retrieve("no/such-model")
    assert info.value.code == "model_not_found"


async def test_unknown_v1_path_and_method(v1: Running) -> None:
    resp = await request(v1.url("/v1/embeddings"), "POST", b"{}", {"Authorization": f"Bearer {ALICE}"})
    assert resp.status == 404
    assert json.loads(resp.raw)["error"]["code"] == "not_found"
    resp = await request(v1.url("/v1/embeddings"), "POST", b"{}")
    assert resp.status == 401  # auth first: no probing without a token
    resp = await request(v1.url("/v1/chat/completions"), "GET", None, {"Authorization": f"Bearer {ALICE}"})
    assert resp.status == 405
    assert json.loads(resp.raw) == {"error": {
        "message": "Method Not Allowed", "type": "invalid_request_error", "param": None, "code": "http_405"}}


async def test_a_client_that_stops_reading_is_cut_off_and_the_upstream_stopped(v1: Running,
                                                                              fake: FakeUpstream) -> None:
    # 8 MiB of chunks against a client that reads nothing: more than the kernel
    # buffers hold, so our 256 KiB allowance runs out and the client is dropped.
    fake.queue(Script.stream(sse_stream(["x" * 65536] * 128), piece=1 << 20, hang=True))
    body = json.dumps({"model": "m", "messages": USER, "stream": True}).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", v1.port))
    _reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     + ALICE.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        while not fake.received:
            await asyncio.sleep(0.01)
        await asyncio.wait_for(fake.received[0].closed.wait(), 10)
        await asyncio.sleep(0.05)
        assert v1.relay.active == 0
        assert v1.server.clients.limiter.streams(v1.server.clients.authenticate(ALICE)) == 0
    finally:
        writer.close()
