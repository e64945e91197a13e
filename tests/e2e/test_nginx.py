"""docs/deploy/nginx.conf, as shipped, in front of run.py: streams pass unbuffered and
uncompressed, heartbeats keep quiet streams open, a client leaving aborts the upstream
through nginx, and HTTP/2 is terminated at nginx.

Needs the Debian package nginx (.ci/run installs it); skipped with a message without it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from urllib.parse import quote

import pycurl
import pytest
from tornado.ioloop import IOLoop

from tests.fake_upstream import FakeUpstream, Script, chunk_json, sse_stream
from tests.sse_client import contents, request

from .test_run_py import free_port
from .test_shutdown import start_run_py

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy"
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed "
                                "(apt-get install nginx; .ci/run does it)")


def substitute(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in text, f"the shipped config no longer contains {old!r}"
        text = text.replace(old, new)
    return text


def make_cert(tmp: Path) -> tuple[Path, Path] | None:
    if shutil.which("openssl") is None:
        return None
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class Nginx:
    def __init__(self, http_port: int, https_port: int | None) -> None:
        self.http_port = http_port
        self.https_port = https_port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"


@pytest.fixture
def nginx(io_loop: IOLoop, fake: FakeUpstream, tmp_path: Path) -> Iterator[Nginx]:
    proc, app_port, _ = io_loop.run_sync(lambda: start_run_py(
        # --resume-window=0: a browser that leaves aborts the upstream at once, which
        # is what the disconnect test checks through nginx.
        f"--upstream-url={fake.url}", "--heartbeat=0.3", "--xheaders", "--resume-window=0"))
    http_port, https_port = free_port(), free_port()
    cert = make_cert(tmp_path)
    locations = tmp_path / "tornado_sse_locations.conf"
    shutil.copy(DEPLOY / "tornado_sse_locations.conf", locations)
    site = substitute((DEPLOY / "nginx.conf").read_text(), {
        "server 127.0.0.1:8888;": f"server 127.0.0.1:{app_port};",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "/etc/ssl/certs/chat.example.com.pem": str(cert[0]) if cert else "",
        "/etc/ssl/private/chat.example.com.key": str(cert[1]) if cert else "",
        "/etc/nginx/snippets/tornado_sse_locations.conf": str(locations),
    })
    if cert is None:  # no openssl: leave the TLS server out
        site = site[:site.rindex("server {")]
    (tmp_path / "site.conf").write_text(site)
    temp = {name: tmp_path / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    (tmp_path / "nginx.conf").write_text(f"""
        {"user root;" if os.geteuid() == 0 else ""}
        daemon off;
        worker_processes 1;
        pid {tmp_path}/nginx.pid;
        error_log {tmp_path}/error.log info;
        events {{ worker_connections 256; }}
        http {{
            include /etc/nginx/mime.types;
            access_log {tmp_path}/access.log;
            client_body_temp_path {temp["body"]};
            proxy_temp_path {temp["proxy"]};
            fastcgi_temp_path {temp["fastcgi"]};
            uwsgi_temp_path {temp["uwsgi"]};
            scgi_temp_path {temp["scgi"]};
            include {tmp_path}/site.conf;
        }}
    """)
    assert NGINX is not None
    check = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
                            "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    server = subprocess.Popen([NGINX, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
                               "-c", str(tmp_path / "nginx.conf")])
    try:
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", http_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)
        yield Nginx(http_port, https_port if cert else None)
    finally:
        server.terminate()
        server.wait(timeout=10)
        proc.terminate()
        io_loop.run_sync(lambda: asyncio.wait_for(proc.wait(), 10))


def q(text: str) -> str:
    return "/ai/streamChat?question=" + quote(text)


async def test_stream_passes_unbuffered_with_heartbeats(nginx: Nginx, fake: FakeUpstream) -> None:
    first = b"data: " + json.dumps(chunk_json("first")).encode() + b"\n\n"
    fake.queue(Script(body=[first], hang=True))  # one token, then silence
    resp = await request(nginx.url(q("hi")), headers={"Accept-Encoding": "gzip"})
    assert resp.status == 200
    assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert "content-encoding" not in resp.headers  # never gzip
    assert resp.headers.get("transfer-encoding") == "chunked"
    # The token arrives while the upstream still holds the stream open: nothing
    # buffers it. Then heartbeats keep arriving through the silence.
    kinds = []
    while len([k for k in kinds if k == "heartbeat"]) < 2:
        ev = await asyncio.wait_for(resp.next_event(with_comments=True), 10)
        assert ev is not None
        kinds.append(ev.comment if ev.comment is not None else ev.event)
        if ev.event == "update":
            assert ev.json == {"content": "first"}
    assert kinds[:3] == ["retry", "start", "update"]
    # The browser leaves: nginx closes its upstream connection, the relay aborts.
    resp.close()
    await asyncio.wait_for(fake.received[0].closed.wait(), 10)
    assert not fake.received[0].finished


async def test_whole_answer_and_ops_endpoints(nginx: Nginx, fake: FakeUpstream) -> None:
    deltas = ["你好", "，", "世界", "🌍"]
    fake.queue(Script.stream(sse_stream(deltas), piece=5, pause=0.002))
    events = await (await request(nginx.url(q("你好")))).events()
    assert contents(events) == "".join(deltas)
    assert events[-1].json == {"reason": "stop"}
    health = await request(nginx.url("/healthz"))
    assert health.status == 200 and json.loads(health.raw)["status"] == "ok"
    metrics = await request(nginx.url("/metrics"))  # from loopback: allowed
    assert metrics.status == 200 and b"tornado_sse_streams_started_total 1.0" in metrics.raw


def http2_get(url: str) -> tuple[int, int, bytes]:
    curl = pycurl.Curl()
    buf = BytesIO()
    try:
        curl.setopt(pycurl.URL, url)
        curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS)
        curl.setopt(pycurl.SSL_VERIFYPEER, 0)  # the test's self-signed certificate
        curl.setopt(pycurl.SSL_VERIFYHOST, 0)
        curl.setopt(pycurl.TIMEOUT, 30)
        curl.setopt(pycurl.WRITEDATA, buf)
        curl.perform()
        return (curl.getinfo(pycurl.RESPONSE_CODE), curl.getinfo(pycurl.INFO_HTTP_VERSION),
                buf.getvalue())
    finally:
        curl.close()


async def test_http2_terminated_at_nginx(nginx: Nginx, fake: FakeUpstream) -> None:
    if nginx.https_port is None:
        pytest.skip("openssl is not installed: no certificate for the TLS server")
    fake.queue(Script.stream(sse_stream(["over", " h2"])))
    url = f"https://127.0.0.1:{nginx.https_port}{q('h2')}"
    status, version, body = await asyncio.to_thread(http2_get, url)
    assert status == 200
    assert version == pycurl.CURL_HTTP_VERSION_2_0
    assert b'data: {"content":"over"}' in body
    assert re.search(rb'event: end\nid: [\w-]+:\d+\ndata: \{"reason":"stop"\}\n\n\Z', body)
