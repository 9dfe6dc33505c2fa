"""A fake OpenAI-compatible chat-completions server for tests: real HTTP on 127.0.0.1.

Each request to `POST /v1/chat/completions` takes the next scripted behaviour; when the script
is empty the server replies "echo: <last user message>". Every request is recorded (path,
lower-cased headers, JSON body).

    with running_chat_server() as server:
        server.rate_limit(retry_after="2")
        server.reply("Hi there", prompt_tokens=7, completion_tokens=2)
        ...  # point LLM_BASE_URL at server.url
        assert server.request_count == 2

Behaviours (also the JSON form of `--script` and of `POST /_fake/script`):

    {"kind": "reply", "content": "...", "prompt_tokens": 3, "completion_tokens": 1,
     "model": "m", "delay": 0}
    {"kind": "rate_limit", "retry_after": "2"}           # 429; also "retry_after_ms"
    {"kind": "error", "status": 500, "message": "boom"}  # any status: 401, 404, 500...
    {"kind": "delay", "seconds": 2, "content": "late"}   # answers, but only after `seconds`
    {"kind": "raw", "body": "not json", "status": 200, "content_type": "application/json"}

Other processes (a Celery worker under test) can use a server started by the test, or one
started with `python -m tests.agents.chat_server --port 0 --script '[...]'`, which prints its
URL on the first line of its output. `GET /_fake/requests` returns the recorded requests.
Only the standard library is used, so this module imports without Django.
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

COMPLETIONS_PATH = "/v1/chat/completions"
KINDS = frozenset({"reply", "rate_limit", "error", "delay", "raw"})


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the decoded JSON, or None
    raw: bytes

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body": self.body,
        }


@dataclass
class _State:
    script: collections.deque[dict[str, Any]] = field(default_factory=collections.deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)


class ChatServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = _State()
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.state = self._state
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL an OpenAI client takes, ending in /v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> ChatServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"chat-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving; wakes requests still waiting out a delay. Bounded by `timeout`."""
        self._state.stopping.set()
        if self._thread is not None and self._thread.is_alive():
            stopper = threading.Thread(target=self._httpd.shutdown, daemon=True)
            stopper.start()
            stopper.join(timeout)
            self._thread.join(timeout)
        self._httpd.server_close()

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- script -----------------------------------------------------------------------------

    def enqueue(self, *behaviours: dict[str, Any]) -> ChatServer:
        for behaviour in behaviours:
            kind = behaviour.get("kind")
            if kind not in KINDS:
                raise ValueError(f"unknown behaviour {kind!r} (one of {sorted(KINDS)})")
        with self._state.lock:
            self._state.script.extend(dict(b) for b in behaviours)
        return self

    def reply(
        self,
        content: str,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        model: str | None = None,
    ) -> ChatServer:
        behaviour: dict[str, Any] = {"kind": "reply", "content": content}
        if prompt_tokens is not None:
            behaviour["prompt_tokens"] = prompt_tokens
        if completion_tokens is not None:
            behaviour["completion_tokens"] = completion_tokens
        if model is not None:
            behaviour["model"] = model
        return self.enqueue(behaviour)

    def rate_limit(
        self, retry_after: str | float | None = "1", *, retry_after_ms: str | float | None = None
    ) -> ChatServer:
        behaviour: dict[str, Any] = {"kind": "rate_limit"}
        if retry_after is not None:
            behaviour["retry_after"] = str(retry_after)
        if retry_after_ms is not None:
            behaviour["retry_after_ms"] = str(retry_after_ms)
        return self.enqueue(behaviour)

    def error(self, status: int = 500, message: str = "internal error") -> ChatServer:
        return self.enqueue({"kind": "error", "status": status, "message": message})

    def delay(self, seconds: float, content: str = "sorry I am late") -> ChatServer:
        return self.enqueue({"kind": "delay", "seconds": seconds, "content": content})

    def raw(
        self, body: str, *, status: int = 200, content_type: str = "application/json"
    ) -> ChatServer:
        return self.enqueue(
            {"kind": "raw", "body": body, "status": status, "content_type": content_type}
        )

    # -- what was received ------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def request_count(self) -> int:
        with self._state.lock:
            return len(self._state.requests)

    @property
    def pending(self) -> int:
        """Scripted behaviours not used yet."""
        with self._state.lock:
            return len(self._state.script)

    def last_request(self) -> RecordedRequest:
        requests = self.requests
        assert requests, "the chat server has received no request"
        return requests[-1]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # A handler waiting out a delay must not hold up shutdown: stop() wakes it instead.
    block_on_close = False
    state: _State


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        state = self.server.state
        if self.path == "/_fake/requests":
            with state.lock:
                recorded = [r.as_json() for r in state.requests]
            self._send_json(200, recorded)
        else:
            self._send_json(404, _error_body(f"no route for GET {self.path}", "not_found"))

    def do_POST(self) -> None:
        state = self.server.state
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if self.path == "/_fake/script":
            behaviours = body if isinstance(body, list) else [body]
            with state.lock:
                state.script.extend(b for b in behaviours if isinstance(b, dict))
            self._send_json(200, {"queued": len(behaviours)})
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        with state.lock:
            state.requests.append(RecordedRequest("POST", self.path, headers, body, raw))
            if self.path.rstrip("/") != COMPLETIONS_PATH:
                behaviour = None
            else:
                behaviour = state.script.popleft() if state.script else {"kind": "reply"}
        if behaviour is None:
            self._send_json(404, _error_body(f"no route for POST {self.path}", "not_found"))
            return
        self._behave(behaviour, body if isinstance(body, dict) else {})

    def _behave(self, behaviour: dict[str, Any], request: dict[str, Any]) -> None:
        kind = behaviour.get("kind", "reply")
        delay = float(behaviour.get("seconds", behaviour.get("delay", 0)) or 0)
        if delay > 0 and self.server.state.stopping.wait(delay):
            return  # stopping: drop the request rather than hold up shutdown
        if kind == "rate_limit":
            headers = {}
            if behaviour.get("retry_after") is not None:
                headers["Retry-After"] = str(behaviour["retry_after"])
            if behaviour.get("retry_after_ms") is not None:
                headers["retry-after-ms"] = str(behaviour["retry_after_ms"])
            body = _error_body("Rate limit reached, slow down", "rate_limit_exceeded")
            self._send_json(429, body, headers)
        elif kind == "error":
            status = int(behaviour.get("status", 500))
            self._send_json(status, _error_body(str(behaviour.get("message", "error")), None))
        elif kind == "raw":
            self._send(
                int(behaviour.get("status", 200)),
                str(behaviour.get("body", "")).encode(),
                str(behaviour.get("content_type", "application/json")),
            )
        else:
            self._send_json(200, _completion(behaviour, request))

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout under test): nothing to tell it


def _error_body(message: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "fake_server_error", "code": code}}


def _completion(behaviour: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    listed = request.get("messages")
    messages = [m for m in listed if isinstance(m, dict)] if isinstance(listed, list) else []
    prompt_text = " ".join(str(m.get("content", "")) for m in messages)
    content = behaviour.get("content")
    if content is None:
        users = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
        content = f"echo: {users[-1] if users else ''}"
    prompt_tokens = int(behaviour.get("prompt_tokens", len(prompt_text.split())))
    completion_tokens = int(behaviour.get("completion_tokens", len(str(content).split())))
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": behaviour.get("model") or request.get("model") or "fake-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


@contextmanager
def running_chat_server(host: str = "127.0.0.1", port: int = 0) -> Iterator[ChatServer]:
    """A started ChatServer, stopped (bounded) when the block ends."""
    server = ChatServer(host, port).start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--script", default="[]", help="a JSON list of behaviours")
    options = parser.parse_args(argv)
    script = json.loads(options.script)
    if not isinstance(script, list):
        parser.error("--script must be a JSON list")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with running_chat_server(options.host, options.port) as server:
        server.enqueue(*script)
        print(server.url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
