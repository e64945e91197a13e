"""The demo page's files and headers, over real HTTP from the in-process app."""

from __future__ import annotations

import re

import pytest

from handlers.static_page import STATIC_DIR
from tests.conftest import Running
from tests.sse_client import request


def csp_directives(header: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


async def test_root_serves_the_page_with_a_strict_csp(app: Running) -> None:
    resp = await request(app.url("/"))
    assert resp.status == 200
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    body = await resp.body()
    assert body == (STATIC_DIR / "index.html").read_bytes()
    csp = csp_directives(resp.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert csp["connect-src"] == ["'self'"]
    assert csp["require-trusted-types-for"] == ["'script'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(("path", "content_type"), [
    ("/static/app.js", "text/javascript; charset=utf-8"),
    ("/static/sse-reader.js", "text/javascript; charset=utf-8"),
    ("/static/transports.js", "text/javascript; charset=utf-8"),
    ("/static/render.js", "text/javascript; charset=utf-8"),
    ("/static/style.css", "text/css; charset=utf-8"),
    ("/static/favicon.svg", "image/svg+xml"),
])
async def test_static_files(app: Running, path: str, content_type: str) -> None:
    resp = await request(app.url(path))
    assert resp.status == 200
    assert resp.headers["content-type"] == content_type
    assert "content-security-policy" in resp.headers
    assert await resp.body() == (STATIC_DIR / path.removeprefix("/static/")).read_bytes()


async def test_every_file_the_page_references_is_served(app: Running) -> None:
    html = (STATIC_DIR / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs
    for ref in refs:
        assert ref.startswith("/static/"), ref  # nothing from another origin: works offline
        assert (await request(app.url(ref))).status == 200, ref


@pytest.mark.parametrize("path", ["/static/../run.py", "/static/%2e%2e/run.py", "/static/..%2frun.py",
                                  "/static/missing.js", "/static/"])
async def test_nothing_outside_static_and_no_listings(app: Running, path: str) -> None:
    resp = await request(app.url(path))
    assert resp.status in (403, 404)
    assert b"import" not in await resp.body()


async def test_the_page_is_not_a_form_target(app: Running) -> None:
    resp = await request(app.url("/"), "POST", b"x=1")
    assert resp.status == 405
