"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright, against
the real web server (daphne), a real worker and a real Redis (see tests/browser.py for where
Chromium comes from, and how to skip these tests on purpose).

Screenshots are written to var/test-artifacts/ (ignored by git); with UPDATE_DOCS_SCREENSHOT=1
the dashboard's is also written to docs/dashboard.png, the README's picture.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from scheduler.services import schedule_run_now, task_enqueue
from tests.browser import (
    RECONNECT_TIMEOUT,
    TASK_TIMEOUT,
    LiveServer,
    off_the_loop,
    screenshot,
    signed_in_page,
)
from tests.factories import make_schedule
from tests.processes import BASE_DIR

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DOCS_SCREENSHOT = BASE_DIR / "docs" / "dashboard.png"
PASSWORD = "a browser's password"


def _signed_in_dashboard(browser: Any, server: LiveServer) -> tuple[Any, list[str]]:
    """A page on the dashboard, signed in through the admin's login form; and a list that
    collects the page's script errors."""
    off_the_loop(
        get_user_model()._default_manager.create_superuser, "admin", "admin@example.com", PASSWORD
    )
    return signed_in_page(
        browser,
        server,
        "/dashboard/",
        username="admin",
        password=PASSWORD,
        viewport={"width": 1440, "height": 900},
    )


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

    path = screenshot(page, "dashboard.png")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS_SCREENSHOT), full_page=True)
        print(f"README screenshot: {DOCS_SCREENSHOT} ({DOCS_SCREENSHOT.stat().st_size} bytes)")
    assert path.stat().st_size > 0

    # The periodic tasks are searched on the server as one types; the URL keeps the search.
    page.fill("#schedule-search", "digest")
    page.wait_for_function(
        "() => document.querySelectorAll('#periodic-body tr').length === 1", timeout=TASK_TIMEOUT
    )
    assert "morning digest" in page.locator("#periodic-body").inner_text()
    assert "q=digest" in page.url
    assert errors == []

    # The row opens the task's own page: its timeline, its result.
    row.locator(".c-task a").click()
    page.wait_for_url(f"**/dashboard/tasks/{task_id}/")
    assert page.locator("#task-state").get_attribute("data-state") == "SUCCESS"
    assert "task.succeeded" in page.locator("#timeline").inner_text()
    assert '"slept": 1.5' in page.locator("#task-result").inner_text()
    screenshot(page, "task.png")


def test_it_says_it_is_reconnecting_and_catches_up_after_a_server_restart(browser, web_server):
    page, errors = _signed_in_dashboard(browser, web_server)
    page.evaluate("window.__sameDocument = true")

    web_server.stop()
    page.wait_for_selector("#connection[data-state=reconnecting]", timeout=RECONNECT_TIMEOUT)
    assert "Reconnecting" in page.inner_text("#connection")
    # Queued while the web server is down: the backfill brings it after the reconnect.
    missed = off_the_loop(task_enqueue, task="scheduler.ping")
    screenshot(page, "dashboard-reconnecting.png")
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
