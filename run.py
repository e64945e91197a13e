#!/usr/bin/env python3
"""Start tornado_sse: parse flags and environment, build the app, listen, serve.

    python run.py                      # embedded demo upstream, http://127.0.0.1:8888/
    OPENAI_BASE_URL=http://127.0.0.1:11434/v1 python run.py --model=llama3
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import sys

from tornado.netutil import bind_sockets

from handlers.app import create_server
from tornado_sse.auth import TokenConfigError, TokenTable, check_bind
from tornado_sse.config import Settings, settings_from_args
from tornado_sse.gc_tuning import tune_for_many_streams
from tornado_sse.log_format import configure_logging
from tornado_sse.shutdown import GracefulShutdown

log = logging.getLogger("tornado_sse")


def raise_open_file_limit() -> int:
    """Each stream holds two sockets; let the process use all it is allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


async def serve(settings: Settings) -> int:
    raise_open_file_limit()
    try:
        tokens = TokenTable.from_settings(settings)
        check_bind(settings.host, tokens, settings.allow_anonymous)
    except TokenConfigError as exc:
        print(f"run.py: {exc}", file=sys.stderr, flush=True)
        return 2
    server = create_server(settings, tokens)
    # SIGTERM/SIGINT: stop accepting, drain, end the rest (tornado_sse/shutdown.py);
    # a second signal ends the remaining streams at once. Installed before we
    # listen, so that a signal can never find the default handler (exit -15).
    shutdown = GracefulShutdown(server.relay, server.servers, drain_timeout=settings.drain_timeout,
                                retry_ms=settings.retry_ms)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, shutdown.signal)
    # A deep backlog absorbs bursts of arrivals (the kernel caps it at somaxconn).
    sockets = bind_sockets(settings.port, settings.host, backlog=4096)
    server.listen(sockets)
    tune_for_many_streams()
    port = sockets[0].getsockname()[1]
    upstream = "embedded demo upstream" if settings.uses_demo_upstream else settings.upstream_url
    print(f"tornado_sse listening on http://{settings.host}:{port}/ (upstream: {upstream}, "
          f"max streams: {settings.max_streams}, client tokens: "
          f"{len(tokens.names) if tokens.enabled else 'none (anonymous)'})", flush=True)

    await shutdown.requested.wait()
    log.info("shutting down")
    await shutdown.run()
    await server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    settings = settings_from_args(sys.argv[1:] if argv is None else argv)
    configure_logging(settings.log_format)
    return asyncio.run(serve(settings))


if __name__ == "__main__":
    sys.exit(main())
