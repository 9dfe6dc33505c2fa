"""The fake chat-completions server itself (tests/agents/chat_server.py): it runs as a separate
process, and it stops while a request waits.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.agents.chat_server import ChatServer

BASE_DIR = Path(__file__).resolve().parents[2]


# -- the fake server itself ------------------------------------------------------------------


def test_the_fake_server_runs_as_a_separate_process() -> None:
    script = json.dumps([{"kind": "reply", "content": "from the script"}])
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.agents.chat_server", "--port", "0", "--script", script],
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=20), "the fake server printed no URL"
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")

        answer = _post(f"{url}/chat/completions", {"model": "m", "messages": []})
        recorded = json.loads(_get(url.removesuffix("/v1") + "/_fake/requests"))

        assert answer["choices"][0]["message"]["content"] == "from the script"
        assert [r["path"] for r in recorded] == ["/v1/chat/completions"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 0


def test_the_fake_server_stops_while_a_request_waits(chat_server: ChatServer) -> None:
    chat_server.delay(30)
    waiting = subprocess.Popen(  # a client that would wait 30 s
        [sys.executable, "-c", _CLIENT.format(url=chat_server.url)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until(lambda: chat_server.request_count == 1, timeout=10)
        started = time.monotonic()
        chat_server.stop(timeout=5)
        assert time.monotonic() - started < 3
    finally:
        waiting.kill()
        waiting.wait(timeout=10)


_CLIENT = (
    "import urllib.request\n"
    "req = urllib.request.Request('{url}/chat/completions', data=b'{{}}', method='POST')\n"
    "try:\n    urllib.request.urlopen(req, timeout=60)\nexcept Exception:\n    pass\n"
)


def _wait_until(predicate: Any, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _post(url: str, payload: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310  (a local test URL)
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return dict(json.loads(response.read()))


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
        return str(response.read().decode())
