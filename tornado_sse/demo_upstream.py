"""The embedded demo upstream: an OpenAI-compatible streaming chat endpoint.

``python run.py`` with no upstream configured serves this on an ephemeral
loopback port of the same process and relays to it through pycurl exactly as it
would to a real provider, so the whole path is exercised and the demo page works
without a key. It writes real SSE, in OpenAI's chunk format, with paced tokens.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.web import Application, RequestHandler

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")

_EN = [
    "Here is how I would think about it.",
    "First, it helps to pin down what the question is really asking"
    " and what a good answer would let you do next.",
    "Then look at the simplest approach that could work,"
    " and only add machinery where it clearly pays for itself.",
    "In practice that means measuring before optimising, keeping each piece small,"
    " and testing the edges as carefully as the middle.",
    "I am the embedded demo model of tornado_sse,"
    " so take this as a friendly sketch rather than expert advice;",
    "point OPENAI_BASE_URL at a real model for real answers.",
]
_ZH = [
    "我来试着回答一下。",
    "首先，要弄清楚这个问题真正想问的是什么，以及一个好的回答能帮你做什么。",
    "其次，先考虑最简单可行的办法，只在确实值得的地方再增加复杂度。",
    "实践中，这意味着先测量再优化，让每个部分保持小巧，并且像测试常见情况一样认真测试边界情况。",
    "我是 tornado_sse 内置的演示模型，以上只是一个友好的示意，不是专业建议；",
    "把 OPENAI_BASE_URL 指向真实的模型，就能得到真正的回答。😊",
]


def compose_answer(question: str) -> str:
    """Restate the question, then a few sentences, in Chinese for a Chinese question."""
    q = " ".join(question.split())
    short = q if len(q) <= 60 else q[:57] + "..."
    if _CJK.search(q):
        return f"你问的是：“{short}”。" + "".join(_ZH)
    return f'You asked: "{short}". ' + " ".join(_EN)


def tokenize(text: str) -> Iterator[str]:
    """Word-ish pieces for Latin text, one or two characters for CJK."""
    for piece in re.findall(r"\s*[\w'’.,;:!?\"-]+|\s*\S", text):
        if _CJK.search(piece) and len(piece) > 2:
            for i in range(0, len(piece), 2):
                yield piece[i:i + 2]
        else:
            yield piece


def _chunk(cid: str, model: str, created: int, delta: dict[str, Any],
           finish: str | None = None) -> dict[str, Any]:
    return {
        "id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


class DemoCompletionsHandler(RequestHandler):
    def initialize(self, delay: float = 0.03) -> None:
        self.delay = delay

    def check_xsrf_cookie(self) -> None:  # an API, not a form
        pass

    async def post(self) -> None:
        try:
            body = json.loads(self.request.body)
            messages = body["messages"]
            question = str(messages[-1]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            self.set_status(400)
            self.finish({"error": {"message": "invalid request", "type": "invalid_request_error"}})
            return
        model = str(body.get("model") or "demo")
        answer = compose_answer(question)
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        pieces = list(tokenize(answer))
        usage = {"prompt_tokens": max(1, len(question) // 4), "completion_tokens": len(pieces),
                 "total_tokens": max(1, len(question) // 4) + len(pieces)}
        if not body.get("stream"):
            self.finish({
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": answer}}],
                "usage": usage,
            })
            return
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        try:
            await self._send(_chunk(cid, model, created, {"role": "assistant", "content": ""}))
            await asyncio.sleep(self.delay * 4)  # "thinking" before the first token
            for piece in pieces:
                await self._send(_chunk(cid, model, created, {"content": piece}))
                # Realistic pacing: jitter, and a pause after sentence ends.
                pause = self.delay * random.uniform(0.6, 1.4)
                if piece.endswith(("。", ".", "！", "?", "？", ";", "；")):
                    pause *= 4
                await asyncio.sleep(pause)
            await self._send(_chunk(cid, model, created, {}, "stop"))
            if include_usage:
                await self._send({"id": cid, "object": "chat.completion.chunk",
                                  "created": created, "model": model, "choices": [],
                                  "usage": usage})
            self.write(b"data: [DONE]\n\n")
            await self.flush()
        except StreamClosedError:
            return  # the relay hung up (client gone, Stop): stop generating

    async def _send(self, obj: dict[str, Any]) -> None:
        self.write(b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n")
        await self.flush()


class DemoModelsHandler(RequestHandler):
    def get(self) -> None:
        self.finish({"object": "list",
                     "data": [{"id": "demo", "object": "model", "owned_by": "tornado_sse"}]})


def make_demo_upstream_app(delay: float = 0.03) -> Application:
    return Application([
        (r"/v1/chat/completions", DemoCompletionsHandler, {"delay": delay}),
        (r"/v1/models", DemoModelsHandler),
    ])
