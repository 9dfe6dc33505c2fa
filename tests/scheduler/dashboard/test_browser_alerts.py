"""Alerts in a real browser (Debian's headless Chromium driven by Playwright, the real web server
and Redis: tests/browser.py): a failure recorded here opens an incident through the engine, both
events go over the real websocket, and the page raises toasts and redraws the "Open incidents"
panel without a reload; its Acknowledge button asks for a note and posts it; an incident on an
agent reaches that agent's chat page; a hidden tab gets a desktop notification; a burst of
failures is collapsed into one toast.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from scheduler.live.events import event_record
from scheduler.models import Incident
from scheduler.services.incidents import rules_reload
from tests.browser import TASK_TIMEOUT, LiveServer, off_the_loop, screenshot, signed_in_page
from tests.factories import make_agent, make_rule, make_session

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "a browser's password"
# In the page before its scripts: the tab is hidden, and each Notification made is recorded.
HIDDEN_TAB = """
Object.defineProperty(Document.prototype, "visibilityState", { get: () => "hidden" });
Object.defineProperty(Document.prototype, "hidden", { get: () => true });
window.__notifications = [];
const RealNotification = window.Notification;
function RecordingNotification(title, options) {
    window.__notifications.push({ title, body: (options || {}).body, tag: (options || {}).tag });
    this.close = () => {};
}
Object.defineProperty(RecordingNotification, "permission", {
    get: () => RealNotification.permission,
});
RecordingNotification.requestPermission = (...args) => RealNotification.requestPermission(...args);
window.Notification = RecordingNotification;
"""


@pytest.fixture(autouse=True)
def _fresh_rules() -> Iterator[None]:
    """The engine caches rules per process: none of this test's outlive it."""
    rules_reload()
    yield
    rules_reload()


def _admin() -> None:
    get_user_model()._default_manager.create_superuser("admin", "admin@example.com", PASSWORD)


def _page(target: Any, server: LiveServer, path: str) -> tuple[Any, list[str]]:
    """`target`: the browser, or a context of its own (permissions, init scripts)."""
    return signed_in_page(target, server, path, username="admin", password=PASSWORD)


def _fail(name: str = "nightly", **fields: Any) -> None:
    """A failed run of `name`, recorded here: the engine (subscribed in this process too) opens
    the rule's incident, and both events are published to the real channel layer."""
    event_record(
        type="task.failed",
        task_id=f"run-of-{name}",
        task_name="scheduler.ping",
        periodic_task_name=name,
        state="FAILURE",
        message="RuntimeError: boom",
        **fields,
    )


def _toast(page: Any, text: str) -> Any:
    toast = page.locator("#notice .toast", has_text=text)
    toast.first.wait_for(timeout=TASK_TIMEOUT)
    return toast


def test_a_failure_and_its_incident_raise_toasts_and_fill_the_panel_live(browser, web_server):
    off_the_loop(_admin)
    off_the_loop(make_rule, channels=())
    page, errors = _page(browser, web_server, "/dashboard/")
    page.evaluate("window.__sameDocument = true")
    assert page.locator("#incidents").is_hidden()

    off_the_loop(_fail)

    _toast(page, "Failed: nightly — RuntimeError: boom")
    incident = _toast(page, "Incident: schedule 'nightly' failed (rule failures)")
    assert incident.locator("a").get_attribute("href") == "/dashboard/incidents/"
    row = page.locator("#incidents-body tr", has_text="schedule 'nightly' failed")
    row.wait_for(timeout=TASK_TIMEOUT)
    assert page.locator("#incidents").is_visible()
    assert page.inner_text("#incidents-count") == "1"
    assert row.locator(".c-rule").inner_text() == "failures"
    assert row.locator(".c-matches").inner_text() == "1"

    page.once("dialog", lambda dialog: dialog.accept("looking at it"))
    row.locator('button[data-incident-action="acknowledge"]').click()
    handled = page.locator("#incidents-body .c-handled", has_text="acknowledged by admin")
    handled.wait_for(timeout=TASK_TIMEOUT)
    assert "looking at it" in handled.inner_text()
    assert row.locator('button[data-incident-action="acknowledge"]').count() == 0
    stored = off_the_loop(lambda: Incident.objects.select_related("acknowledged_by").get())
    assert stored.acknowledged_by is not None
    assert (stored.acknowledged_by.username, stored.acknowledge_note) == ("admin", "looking at it")
    screenshot(page, "dashboard-incident.png")
    assert page.evaluate("window.__sameDocument") is True
    assert errors == []


