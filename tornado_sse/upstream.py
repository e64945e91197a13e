"""Streaming HTTP requests to the upstream, over libcurl through Tornado.

This is the Python analogue of the seed's ``CURLOPT_WRITEFUNCTION`` loop, with
what the seed lacked: the status line is checked before a body byte is trusted,
a non-2xx body is kept for the log (never for the client), the transfer can be
aborted at any moment, and every failure maps to one error code.

Tornado's ``CurlAsyncHTTPClient`` has no public way to abort a transfer, and
libcurl only calls the progress callback when something happens on the handle,
so an idle transfer (waiting for headers, or between chunks) could not be
stopped by a progress-callback flag alone. :class:`StreamingCurlClient` therefore
removes the easy handle from the multi handle itself, which makes libcurl close
the connection at once (a half-read response cannot be reused).

Body bytes: each request registers ``UpstreamTransfer._on_chunk`` as its
``streaming_callback``, Tornado's hook for ``CURLOPT_WRITEFUNCTION``. Tornado 6.6
delivers those chunks through its own buffer and one ``IOLoop.add_callback``
per transfer per read; at thousands of streams that extra queue made loop
iterations snowball (measured in issue 4: 12,000-27,000 ready callbacks in one
iteration, deltas seconds late). ``_prepare_curl`` therefore points libcurl's
WRITEFUNCTION at a thin wrapper that calls the same ``_on_chunk`` synchronously,
guarding the two things libcurl forbids inside its callbacks: exceptions (caught
and turned into an ``internal`` error) and removing the handle (an abort from
inside the callback is deferred, and the callback returns 0 so libcurl stops the
transfer itself).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import pycurl
from tornado.curl_httpclient import CurlAsyncHTTPClient
from tornado.httpclient import HTTPRequest, HTTPResponse

from .errors import StreamError
from .redact import redact

log = logging.getLogger("tornado_sse.upstream")
curl_log = logging.getLogger("tornado.curl_httpclient")

# How much of a non-2xx body we keep for the log.
_ERROR_BODY_LIMIT = 16 * 1024

# Whether libcurl resolves names without blocking (threaded resolver or
# c-ares); only then is NOSIGNAL free of side effects on DNS timeouts.
_ASYNCH_DNS = bool(pycurl.version_info()[4] & pycurl.VERSION_ASYNCHDNS)

# libcurl errors that mean "we never got a connection".
_CONNECT_ERRORS = {
    pycurl.E_COULDNT_RESOLVE_HOST,
    pycurl.E_COULDNT_RESOLVE_PROXY,
    pycurl.E_COULDNT_CONNECT,
    pycurl.E_SSL_CONNECT_ERROR,
    pycurl.E_OPERATION_TIMEDOUT,  # only the connect timeout is given to libcurl
}


class UpstreamSink(Protocol):
    """Receives one transfer's events, in order, on the IOLoop thread."""

    def on_data(self, chunk: bytes) -> None:
        """A piece of a 2xx body, exactly as received."""

    def on_done(self, error: StreamError | None) -> None:
        """The transfer ended: cleanly (``None``) or with a typed error. Not
        called for a transfer that was aborted."""


class StreamingCurlClient(CurlAsyncHTTPClient):
    """A ``CurlAsyncHTTPClient`` that can hold thousands of transfers and abort them.

    Tornado creates ``max_clients`` curl handles up front (4-5 KB each); we grow
    the pool on demand instead, so a cap of 10,000 costs nothing until used.
    """

    def initialize(  # type: ignore[override]
        self, max_clients: int = 10000, defaults: dict[str, Any] | None = None,
        max_body_size: int = 1 << 40,
    ) -> None:
        super().initialize(max_clients=0, defaults=defaults, max_body_size=max_body_size)
        self.max_clients = max_clients

    def _process_queue(self) -> None:
        wanted = len(self._requests) - len(self._free_list)
        room = self.max_clients - len(self._curls)
        for _ in range(min(wanted, room)):
            curl = self._curl_create()
            self._curls.append(curl)
            self._free_list.append(curl)
        super()._process_queue()

    secrets: tuple[str, ...] = ()

    def _curl_debug(self, debug_type: int, debug_msg: str | bytes) -> None:
        # With DEBUG logging tornado turns on CURLOPT_VERBOSE and logs request
        # headers (our Authorization: Bearer key) and request bodies (user
        # questions). Keep the useful part, redacted; never the bodies.
        if debug_type not in (0, 1, 2):
            return
        text = debug_msg.decode("latin1") if isinstance(debug_msg, bytes) else debug_msg
        for line in text.splitlines():
            curl_log.debug("%s %s", "I<>"[debug_type], redact(line, self.secrets))

    @property
    def active(self) -> int:
        return len(self._curls) - len(self._free_list)

    @property
    def saturated(self) -> bool:
        return not self._free_list and len(self._curls) >= self.max_clients

    # True while libcurl runs one of our write callbacks: libcurl refuses
    # curl_multi_remove_handle from inside its own callbacks.
    in_callback = False

    def abort(self, request: HTTPRequest, curl: pycurl.Curl | None) -> None:
        """Stop ``request`` now, whatever state it is in; its socket is closed."""
        if self.in_callback:
            # The transfer being written stops at once anyway (its write
            # callback returns 0); any other is removed right after. The
            # request identity check below makes a late call harmless.
            self.io_loop.add_callback(self.abort, request, curl)
            return
        info = getattr(curl, "info", None) if curl is not None else None
        if info is not None and _unproxy(info["request"]) is request:
            # Removing the handle mid-transfer makes libcurl close the
            # connection; _finish does that and resolves the fetch future.
            self._finish(curl, pycurl.E_ABORTED_BY_CALLBACK, "aborted")
            self._process_queue()
            return
        # Not started yet (still queued): drop it from the queue.
        for item in list(self._requests):
            if _unproxy(item[0]) is request:
                self._requests.remove(item)
                item[1](HTTPResponse(request, 599, error=StreamError("internal", "aborted")))
                return


