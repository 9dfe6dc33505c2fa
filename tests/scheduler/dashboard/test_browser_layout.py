"""The pages on a phone and a desktop, the feed's filter, stale panels and the periodic tasks'
last run, in a real browser (issue 15, items 9, 11 and 12): Debian's headless Chromium driven by
Playwright against the real web server (see tests/browser.py).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from agents import services as agent_services
from scheduler.live.events import event_record
from scheduler.services import task_enqueue
from tests.browser import (
    RECONNECT_TIMEOUT,
    TASK_TIMEOUT,
    LiveServer,
    off_the_loop,
    screenshot,
    signed_in_page,
)
from tests.factories import TaskResultFactory, make_schedule, stored_run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "a browser's password"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
SIZES = [pytest.param(PHONE, id="390x844"), pytest.param(DESKTOP, id="1280x800")]
LONG_ERROR = "RuntimeError: webhook answered 502: " + "<p>the upstream is gone</p> " * 120


def _admin() -> None:
    get_user_model()._default_manager.create_superuser("admin", "admin@example.com", PASSWORD)


def _page(browser: Any, server: LiveServer, path: str, size: dict[str, int]) -> tuple[Any, list]:
    off_the_loop(_admin)
    return signed_in_page(browser, server, path, username="admin", password=PASSWORD, viewport=size)


def _history() -> dict[str, Any]:
    """Enough of everything that every box scrolls: schedules for the heatmap, 40 runs in the
    feed (failed ones with a long error), 20 failures, a chat session."""
    for k in range(12):
        make_schedule(name=f"schedule with a rather long name {k}", schedule="every 15 minutes")
    now = timezone.now()
    failed = ""
    for k in range(40):
        task_id = f"run-{k:02d}"
        at = now - timedelta(minutes=40 - k)
        fields: dict[str, Any] = {
            "task_name": "scheduler.ping",
            "periodic_task_name": f"pinger {k % 3}",
        }
        event_record(type="task.queued", task_id=task_id, state="PENDING", at=at, **fields)
        end = "FAILURE" if k % 4 == 0 else "SUCCESS"
        event_record(
            type="task.failed" if end == "FAILURE" else "task.succeeded",
            task_id=task_id,
            state=end,
            worker="celery@a-worker-host",
            duration=0.25,
            message=LONG_ERROR if end == "FAILURE" else "",
            at=at + timedelta(seconds=1),
            **fields,
        )
        if end == "FAILURE":
            failed = task_id
            stored_run(
                task_id,
                status="FAILURE",
                started=at,
                done=at + timedelta(seconds=1),
                result=json.dumps(
                    {"exc_type": "RuntimeError", "exc_message": [LONG_ERROR], "exc_module": "x"}
                ),
                traceback="Traceback (most recent call last):\n  " + "x" * 400 + "\n" + LONG_ERROR,
                **fields,
            )
    for _ in range(12):
        TaskResultFactory.create(
            status="FAILURE",
            result=json.dumps({"exc_type": "KeyError", "exc_message": ["k"], "exc_module": "x"}),
        )
    agent = agent_services.agent_create(name="Helper")
    session = agent_services.session_open(agent=agent)
    for text in ["hello", "a rather long message " * 20, "x" * 300]:
        agent_services.message_answer(
            message=agent_services.message_receive(session=session, content=text).message
        )
    return {"failed": failed, "session": session.pk}


OVERFLOW = """() => ({
    scroll: document.scrollingElement.scrollWidth,
    inner: window.innerWidth,
})"""

NAV = """() => [...document.querySelectorAll("header nav a")].map((a) => {
    const r = a.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return {
        text: a.textContent.trim(),
        inside: r.width > 0 && r.left >= 0 && r.right <= window.innerWidth + 0.5,
        reachable: hit === a || a.contains(hit),
    };
})"""

CUT_ROWS = """() => {
    const cut = [];
    for (const box of document.querySelectorAll(".scroll")) {
        const table = box.querySelector("table");
        if (!table || box.scrollHeight <= box.clientHeight + 1) continue;
        const bottom = box.getBoundingClientRect().top + box.clientTop + box.clientHeight;
        for (const tr of table.tBodies[0].rows) {
            const r = tr.getBoundingClientRect();
            if (r.top < bottom - 1.5 && r.bottom > bottom + 1.5) {
                const where = box.closest("section").id || box.id;
                cut.push(`${where}: ${r.top}-${r.bottom} at ${bottom}`);
            }
        }
    }
    return cut;
}"""


def _fits(page: Any, what: str) -> None:
    size = page.evaluate(OVERFLOW)
    assert size["scroll"] <= size["inner"], f"{what} overflows the page: {size}"
    nav = page.evaluate(NAV)
    assert len(nav) >= 5
    assert all(link["inside"] and link["reachable"] for link in nav), (what, nav)


@pytest.mark.parametrize("size", SIZES)
def test_every_page_fits_the_screen_with_its_navigation_in_reach(browser, web_server, size):
    made = off_the_loop(_history)
    page, errors = _page(browser, web_server, "/dashboard/", size)
    tag = f"{size['width']}x{size['height']}"

    _fits(page, "the dashboard")
    # The heatmap is wider than a phone: it scrolls inside its card, not the page.
    heat = page.evaluate(
        """() => { const box = document.getElementById("upcoming");
                   return {scroll: box.scrollWidth, client: box.clientWidth,
                           right: box.getBoundingClientRect().right, inner: innerWidth}; }"""
    )
    assert heat["right"] <= heat["inner"]
    if size is PHONE:
        assert heat["scroll"] > heat["client"], heat
    # No box cuts a row in half, whatever the rows hold.
    assert page.evaluate(CUT_ROWS) == []
    # A long error is cut with an ellipsis, not pushing the feed's columns out of view.
    if size is DESKTOP:
        feed = page.evaluate(
            """() => { const box = document.querySelector("#feed-card .scroll");
                       const error = box.querySelector(".c-error");
                       return {table: box.querySelector("table").getBoundingClientRect().width,
                               box: box.clientWidth, cut: error.scrollWidth > error.clientWidth,
                               title: error.title}; }"""
        )
        assert feed["table"] <= feed["box"] + 1, feed
        assert feed["cut"] is True
        assert feed["title"] == LONG_ERROR
        failures = page.evaluate(
            """() => { const box = document.querySelector("#failures-body").closest(".scroll");
                       return {table: box.querySelector("table").getBoundingClientRect().width,
                               box: box.clientWidth}; }"""
        )
        assert failures["table"] <= failures["box"] + 1, failures
    screenshot(page, f"dashboard-{tag}.png")

    for path in (
        f"/dashboard/tasks/{made['failed']}/",
        f"/agents/sessions/{made['session']}/",
        "/account/time-zone/",
        "/agents/",
    ):
        page.goto(f"{web_server.url}{path}")
        page.wait_for_load_state("load")
        _fits(page, path)
        screenshot(page, f"{path.strip('/').replace('/', '-')}-{tag}.png")
    assert errors == []


def test_the_feed_filter_is_kept_in_the_url_and_applies_to_the_live_stream_too(browser, web_server):
    off_the_loop(_history)
    page, errors = _page(browser, web_server, "/dashboard/", DESKTOP)
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))

    page.fill("#feed-filter input[name=task]", "scheduler.sleep")
    page.select_option("#feed-filter select[name=state]", "SUCCESS")
    page.click("#feed-filter button[type=submit]")
    page.wait_for_url("**/dashboard/?task=scheduler.sleep*state=SUCCESS*")
    page.wait_for_selector("#connection[data-state=live]")
    assert "task=scheduler.sleep" in sockets[-1]
    assert "state=SUCCESS" in sockets[-1]
    # The server-rendered rows follow the filter: none of the pings.
    assert page.locator("#feed-body tr").count() == 0

    ping = off_the_loop(task_enqueue, task="scheduler.ping")
    sleep = off_the_loop(task_enqueue, task="scheduler.sleep", params={"seconds": 0.1})
    page.locator(f'#feed-body tr[data-task-id="{sleep}"][data-state="SUCCESS"]').wait_for(
        state="attached", timeout=TASK_TIMEOUT
    )
    assert page.locator(f'#feed-body tr[data-task-id="{ping}"]').count() == 0

    page.reload()
    page.wait_for_selector("#connection[data-state=live]")
    assert page.input_value("#feed-filter input[name=task]") == "scheduler.sleep"
    assert page.input_value("#feed-filter select[name=state]") == "SUCCESS"
    assert page.locator(f'#feed-body tr[data-task-id="{sleep}"]').count() == 1
    assert page.locator(f'#feed-body tr[data-task-id="{ping}"]').count() == 0

    page.goto(f"{web_server.url}/dashboard/?periodic_task=pinger+1")
    page.wait_for_selector("#connection[data-state=live]")
    names = page.locator("#feed-body .c-periodic").all_inner_texts()
    assert names
    assert set(names) == {"pinger 1"}
    assert errors == []


def test_workers_and_beat_look_stale_while_the_live_connection_is_down(browser, web_server):
    page, errors = _page(browser, web_server, "/dashboard/", DESKTOP)
    assert page.locator("#cluster[data-stale]").count() == 0
    assert page.is_hidden("#cluster-stale")

    web_server.stop()
    try:
        page.wait_for_selector("#connection[data-state=reconnecting]", timeout=RECONNECT_TIMEOUT)
        assert page.locator("#cluster[data-stale]").count() == 1
        assert page.is_visible("#cluster-stale")
        assert page.inner_text("#cluster-stale") == "stale — live connection lost"
        opacity = page.evaluate("getComputedStyle(document.getElementById('workers')).opacity")
        assert float(opacity) < 1
        screenshot(page, "dashboard-stale.png")
    finally:
        web_server.start()

    page.wait_for_selector("#connection[data-state=live]", timeout=RECONNECT_TIMEOUT)
    assert page.locator("#cluster[data-stale]").count() == 0
    assert page.is_hidden("#cluster-stale")
    assert errors == []


def _digest_with_a_run() -> int:
    task = make_schedule(name="digest", schedule="every day at 6am")
    done = timezone.now() - timedelta(hours=1)
    stored_run(
        "digest-1",
        status="SUCCESS",
        started=done - timedelta(seconds=1),
        done=done,
        periodic_task_name="digest",
    )
    return int(task.pk)


def test_the_last_run_keeps_its_time_after_pause_and_resume(browser, web_server):
    pk = off_the_loop(_digest_with_a_run)
    page, errors = _page(browser, web_server, "/dashboard/", DESKTOP)
    row = page.locator(f'#periodic-body tr[data-schedule-id="{pk}"]')
    last = row.locator("td").nth(3)
    shown = last.inner_text()
    assert "success" in shown
    assert ":" in shown, shown

    for action, enabled in (("pause", "false"), ("resume", "true")):
        row.locator(f'button[data-action="{action}"]').click()
        page.locator(
            f'#periodic-body tr[data-schedule-id="{pk}"][data-enabled="{enabled}"]'
        ).wait_for(state="attached")
        assert last.inner_text() == shown, action
    assert errors == []
