"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright, against
the real web server (daphne), a real worker and a real Redis.

Chromium comes from the system (`apt-get install chromium`, which `.ci/run` does when it is
missing), never from `playwright install`. Without it this test fails, so that CI cannot pass
without running it; set SKIP_BROWSER_TESTS=1 to skip it on purpose (CHROMIUM_PATH points
elsewhere than /usr/bin/chromium).

Screenshots are written to var/test-artifacts/ (ignored by git); with UPDATE_DOCS_SCREENSHOT=1
the dashboard's is also written to docs/dashboard.png, the README's picture.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from scheduler.services import schedule_run_now, task_enqueue
from tests.factories import make_schedule
from tests.processes import BASE_DIR, RunningProcess, child_env, start_process, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

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
DOCS_SCREENSHOT = BASE_DIR / "docs" / "dashboard.png"
PASSWORD = "a browser's password"
# Every wait below is bounded by one of these (milliseconds, Playwright's unit).
PAGE_TIMEOUT = 15_000
TASK_TIMEOUT = 30_000
RECONNECT_TIMEOUT = 45_000

T = TypeVar("T")


def _require_chromium() -> None:
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

    def __init__(self, *, log_dir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.running: RunningProcess | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
        # Test settings: static files served from the app folders, no collectstatic.
        env = child_env(DJANGO_SETTINGS_MODULE="config.settings.test")
        running = start_process(
            "web", [*argv, "config.asgi:application"], env=env, log_dir=self.log_dir
        )
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


@pytest.fixture(scope="module")
def web_server(celery_worker: RunningProcess, run_dir: Path) -> Iterator[LiveServer]:
    server = LiveServer(log_dir=run_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


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


def _signed_in_dashboard(browser: Any, server: LiveServer) -> tuple[Any, list[str]]:
    """A page on the dashboard, signed in through the admin's login form; and a list that
    collects the page's script errors."""
    off_the_loop(
        get_user_model()._default_manager.create_superuser, "admin", "admin@example.com", PASSWORD
    )
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.set_default_timeout(PAGE_TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}/dashboard/")
    # Anonymous: sent to the admin's login page, and back to the dashboard after it.
    assert "/admin/login/" in page.url
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{server.url}/dashboard/")
    page.wait_for_selector("#connection[data-state=live]")
    return page, errors


def _queue_task(page: Any, task: str, params: dict[str, Any]) -> str:
    """POST /api/tasks/ from the page itself: its session cookie and CSRF token, as a button."""
    response = page.evaluate(
        """async ([task, params]) => {
            const token = document.cookie.match(/csrftoken=([^;]+)/)[1];
            const response = await fetch("/api/tasks/", {
                method: "POST",
                credentials: "same-origin",
                headers: {"Content-Type": "application/json", "X-CSRFToken": token},
                body: JSON.stringify({task, params}),
            });
            return {status: response.status, body: await response.json()};
        }""",
        [task, params],
    )
    assert response["status"] == 202, response
    return str(response["body"]["task_id"])


def _screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def _real_history() -> None:
    """Schedules and runs on the real worker, so that the chart, sparklines and stats have data."""
    make_schedule(
        name="nightly cleanup",
        task="scheduler.cleanup_results",
        schedule="daily at midnight",
        params={"days": 30},
    )
    make_schedule(name="hourly sync", task="scheduler.sleep", schedule="every hour")
    make_schedule(
        name="morning digest",
        task="scheduler.sleep",
        schedule="every weekday at 8am",
        params={"seconds": 0.3},
    )
    make_schedule(name="health check", task="scheduler.health_check", schedule="every 15 minutes")
    for _ in range(3):
        schedule_run_now(name="morning digest")
    schedule_run_now(name="nightly cleanup")
    for _ in range(4):
        task_enqueue(task="scheduler.ping")


def test_it_shows_a_task_queued_through_the_api_turn_to_success_without_a_reload(
    browser, web_server, celery_worker
):
    off_the_loop(_real_history)

    page, errors = _signed_in_dashboard(browser, web_server)
    assert page.locator("#periodic-body tr", has_text="morning digest").count() == 1
    assert page.locator("#upcoming tr", has_text="nightly cleanup").count() == 1
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.evaluate("window.__sameDocument = true")
    # Every state each feed row shows, in order, recorded by the page as it changes.
    page.evaluate(
        """() => {
            window.__states = {};
            const record = (tr) => {
                const seen = (window.__states[tr.dataset.taskId] ||= []);
                if (seen[seen.length - 1] !== tr.dataset.state) seen.push(tr.dataset.state);
            };
            new MutationObserver((mutations) => {
                for (const mutation of mutations) {
                    const nodes = mutation.type === "childList"
                        ? [...mutation.addedNodes] : [mutation.target];
                    for (const node of nodes) if (node.dataset && node.dataset.taskId) record(node);
                }
            }).observe(document.getElementById("feed-body"), {
                childList: true, attributes: true, subtree: true, attributeFilter: ["data-state"],
            });
        }"""
    )

    task_id = _queue_task(page, "scheduler.sleep", {"seconds": 1.5})

    row = page.locator(f'#feed-body tr[data-task-id="{task_id}"]')
    row.wait_for(state="attached", timeout=TASK_TIMEOUT)
    handle = row.element_handle()
    page.wait_for_function("tr => tr.dataset.state === 'SUCCESS'", arg=handle, timeout=TASK_TIMEOUT)
    assert row.locator(".badge").inner_text() == "success"
    assert row.locator(".c-task").inner_text() == "scheduler.sleep"
    assert row.locator(".c-worker").inner_text() == celery_worker.hostname
    # The same row element went through the states: updated in place, not replaced.
    assert page.evaluate(
        "([tr, id]) => tr.isConnected && document.querySelector("
        '`#feed-body tr[data-task-id="${id}"]`) === tr',
        [handle, task_id],
    )
    states = page.evaluate("id => window.__states[id]", task_id)
    assert states[-1] == "SUCCESS"
    assert "STARTED" in states, states
    assert navigations == []
    assert page.evaluate("window.__sameDocument") is True
    page.wait_for_function(
        "() => Number(document.querySelector('[data-counter=succeeded]').textContent) >= 9"
    )
    assert errors == []

    path = _screenshot(page, "dashboard.png")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS_SCREENSHOT), full_page=True)
        print(f"README screenshot: {DOCS_SCREENSHOT} ({DOCS_SCREENSHOT.stat().st_size} bytes)")
    assert path.stat().st_size > 0

    # The row opens the task's own page: its timeline, its result.
    row.locator(".c-task a").click()
    page.wait_for_url(f"**/dashboard/tasks/{task_id}/")
    assert page.locator("#task-state").get_attribute("data-state") == "SUCCESS"
    assert "task.succeeded" in page.locator("#timeline").inner_text()
    assert '"slept": 1.5' in page.locator("#task-result").inner_text()
    _screenshot(page, "task.png")


def test_it_says_it_is_reconnecting_and_catches_up_after_a_server_restart(browser, web_server):
    page, errors = _signed_in_dashboard(browser, web_server)
    page.evaluate("window.__sameDocument = true")

    web_server.stop()
    page.wait_for_selector("#connection[data-state=reconnecting]", timeout=RECONNECT_TIMEOUT)
    assert "Reconnecting" in page.inner_text("#connection")
    # Queued while the web server is down: the backfill brings it after the reconnect.
    missed = off_the_loop(task_enqueue, task="scheduler.ping")
    _screenshot(page, "dashboard-reconnecting.png")
    web_server.start()

    page.wait_for_selector("#connection[data-state=live]", timeout=RECONNECT_TIMEOUT)
    page.locator(f'#feed-body tr[data-task-id="{missed}"][data-state="SUCCESS"]').wait_for(
        state="attached", timeout=TASK_TIMEOUT
    )
    task_id = _queue_task(page, "scheduler.ping", {})
    page.locator(f'#feed-body tr[data-task-id="{task_id}"][data-state="SUCCESS"]').wait_for(
        state="attached", timeout=TASK_TIMEOUT
    )
    assert page.evaluate("window.__sameDocument") is True
    assert errors == []
