"""Request bodies above the limit are refused before they are read (issue 10 item 9), over real
HTTP to uvicorn: a declared 50 MB body and a chunked one that never ends."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from app.config import Settings
from live import serving

SESSIONS = "/api/v1/auth/sessions"
# A ceiling for a slow machine: before the limit the server waited for the body forever.
SOCKET_TIMEOUT_S = 15.0


@pytest.fixture(scope="module")
def base_url(settings: Settings) -> Iterator[str]:
    from app.main import create_app

    with serving(create_app(settings, enqueue_sync=lambda _: None)) as url:
        yield url


def _connect(base_url: str) -> socket.socket:
    parts = urlsplit(base_url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=SOCKET_TIMEOUT_S)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {raw!r}"
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:])
    }
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return status, headers, json.loads(body[:length])


def _head(path: str, host: str, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}\r\n"
    ).encode()


def test_a_declared_50_mb_body_is_refused_before_any_of_it_is_sent(base_url: str) -> None:
    sock = _connect(base_url)
    with sock:
        # Only the headers go out: the answer must come without the server waiting for the body.
        sock.sendall(_head(SESSIONS, "api", f"Content-Length: {50 * 1024 * 1024}\r\n"))
        status, headers, body = _read_response(sock)
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert body["error"] == "payload_too_large"
    assert body["detail"] == {"max_bytes": 64 * 1024}


def test_a_chunked_body_is_refused_once_it_passes_the_limit(base_url: str) -> None:
    sock = _connect(base_url)
    chunk = b"[" + b" " * (16 * 1024 - 1)
    with sock:
        sock.sendall(_head(SESSIONS, "api", "Transfer-Encoding: chunked\r\n"))
        # 80 KB in 16 KB chunks and no terminating chunk: a body that has not ended yet.
        for _ in range(5):
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        status, _, body = _read_response(sock)
    assert status == 413
    assert body["error"] == "payload_too_large"


def test_a_body_just_under_the_limit_is_read_as_usual(base_url: str) -> None:
    padded = b"{}" + b" " * (64 * 1024 - 2)
    response = httpx2.post(
        f"{base_url}{SESSIONS}", content=padded, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text


def test_a_chunked_body_under_the_limit_is_read_as_usual(base_url: str) -> None:
    def body() -> Iterator[bytes]:
        yield b"{"
        yield b" " * 30_000
        yield b"}"

    response = httpx2.post(
        f"{base_url}{SESSIONS}", content=body(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
