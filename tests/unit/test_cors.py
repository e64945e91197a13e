"""CORS policy: pure header computation."""

from __future__ import annotations

from tornado_sse.cors import ALLOWED_HEADERS, CorsPolicy


def test_no_origins_by_default_means_no_headers() -> None:
    policy = CorsPolicy()
    assert not policy.enabled
    assert policy.response_headers("https://evil.example") == {}
    assert policy.preflight_headers("https://evil.example", "POST") is None


def test_listed_origin_is_echoed_with_credentials() -> None:
    policy = CorsPolicy(["https://app.example", "http://127.0.0.1:5173/"])
    headers = policy.response_headers("https://app.example")
    assert headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Vary"] == "Origin"
    assert "X-Stream-Id" in headers["Access-Control-Expose-Headers"]
    # a trailing slash in the flag is forgiven; browsers never send one
    assert policy.allows("http://127.0.0.1:5173")


def test_other_origins_get_only_vary() -> None:
    policy = CorsPolicy(["https://app.example"])
    for origin in ("https://evil.example", "https://app.example.evil.example", "http://app.example",
                   "https://app.example:8443", None):
        assert policy.response_headers(origin) == {"Vary": "Origin"}
        assert policy.preflight_headers(origin, "POST") is None


def test_star_allows_any_origin_without_credentials() -> None:
    policy = CorsPolicy(["*"])
    headers = policy.response_headers("https://anything.example")
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in headers


def test_preflight_grants_methods_and_asked_headers() -> None:
    policy = CorsPolicy(["https://app.example"])
    headers = policy.preflight_headers("https://app.example", "POST", "content-type, x-stainless-os")
    assert headers is not None
    assert headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert headers["Access-Control-Allow-Headers"] == "content-type, x-stainless-os"
    assert int(headers["Access-Control-Max-Age"]) > 0


def test_preflight_refuses_other_methods_and_sanitises_headers() -> None:
    policy = CorsPolicy(["https://app.example"])
    assert policy.preflight_headers("https://app.example", "DELETE") is None
    headers = policy.preflight_headers("https://app.example", "GET", "x\r\nSet-Cookie: a=b")
    assert headers is not None
    assert headers["Access-Control-Allow-Headers"] == ALLOWED_HEADERS
