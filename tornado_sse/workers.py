"""``--processes=N``: N worker processes serving one port.

Each worker binds its own listening socket with ``SO_REUSEPORT``, so the kernel
spreads connections across them. Everything with a socket or an event loop -- the
relay's curl handles, Redis connections, the embedded demo upstream -- is created
after the fork, in each worker: a connection shared by two processes would
interleave their bytes, and an event loop does not survive a fork. So with the
demo upstream every worker serves its own copy on its own ephemeral port.

The parent only supervises. Its loop is that of Tornado's ``fork_processes`` (fork,
restart a worker that crashes), written out here because that function keeps its
children's pids to itself and so cannot do what a draining server needs: SIGTERM and
SIGINT are passed on to every worker, which then drains its own streams, and the
parent waits for them instead of dying first (leaving them orphaned); a worker that
crashes while we stop, or refuses to start (exit 2), is not restarted; and each
worker asks the kernel for a SIGTERM should the parent itself be killed.

Without a shared store a stream lives in the worker that relays it, and a
reconnect or Stop that the kernel hands to another worker cannot find it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import random
import signal
import sys
from types import FrameType

from tornado.netutil import bind_sockets

from .config import Settings
from .store import StoreError, redis_store

log = logging.getLogger("tornado_sse.workers")

_PR_SET_PDEATHSIG = 1
MAX_RESTARTS = 100
# A worker exiting with this status refused to start (bad configuration,
# unreachable Redis): restarting it would only fail again.
EXIT_REFUSED = 2

exit_status = 0  # the parent's, once fork_workers returned None


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


def fork_workers(n: int) -> int | None:
    """Fork ``n`` workers (``0``: one per CPU). Returns the worker's number in a
    worker, and ``None`` in the parent once all workers have exited (see
    :data:`exit_status`)."""
    global exit_status
    n = n if n > 0 else (os.cpu_count() or 1)
    parent = os.getpid()
    children: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def start(number: int) -> bool:
        pid = os.fork()
        if pid == 0:
            return True
        children[pid] = number
        return False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:  # a second signal hurries the workers' drain, too
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    log.info("starting %d worker processes", n)
    for number in range(n):
        if start(number):
            return _become_worker(parent, number)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    restarts = 0
    while children:
        pid, status = os.wait()  # retried after a signal handler ran (PEP 475)
        if pid not in children:
            continue
        number = children.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        if code == 0 or stopping:
            continue
        if code == EXIT_REFUSED or restarts >= MAX_RESTARTS:
            log.error("worker %d (pid %d) exited with %d: stopping", number, pid, code)
            exit_status = 1
            forward(signal.SIGTERM, None)
            continue
        restarts += 1
        log.warning("worker %d (pid %d) exited with %d, restarting", number, pid, code)
        if start(number):
            return _become_worker(parent, number)
    return None


def _become_worker(parent: int, number: int) -> int:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    random.seed()  # not the parent's sequence (jittered retry hints, demo pacing)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(0)
    return number
