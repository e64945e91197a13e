"""CORS for browser clients on other origins. Pure: headers in, headers out.

No origin is allowed by default (same-origin pages need no CORS). Listed
origins are matched exactly -- scheme, host and port, as the browser sends them
-- and get credentials (cookies) allowed, since the operator named them; ``*``
allows any origin without credentials, which browsers do not permit together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

ALLOWED_METHODS = "GET, POST, OPTIONS"
# What our clients send: JSON bodies, bearer tokens, EventSource's resume header.
ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID, Cache-Control"
# Readable from JS (fetch): the stream id, and when to retry after a 503/429.
EXPOSED_HEADERS = "X-Stream-Id, Retry-After"
PREFLIGHT_MAX_AGE = 600  # seconds a browser may cache a preflight answer
# A list of header names (RFC 9110 tokens) as a browser asks for them.
_HEADER_LIST = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*")


class CorsPolicy:
    def __init__(self, origins: Iterable[str] = ()) -> None:
        listed = {o.strip().rstrip("/") for o in origins if o.strip()}
        self.any_origin = "*" in listed
        self.origins = frozenset(listed - {"*"})

    @property
    def enabled(self) -> bool:
        return self.any_origin or bool(self.origins)

    def allows(self, origin: str | None) -> bool:
        return origin is not None and (self.any_origin or origin in self.origins)

    def response_headers(self, origin: str | None) -> dict[str, str]:
        """Headers for an actual (non-preflight) response to a request from ``origin``."""
        if not self.enabled:
            return {}
        # The answer depends on Origin: caches must key on it.
        headers = {"Vary": "Origin"}
        if not self.allows(origin):
            return headers
        assert origin is not None
        if origin in self.origins:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
        else:
            headers["Access-Control-Allow-Origin"] = "*"
        headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        return headers

    def preflight_headers(self, origin: str | None, method: str | None,
                          request_headers: str | None = None) -> dict[str, str] | None:
        """Headers for an allowed preflight (``OPTIONS``), or ``None`` to refuse it.

        The headers the browser asks for are granted when well-formed: SDKs
        running in browsers add their own (``X-Stainless-*``), and the origin
        is one the operator trusts already.
        """
        if not self.allows(origin) or method not in ALLOWED_METHODS.split(", "):
            return None
        headers = self.response_headers(origin)
        headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        asked = (request_headers or "").strip()
        headers["Access-Control-Allow-Headers"] = asked if _HEADER_LIST.fullmatch(asked) else ALLOWED_HEADERS
        headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
        return headers
