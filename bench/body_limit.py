"""Peak memory of the API while clients send oversized request bodies (issue 10 item 9).

    uv run python bench/body_limit.py [--clients 4] [--megabytes 50] [--max-body-bytes N]

Starts the API (sandbox, SQLite in a temporary directory) as a subprocess on a free loopback
port, then `--clients` raw sockets each POST a `--megabytes` JSON body to the anonymous
`/api/v1/auth/sessions` at once. Prints the answers, the server's peak RSS (VmHWM) before and
after, and the wall time. `--max-body-bytes 1000000000` shows the server without the limit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ORCHESTRATOR = Path(__file__).resolve().parent.parent / "services" / "orchestrator"
SERVE = (
    "import sys, uvicorn; from app.main import create_app; "
    "uvicorn.run(create_app(enqueue_sync=lambda _: None), port=int(sys.argv[1]), "
    "log_level='warning', access_log=False)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def peak_rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) // 1024
    return -1


def post(port: int, body: bytes, answers: list[str]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        head = (
            "POST /api/v1/auth/sessions HTTP/1.1\r\nHost: bench\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode())
        # The server may answer and close before the body is sent: that is the point.
        with contextlib.suppress(OSError):
            sock.sendall(body)
        try:
            answers.append(sock.recv(200).split(b"\r\n")[0].decode())
        except OSError as exc:
            answers.append(type(exc).__name__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--max-body-bytes", type=int, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{workdir}/bench.db",
            "TOKEN_ENCRYPTION_KEYS": "q1pEzX0JcDzLm1sXzUTPlTx2sAfE2F1sAlyo3qNQ_5U",
            "SESSION_CREATE_LIMIT": "1000",
        }
        if args.max_body_bytes is not None:
            env["MAX_REQUEST_BODY_BYTES"] = str(args.max_body_bytes)
        subprocess.run(
            [sys.executable, "-m", "app.cli", "migrate"],
            env=env,
            cwd=ORCHESTRATOR,
            check=True,
            capture_output=True,
        )
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(port)], env=env, cwd=ORCHESTRATOR
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("the API did not start") from None
                    time.sleep(0.1)
            before = peak_rss_mb(server.pid)
            body = b'{"x": "' + b"a" * (args.megabytes * 1024 * 1024) + b'"}'
            answers: list[str] = []
            clients = [
                threading.Thread(target=post, args=(port, body, answers))
                for _ in range(args.clients)
            ]
            started = time.monotonic()
            for client in clients:
                client.start()
            for client in clients:
                client.join()
            elapsed = time.monotonic() - started
            print(f"{args.clients} x {args.megabytes} MB: {answers}")
            print(
                f"server peak RSS {before} MB before, {peak_rss_mb(server.pid)} MB after; "
                f"{elapsed:.1f} s"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
