#!/usr/bin/env python3
"""Start tornado_sse: parse flags and environment, build the app, listen, serve.

    python run.py                      # embedded demo upstream, http://127.0.0.1:8888/
    OPENAI_BASE_URL=http://127.0.0.1:11434/v1 python run.py --model=llama3
    python run.py --processes=4 --redis-url=redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import sys

from tornado.netutil import bind_sockets

from handlers.app import create_server
from tornado_sse import metrics, workers
from tornado_sse.auth import TokenConfigError, TokenTable, check_bind
from tornado_sse.config import Settings, settings_from_args
from tornado_sse.gc_tuning import tune_for_many_streams
from tornado_sse.log_format import configure_logging
from tornado_sse.shutdown import GracefulShutdown
from tornado_sse.store import StoreError

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


async def serve(settings: Settings, tokens: TokenTable, worker: int | None = None) -> int:
    raise_open_file_limit()
    try:
        server = create_server(settings, tokens)
    except StoreError as exc:
        print(f"run.py: {exc.message}", file=sys.stderr, flush=True)
        return 2
    # SIGTERM/SIGINT: stop accepting, drain, end the rest (tornado_sse/shutdown.py);
    # a second signal ends the remaining streams at once. Installed before we
    # listen, so that a signal can never find the default handler (exit -15).
    shutdown = GracefulShutdown(server.relay, server.servers, drain_timeout=settings.drain_timeout,
                                retry_ms=settings.retry_ms)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, shutdown.signal)
    try:
        await server.relay.store.wait_ready()
    except StoreError as exc:
        print(f"run.py: {exc.message}", file=sys.stderr, flush=True)
        await server.close()
        return 2
    # A deep backlog absorbs bursts of arrivals (the kernel caps it at somaxconn).
    # Workers each bind the port (SO_REUSEPORT): the kernel balances between them.
    try:
        sockets = bind_sockets(settings.port, settings.host, backlog=4096,
                               reuse_port=worker is not None)
    except OSError as exc:
        # A busy port or a bad address is the operator's to fix: say which, no traceback.
        print(f"run.py: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}",
              file=sys.stderr, flush=True)
        await server.close()
        return 2
    server.listen(sockets)
    tune_for_many_streams()
    port = sockets[0].getsockname()[1]
    upstream = "embedded demo upstream" if settings.uses_demo_upstream else settings.upstream_url
    who = "" if worker is None else f"worker {worker} (pid {os.getpid()}) "
    store = "redis" if settings.redis_url else "memory"
    clients = f"{len(tokens.names)}" if tokens.enabled else "none (anonymous)"
    # One write per line: workers share stdout, and a pipe write this small is atomic.
    sys.stdout.write(f"tornado_sse {who}listening on http://{settings.host}:{port}/ (upstream: "
                     f"{upstream}, max streams: {settings.max_streams}, streams store: {store}, "
                     f"client tokens: {clients})\n")
    sys.stdout.flush()

    await shutdown.requested.wait()
    log.info("shutting down")
    await shutdown.run()
    await server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    settings = settings_from_args(sys.argv[1:] if argv is None else argv)
    configure_logging(settings.log_format)
    try:
        tokens = TokenTable.from_settings(settings)
        check_bind(settings.host, tokens, settings.allow_anonymous)
    except TokenConfigError as exc:
        print(f"run.py: {exc}", file=sys.stderr, flush=True)
        return 2
    if settings.processes == 1:
        return asyncio.run(serve(settings, tokens))
    note = workers.per_process_note(settings)
    if note:
        print(note, flush=True)
    try:
        workers.check_before_fork(settings)
    except (StoreError, OSError) as exc:
        print(f"run.py: {getattr(exc, 'message', exc)}", file=sys.stderr, flush=True)
        return 2
    # One /metrics sum over all workers (see tornado_sse/metrics.py); before the fork.
    own_dir = metrics.ENV not in os.environ
    metrics_dir = metrics.enable_multiprocess()
    # Nothing with a socket or a loop exists yet: each worker builds its own.
    worker = workers.fork_workers(settings.processes)
    if worker is None:  # the parent, once every worker has exited
        if own_dir:
            metrics.cleanup_multiprocess(metrics_dir)
        return workers.exit_status
    return asyncio.run(serve(settings, tokens, worker))


if __name__ == "__main__":
    sys.exit(main())
