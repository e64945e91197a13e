"""The demo page: ``/`` and ``/static/...`` served from ``static/`` with strict headers.

The page renders model output, which is untrusted text. The Content-Security-Policy is the
second wall behind the page's text-only rendering: no inline script, nothing loaded from
elsewhere, and Trusted Types enforced, so even a future ``innerHTML = modelText`` in the
page's JavaScript throws instead of parsing HTML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tornado.web import StaticFileHandler

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
])

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    # The page is edited in place during development: always revalidate
    # (ETag makes that a cheap 304) rather than run yesterday's script.
    "Cache-Control": "no-cache",
}


class StaticPageHandler(StaticFileHandler):
    """StaticFileHandler adding the page's security headers to every file."""

    def set_extra_headers(self, path: str) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)

    def get_content_type(self) -> str:
        # Say the charset: with nosniff and no BOM, a browser must not guess it.
        content_type = super().get_content_type()
        if content_type.startswith("text/") and "charset" not in content_type:
            content_type += "; charset=utf-8"
        return content_type


def static_routes(static_dir: Path = STATIC_DIR) -> list[tuple[str, type, dict[str, Any]]]:
    """``/`` is ``index.html``; everything else of the page lives under ``/static/``."""
    options = {"path": str(static_dir), "default_filename": "index.html"}
    return [
        (r"/()", StaticPageHandler, options),
        (r"/static/(.+)", StaticPageHandler, options),
    ]
