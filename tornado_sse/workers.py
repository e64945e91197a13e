"""``--processes=N``: N worker processes serving one port.

Each worker binds its own listening socket with ``SO_REUSEPORT``, so the kernel
spreads connections across them. Everything with a socket or an event loop -- the
relay's curl handles, Redis connections, the embedded demo upstream -- is created
after the fork, in each worker: a connection shared by two processes would
interleave their bytes, and an event loop does not survive a fork. So with the
demo upstream every worker serves its own copy on its own ephemeral port.

Without a shared store a stream lives in the worker that relays it, and a
reconnect or Stop that the kernel hands to another worker cannot find it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from types import FrameType

from tornado.netutil import bind_sockets
from tornado.process import fork_processes

from .config import Settings
from .store import StoreError, redis_store

_PR_SET_PDEATHSIG = 1


def per_process_note(settings: Settings) -> str | None:
    if settings.redis_url is None and settings.processes != 1:
        return (f"note: --processes={settings.processes} without --redis-url: resume and Stop "
                "work only when the request reaches the worker relaying the stream (resume is "
                "per process); a reconnect landing on another worker gets 204")
    return None


def check_before_fork(settings: Settings) -> None:
    """Fail once, in the parent, for what would make every worker fail."""
    if settings.port == 0:
        raise StoreError("--processes needs a fixed --port (each worker binds it)")
    # Bind without SO_REUSEPORT: fails if anything already serves the port.
    for sock in bind_sockets(settings.port, settings.host):
        sock.close()
    if settings.redis_url is not None:
        redis_store().ping(settings.redis_url)


def fork_workers(n: int) -> int:
    """Fork ``n`` workers with Tornado's ``fork_processes`` (which restarts any that
    crash) and return this worker's number, in the worker.

    The parent only waits: on SIGTERM or SIGINT it exits, and its workers, which
    asked the kernel for a SIGTERM when their parent dies, shut down gracefully.
    """
    parent = os.getpid()
    signal.signal(signal.SIGTERM, _exit_parent)
    signal.signal(signal.SIGINT, _exit_parent)
    worker = fork_processes(n)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _die_with_parent(parent)
    return worker


def _exit_parent(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _die_with_parent(parent: int) -> None:
    if not sys.platform.startswith("linux"):
        return  # elsewhere: stop the workers yourself (e.g. kill the process group)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)
