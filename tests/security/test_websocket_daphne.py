"""Websockets through the real web server (daphne), with a plain socket client: what a script
or another service sees on the wire, and what the web log says about it."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from tests.browser import LiveServer
from tests.factories import user_with

pytestmark = [
    pytest.mark.integration,
    pytest.mark.security,
    pytest.mark.django_db(transaction=True),
]

TIMEOUT = 10


@pytest.fixture(scope="module")
def daphne(django_db_setup: None, run_dir: Path) -> Iterator[LiveServer]:
    server = LiveServer(log_dir=run_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Handshake:
    status: int
    headers: dict[str, str]
    texts: list[dict[str, object]] = field(default_factory=list)
    close_code: int | None = None


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection mid-frame")
        data += chunk
    return data


def _frame(sock: socket.socket) -> tuple[int, bytes]:
    first, second = _read_exactly(sock, 2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _read_exactly(sock, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _read_exactly(sock, 8))
    return first & 0x0F, _read_exactly(sock, length)  # frames from a server are not masked


def _send_text(sock: socket.socket, text: str) -> None:
    payload = text.encode()
    mask = os.urandom(4)
    assert len(payload) < 126
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)


def _connect(
    server: LiveServer, path: str, headers: dict[str, str], *, until_close: bool = True
) -> Handshake:
    """Open `path`, read the answer to the handshake, then the server's frames until a close
    (or, with `until_close=False`, the first text frame, after which a ping is answered)."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)
            if not chunk:
                break
            head += chunk
        status_line, *header_lines = head.decode("latin1").split("\r\n")
        answer = Handshake(
            status=int(status_line.split()[1]),
            headers={
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in header_lines if line)
            },
        )
        if answer.status != 101:
            return answer
        while True:
            opcode, payload = _frame(sock)
            if opcode == 0x1:
                answer.texts.append(json.loads(payload))
                if not until_close:
                    _send_text(sock, json.dumps({"action": "ping"}))
                    opcode, payload = _frame(sock)
                    answer.texts.append(json.loads(payload))
                    return answer
            elif opcode == 0x8:
                answer.close_code = struct.unpack("!H", payload[:2])[0] if payload else None
                return answer


def _log_after(server: LiveServer, start: int) -> str:
    assert server.running is not None
    time.sleep(0.3)  # daphne writes its log lines after the connection ends
    return server.running.log_path.read_bytes()[start:].decode(errors="replace")


def _log_size(server: LiveServer) -> int:
    assert server.running is not None
    return server.running.log_path.stat().st_size


def _token(*permissions: str) -> str:
    return str(Token.objects.create(user=user_with(*permissions)).key)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": "http://127.0.0.1"}, id="browser, anonymous"),
        pytest.param({"Authorization": "Token {key}"}, id="script with a token"),
    ],
)
def test_an_unknown_path_is_closed_with_4404_not_a_500_with_a_traceback(daphne, headers):
    key = _token("scheduler.view_dashboard")
    start = _log_size(daphne)

    answer = _connect(
        daphne, "/ws/nope/", {name: value.format(key=key) for name, value in headers.items()}
    )

    assert answer.status == 101
    assert answer.texts == [{"kind": "error", "error": "no websocket at /ws/nope/"}]
    assert answer.close_code == 4404
    log = _log_after(daphne, start)
    assert "Traceback" not in log
    assert "No route found" not in log
    assert "ERROR" not in log


def test_a_script_watches_events_with_its_token_as_subprotocols_and_no_origin(daphne):
    key = _token("scheduler.view_dashboard")
    start = _log_size(daphne)

    answer = _connect(
        daphne,
        "/ws/events/?backfill=0",
        {"Sec-WebSocket-Protocol": f"token, {key}"},
        until_close=False,
    )

    assert answer.status == 101
    assert answer.headers["sec-websocket-protocol"] == "token"
    assert [text["kind"] for text in answer.texts] == ["backfill", "pong"]
    assert key not in _log_after(daphne, start)


def test_a_script_watches_events_with_its_token_header(daphne):
    key = _token("scheduler.view_dashboard")

    answer = _connect(
        daphne, "/ws/events/?backfill=0", {"Authorization": f"Token {key}"}, until_close=False
    )

    assert answer.status == 101
    assert "sec-websocket-protocol" not in answer.headers
    assert [text["kind"] for text in answer.texts] == ["backfill", "pong"]


def test_a_token_without_the_permission_is_closed_with_4403(daphne):
    key = _token()

    answer = _connect(daphne, "/ws/events/", {"Authorization": f"Token {key}"})

    assert (answer.status, answer.close_code) == (101, 4403)


def test_a_script_without_a_token_or_origin_is_still_refused(daphne):
    answer = _connect(daphne, "/ws/events/", {})

    assert answer.status == 403
