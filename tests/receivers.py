"""A real HTTP endpoint for webhook tests: it records what is POSTed to it (the `receiver`
fixture in tests/conftest.py runs one for a test; `tls_receiver` one over HTTPS)."""

from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Records the headers and exact body of each POST, and answers `status` with `answer`
    (after `delay` seconds: a receiver too slow for the sender's timeout); `statuses`, while it
    holds any, gives the next answers' statuses first (a 500, then the 200 of `status`)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.statuses: list[int] = []
        self.answer = b""
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append((dict(self.headers), body))
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.status
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(receiver.answer)))
                    self.end_headers()
                    self.wfile.write(receiver.answer)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # a sender that gave up waiting (its timeout)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:  # HTTPS, for senders that take https:// URLs only
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/hook"
        # Polling often: stop() waits for the next poll, and every test using one stops it.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