def _agent_with_a_rule() -> tuple[int, int]:
    agent = make_agent("Poster", kind="poster")
    make_rule("poster fails", target_type="agent", target=agent.slug, channels=())
    return agent.pk, make_session(agent).pk


def test_an_incident_on_an_agent_reaches_its_chat_page(browser, web_server):
    off_the_loop(_admin)
    agent_id, session_id = off_the_loop(_agent_with_a_rule)
    page, errors = _page(browser, web_server, f"/agents/sessions/{session_id}/")
    page.wait_for_selector("#connection[data-alerts=live]")

    # A run of the agent's own schedule: its events go to the agent's group, not the session's.
    off_the_loop(_fail, "poster daily post", object_type="agent", object_id=agent_id)

    toast = _toast(page, "Incident: schedule 'poster daily post' failed (rule poster fails)")
    assert toast.first.get_attribute("data-kind") == "alert"
    _toast(page, "Failed: poster daily post")
    assert page.locator(".msg").count() == 0  # the conversation is left alone
    assert errors == []


def test_a_hidden_tab_gets_a_desktop_notification(browser, web_server):
    off_the_loop(_admin)
    off_the_loop(make_rule, channels=())
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=web_server.url)
    context.add_init_script(HIDDEN_TAB)
    try:
        page, errors = _page(context, web_server, "/dashboard/")
        assert page.evaluate("document.visibilityState") == "hidden"
        assert page.evaluate("Notification.permission") == "granted"
        # Allowed already: nothing to offer.
        assert page.locator("#enable-notifications").count() == 0

        off_the_loop(_fail)

        page.wait_for_function("window.__notifications.length >= 2", timeout=TASK_TIMEOUT)
        notifications = page.evaluate("window.__notifications")
        assert {n["title"] for n in notifications} == {
            "Failed: nightly",
            "Incident: schedule 'nightly' failed",
        }
        incident = next(n for n in notifications if n["title"].startswith("Incident"))
        assert incident["body"] == "Rule failures"
        assert errors == []
    finally:
        context.close()


def test_the_enable_button_asks_for_the_permission_while_undecided(browser, web_server):
    off_the_loop(_admin)
    page, errors = _page(browser, web_server, "/dashboard/")
    # A new profile on an http origin: the browser has not been told yet.
    assert page.evaluate("Notification.permission") == "default"
    page.evaluate(
        """() => { window.__asked = 0; Notification.requestPermission = async () => {
            window.__asked += 1; return "denied"; }; }"""
    )

    page.click("#enable-notifications")

    page.wait_for_function("window.__asked === 1", timeout=TASK_TIMEOUT)
    assert errors == []


BURST = """async () => {
    const { alertToasts } = await import("/static/scheduler/lib/alerts.js");
    const alerts = alertToasts({});
    for (let k = 0; k < 10; k += 1) {
        alerts.event({ type: "task.failed", task_id: `t${k}`, task_name: "scheduler.ping",
                       periodic_task_name: `burst ${k}`, message: "boom" });
    }
}"""


def test_a_burst_of_failures_is_collapsed_into_one_toast(browser, web_server):
    off_the_loop(_admin)
    page, errors = _page(browser, web_server, "/dashboard/")

    page.evaluate(BURST)

    assert page.locator("#notice .toast", has_text="Failed: burst").count() == 3
    _toast(page, "7 more failures")
    shown = page.locator("#notice .toast .toast-text").all_inner_texts()
    assert [text.split(" — ")[0] for text in shown] == [
        "Failed: burst 0",
        "Failed: burst 1",
        "Failed: burst 2",
        "7 more failures",
    ]
    assert errors == []
