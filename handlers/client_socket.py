"""Socket options for a streaming client connection.

Events must leave at once: ``TCP_NODELAY`` (Tornado sets it only when a response
finishes), so Nagle's algorithm never holds a small event back waiting for the
ACK of the previous one.

Linux auto-tunes a TCP send buffer up to ``net.ipv4.tcp_wmem``'s maximum (4 MiB by
default). For a client that stops reading, that is 4 MiB of kernel memory per
connection (36 GiB at 9,000 streams) before our own ``--max-client-buffer``
even sees a byte, so the slow-client cap would be meaningless. An event stream
is a trickle of small events, so a send buffer of the size of our own cap costs
a fast reader nothing: a fixed ``SO_SNDBUF`` (which turns auto-tuning off for
the socket) bounds the kernel's share as well.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

# Never below what one burst of ordinary events needs, never above the default
# auto-tuning ceiling's start.
_MIN_SNDBUF = 16 * 1024
_MAX_SNDBUF = 256 * 1024


def limit_send_buffer(connection: Any, cap: int) -> None:
    """Set ``SO_SNDBUF`` on the socket behind a Tornado HTTP/1 connection."""
    sock = getattr(getattr(connection, "stream", None), "socket", None)
    if sock is None:
        return
    size = max(_MIN_SNDBUF, min(cap, _MAX_SNDBUF))
    # The kernel doubles the value (bookkeeping overhead) and may refuse it on
    # an exotic socket; the slow-client policy still works, just later.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def send_immediately(connection: Any) -> None:
    """``TCP_NODELAY`` on the IOStream behind a Tornado HTTP/1 connection."""
    stream = getattr(connection, "stream", None)
    if stream is not None and hasattr(stream, "set_nodelay"):
        stream.set_nodelay(True)