def _unproxy(request: Any) -> Any:
    # AsyncHTTPClient.fetch wraps requests in a _RequestProxy (for defaults).
    return getattr(request, "request", request)


class UpstreamTransfer:
    """One streaming request. Create with :meth:`UpstreamClient.open`."""

    def __init__(self, client: StreamingCurlClient, sink: UpstreamSink,
                 secrets: tuple[str, ...]) -> None:
        self._client = client
        self._sink = sink
        self._secrets = secrets
        self._curl: pycurl.Curl | None = None
        self._request: HTTPRequest | None = None
        self.status: int | None = None
        self.content_type = ""
        self.aborted = False
        self.finished = False
        self.bytes_received = 0
        self._streaming = False
        self._error_body = bytearray()
        self._head_status: int | None = None
        self._head_type = ""

    # -- libcurl-facing callbacks (run on the IOLoop thread) -----------------

    def _prepare_curl(self, curl: pycurl.Curl) -> None:
        self._curl = curl
        # Memory per held transfer. libcurl >= 8.7 shares one receive buffer
        # per multi handle (BUFFERSIZE then sizes that one buffer; older
        # versions allocate it per handle, so keep it modest). The send buffer
        # is per transfer and stays allocated for the whole response: 64 KiB
        # by default, measured as 52 KB of RSS per held transfer; its minimum,
        # 16 KiB, brings that to 22 KB (our request bodies are a few KiB).
        curl.setopt(pycurl.BUFFERSIZE, 16 * 1024)
        curl.setopt(pycurl.UPLOAD_BUFFERSIZE, 16 * 1024)
        # No progress callback: libcurl would call it on every read and every
        # second for each of thousands of transfers. An aborted transfer is
        # removed from the multi handle, or, if it aborts from inside its
        # own write callback, stopped by that callback's return value.
        curl.setopt(pycurl.TCP_NODELAY, 1)
        # Tornado sets NOSIGNAL only when other threads exist. Without it
        # libcurl brackets every socket_action with two sigaction() calls to
        # ignore SIGPIPE (11% of relay CPU at 9,000 streams in a native
        # profile). Python already ignores SIGPIPE, and the asynchronous
        # resolver needs no alarm() for DNS timeouts.
        if _ASYNCH_DNS:
            curl.setopt(pycurl.NOSIGNAL, 1)
        # Body bytes straight from libcurl's read into the relay, instead of
        # Tornado's buffer-then-add_callback: one loop callback fewer per
        # chunk. Measured at 6,000 streams, that second queue let a busy loop
        # iteration snowball into the next (19,000 callbacks, 0.75 s each)
        # and delayed deltas by seconds with the relay at half a core.
        curl.setopt(pycurl.WRITEFUNCTION, self._write)
        curl.setopt(pycurl.HEADERFUNCTION, self._header)

    def _header(self, line: bytes) -> None:
        """libcurl's HEADERFUNCTION: keep the status and content type."""
        text = line.decode("latin-1").rstrip()
        if text.startswith("HTTP/"):
            code = text.split(" ", 2)[1] if " " in text else ""
            self._head_status = int(code) if code.isdigit() else None
            self._head_type = ""
        elif text[:13].lower() == "content-type:":
            self._head_type = text[13:].strip()

    def _write(self, chunk: bytes) -> int:
        """libcurl's WRITEFUNCTION; returning less than ``len(chunk)`` makes
        libcurl stop the transfer and close its connection."""
        client = self._client
        client.in_callback = True
        try:
            self._on_chunk(chunk)
        except Exception:
            # Never let an exception unwind through libcurl: end the stream
            # as an internal error, after libcurl has returned.
            log.exception("relaying an upstream chunk failed")
            if not (self.aborted or self.finished):
                self.finished = True
                client.io_loop.add_callback(
                    self._sink.on_done, StreamError("internal", "relay failed on a chunk"))
            return 0
        finally:
            client.in_callback = False
        return 0 if self.aborted else len(chunk)

    def _on_chunk(self, chunk: bytes) -> None:
        if self.aborted or self.finished:
            return
        if self.status is None:
            # The head as our header callback saw it (the last status line
            # wins, after any 100 Continue): libcurl calls it, synchronously,
            # before the first body byte. (pycurl forbids getinfo() inside a
            # callback, and Tornado's own header_callback runs later, on the
            # IOLoop.)
            self._set_head(self._head_status or 0, self._head_type)
        self.bytes_received += len(chunk)
        if self._streaming:
            self._sink.on_data(chunk)
        elif len(self._error_body) < _ERROR_BODY_LIMIT:
            self._error_body += chunk[: _ERROR_BODY_LIMIT - len(self._error_body)]

    def _set_head(self, status: int, content_type: str | None) -> None:
        self.status = status
        self.content_type = (content_type or "").lower()
        # The body is trusted only from a 2xx event stream.
        self._streaming = 200 <= status < 300 and "text/event-stream" in self.content_type

    def _on_response(self, response: HTTPResponse) -> None:
        if self.aborted or self.finished:
            return
        self.finished = True
        self._sink.on_done(self._classify(response))

    # -- outcome -------------------------------------------------------------

    def _classify(self, response: HTTPResponse) -> StreamError | None:
        if self.status is None and response.code != 599:
            self._set_head(response.code, response.headers.get("Content-Type"))
        status = self.status
        if status is not None and not 200 <= status < 300:
            body = redact(self._error_body.decode("utf-8", "replace"), self._secrets)
            detail = f"upstream HTTP {status}: {body[:2000]}"
            if status in (401, 403):
                return StreamError("upstream_auth", detail, status=status)
            if status == 429:
                return StreamError("upstream_rate_limited", detail, status=status)
            return StreamError("upstream_error", detail, status=status)
        error = response.error
        if error is not None:
            errno = getattr(error, "errno", None)
            detail = redact(f"curl error {errno}: {error}", self._secrets)
            if self.status is None and errno in _CONNECT_ERRORS:
                return StreamError("upstream_connect", detail)
            return StreamError("upstream_disconnected", detail)
        if not self._streaming:
            return StreamError(
                "upstream_protocol", f"expected text/event-stream, got {self.content_type!r}"
            )
        return None

    # -- control -------------------------------------------------------------

    def abort(self) -> None:
        """Close the upstream connection now. The sink hears nothing more."""
        if self.aborted or self.finished:
            return
        self.aborted = True
        if self._request is not None:
            self._client.abort(self._request, self._curl)


