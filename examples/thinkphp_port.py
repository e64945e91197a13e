#!/usr/bin/env python3
"""The seed's ThinkPHP ``AiController::streamChat``, ported to tornado_sse's ``SSEHandler``.

    pip install -e .                                   # once, from the checkout
    python examples/thinkphp_port.py --port=8889       # embedded demo upstream, no key needed
    curl -N 'http://127.0.0.1:8889/ai/streamChat?question=hello'
    OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-... python examples/thinkphp_port.py

The comment beside each line names the PHP it replaces; docs/porting-from-php.md
has the whole table. It sends the same events as run.py's /ai/streamChat.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from tornado.web import Application

from tornado_sse.chat_request import check_question
from tornado_sse.config import settings_from_args
from tornado_sse.errors import StreamError
from tornado_sse.relay import Relay
from tornado_sse.session import Outcome
from tornado_sse.sse_handler import SSEHandler

log = logging.getLogger("app.controller.AiController")


class AiController(SSEHandler):
    async def get(self) -> None:  # public function streamChat()
        question = check_question(  # $input = input('question');  (validated: 400 if bad)
            self.get_query_argument("question", None), self.relay.settings)
        call = self.open_upstream({  # callAiStream(): curl_init(), CURLOPT_POSTFIELDS
            "messages": [{"role": "user", "content": question}],
            "temperature": 0.7,
        })  # the API key and URL come from the relay, never from this file
        self.start_sse(retry_ms=self.relay.settings.retry_ms)  # header('Content-Type: ...') x4
        self.send("start", {"stream": call.id}, id=f"{call.id}:0")  # (new: the stream's id)
        try:
            outcome = await call.stream(  # curl_exec() with CURLOPT_WRITEFUNCTION => $callback
                lambda text: self.send(  # echo "event: update\n"; echo "data: ..."; ob_flush(); flush();
                    "update", {"content": text}, id=f"{call.id}:{call.seq}"))
        except StreamError as exc:  # catch (\Exception $e)
            log.error("AI请求失败: %s", exc.code)  # Log::error('AI请求失败: ' . $e->getMessage());
            self.send("error", exc.to_event_data())  # echo "event: error\n"; ... '服务异常'
            outcome = Outcome("error")
        self.send("end", outcome.end_data(), id=f"{call.id}:{call.seq + 1}")  # echo "event: end\n"; ...
        # exit;  -> returning finishes the response (and keeps the connection reusable)


def make_app(relay: Relay) -> Application:
    return Application([(r"/ai/streamChat", AiController, {"relay": relay})], compress_response=False)


async def serve(argv: list[str]) -> None:
    from handlers.app import start_demo_upstream  # only for running without a real upstream

    settings = settings_from_args(argv)
    upstream_url = settings.upstream_url
    if upstream_url is None:
        _, upstream_url = start_demo_upstream(settings)
    relay = Relay(settings, upstream_url)
    relay.start()
    server = make_app(relay).listen(settings.port, settings.host)
    print(f"thinkphp_port listening on http://{settings.host}:{settings.port}/ai/streamChat", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    relay.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(sys.argv[1:]))
