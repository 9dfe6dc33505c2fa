"""What the real-browser tests share: Debian's headless Chromium driven by Playwright, the real
web server (daphne) it talks to, and a way to touch the database while Playwright runs.

Chromium comes from the system (`apt-get install chromium`, which `.ci/run` does when it is
missing), never from `playwright install`. Without it a browser test fails, so that CI cannot
pass without running it; set SKIP_BROWSER_TESTS=1 to skip them on purpose (CHROMIUM_PATH points
elsewhere than /usr/bin/chromium). The fixtures (`browser`, `web_server`) are in conftest.py.

Screenshots are written to var/test-artifacts/ (ignored by git).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.db import connections

from tests.processes import BASE_DIR, RunningProcess, child_env, start_process, wait_for

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = BASE_DIR / "var" / "test-artifacts"
# Every wait in a browser test is bounded by one of these (milliseconds, Playwright's unit).
PAGE_TIMEOUT = 15_000
TASK_TIMEOUT = 30_000
RECONNECT_TIMEOUT = 45_000

T = TypeVar("T")


def require_chromium() -> None:
    if Path(CHROMIUM).is_file():
        return
    if os.environ.get("SKIP_BROWSER_TESTS") == "1":
        pytest.skip(f"no Chromium at {CHROMIUM} and SKIP_BROWSER_TESTS=1")
    pytest.fail(
        f"no Chromium at {CHROMIUM}: install it (`apt-get install -y chromium`, as .ci/run "
        "does), point CHROMIUM_PATH at one, or set SKIP_BROWSER_TESTS=1 to skip this test"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (our own server)
            return bool(response.status == 200)
    except OSError:
        return False


class LiveServer:
    """daphne serving config.asgi on one port, stopped and started again on the same port."""

    def __init__(
        self, *, log_dir: Path, host: Any = None, env: dict[str, str | None] | None = None
    ) -> None:
        """`host`: a cluster suite's host (tests/cluster/network.py) to serve from, on its
        address; by default this machine's loopback. `env`: more of the server's environment."""
        self.port = _free_port()
        self.host = host
        self.env = env or {}
        address = host.address if host is not None else "127.0.0.1"
        self.url = f"http://{address}:{self.port}"
        self.log_dir = log_dir
        self.running: RunningProcess | None = None

    def start(self) -> None:
        address = self.host.address if self.host is not None else "127.0.0.1"
        argv = [sys.executable, "-m", "daphne", "-b", address, "-p", str(self.port)]
        argv += ["config.asgi:application"]
        if self.host is not None:
            argv = self.host.wrap(argv)
        # Test settings: static files served from the app folders, no collectstatic.
        env = child_env(
            DJANGO_SETTINGS_MODULE="config.settings.test",
            ALLOWED_HOSTS=f"{address},127.0.0.1,localhost",
            **self.env,
        )
        running = start_process("web", argv, env=env, log_dir=self.log_dir)
        self.running = running
        try:
            wait_for(
                lambda: _answers(f"{self.url}/admin/login/") or running.process.poll() is not None,
                timeout=30,
                what=f"daphne on port {self.port}",
            )
            if running.process.poll() is not None:
                raise AssertionError(f"daphne exited while starting:\n{running.log()}")
        except AssertionError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()
            self.running = None


def off_the_loop(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ORM code in a thread of its own, and close its connection after.

    Playwright's sync API keeps an asyncio loop running in the test's thread: Django refuses
    database calls there, and a connection opened anyway would be kept in that loop's context,
    out of reach of the test database's teardown.
    """

    def run() -> T:
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result(timeout=60)


def signed_in_page(
    browser: Any, server: LiveServer, path: str, *, username: str, password: str, **options: Any
) -> tuple[Any, list[str]]:
    """A new page on `path`, signed in through the admin's login form (anonymous, it is sent
    there and back) with its live connection up; and a list that collects its script errors.
    `options` go to `browser.new_page`."""
    page = browser.new_page(**options)
    page.set_default_timeout(PAGE_TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}{path}")
    assert "/admin/login/" in page.url
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{server.url}{path}")
    page.wait_for_selector("#connection[data-state=live]")
    return page, errors


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def post_task(server: LiveServer, token: str, task: str = "scheduler.ping") -> tuple[int, Any]:
    """`POST /api/tasks/` on `server` with an API token: the status and the JSON body (the text
    when it is not JSON)."""
    request = urllib.request.Request(  # noqa: S310 (our own server)
        f"{server.url}/api/tasks/",
        data=json.dumps({"task": task, "params": {}}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            return error.code, json.loads(body)
        except ValueError:
            return error.code, body.decode(errors="replace")