class UpstreamClient:
    """Opens streaming POSTs to ``{base_url}/chat/completions``."""

    def __init__(self, base_url: str, api_key: str | None = None, *,
                 max_clients: int = 10000, connect_timeout: float = 10.0) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self._connect_timeout = connect_timeout
        # force_instance: never share Tornado's per-loop singleton (max_clients=10).
        self.http = StreamingCurlClient(force_instance=True, max_clients=max_clients)
        self.http.secrets = self.secrets

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._api_key,) if self._api_key else ()

    def open(self, body: bytes, sink: UpstreamSink,
             extra_headers: dict[str, str] | None = None) -> UpstreamTransfer:
        if self.http.saturated:
            # Never a silent queue: the caller caps streams below max_clients,
            # so reaching here is a bug worth an error rather than a wait.
            raise StreamError("overloaded", "upstream connection pool is full")
        transfer = UpstreamTransfer(self.http, sink, self.secrets)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if extra_headers:
            headers.update(extra_headers)
        request = HTTPRequest(
            self.url,
            method="POST",
            body=body,
            headers=headers,
            # libcurl gets the connect timeout only; first-token, idle and
            # total limits are ours (tornado's request_timeout is a total
            # limit with a 20 s default that would cut long answers).
            connect_timeout=self._connect_timeout or 0,
            request_timeout=0,
            streaming_callback=transfer._on_chunk,
            prepare_curl_callback=transfer._prepare_curl,
            decompress_response=False,
            follow_redirects=False,
            user_agent="tornado_sse",
        )
        transfer._request = request
        future = self.http.fetch(request, raise_error=False)
        future.add_done_callback(lambda f: _deliver(transfer, f))
        return transfer

    def close(self) -> None:
        self.http.close()


def _deliver(transfer: UpstreamTransfer, future: Any) -> None:
    # raise_error=False only covers HTTP status errors: libcurl failures
    # (CurlError, code 599) still arrive as exceptions.
    try:
        response = future.result()
    except Exception as exc:
        transfer._on_response(HTTPResponse(HTTPRequest("http://upstream.invalid"), 599, error=exc))
        return
    transfer._on_response(response)
