"""A tiny webhook receiver for tests: a real HTTP server on loopback, in a thread.

It answers Strava's validation GET (or fails it on purpose) and records the event POSTs,
answering each as scripted. Standard library only, so it stands apart from any app.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


class CallbackReceiver:
    """A webhook receiver on loopback: answers the validation GET and records event POSTs.

    ``get_mode``: ``echo`` (correct), ``wrong`` (another challenge), ``status`` (answers
    ``get_status``) or ``hang``. ``post_script`` lists what the next POSTs answer: a status
    code or ``"hang"`` (held until :meth:`release`); afterwards POSTs answer 200.
    """

    def __init__(self) -> None:
        self.get_mode = "echo"
        self.get_status = 500
        self.post_script: list[int | str] = []
        self.validations: list[dict[str, str]] = []
        self.posts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                query = dict(parse_qsl(urlsplit(self.path).query))
                with server.lock:
                    server.validations.append(query)
                mode = server.get_mode
                if mode == "hang":
                    server.released.wait(30)
                    return
                if mode == "status":
                    self._answer(server.get_status, b"{}")
                    return
                challenge = query.get("hub.challenge", "") if mode == "echo" else "nope"
                self._answer(200, json.dumps({"hub.challenge": challenge}).encode())

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with server.lock:
                    server.posts.append(json.loads(body))
                    action = server.post_script.pop(0) if server.post_script else 200
                if action == "hang":
                    server.released.wait(30)
                    return
                self._answer(int(action), b"")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/strava/webhook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.posts)

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> CallbackReceiver:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
