"""The admin's periodic task list in a real browser (Debian's Chromium, tests/browser.py): its
useful columns fit a 1,280 px screen."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from tests.browser import PAGE_TIMEOUT, LiveServer, off_the_loop, screenshot
from tests.factories import make_schedule, stored_run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "an admin's password"
CHANGELIST = "/admin/django_celery_beat/periodictask/"


def _schedules_with_runs() -> None:
    get_user_model()._default_manager.create_superuser("admin", "admin@example.com", PASSWORD)
    done = timezone.now() - timedelta(minutes=3)
    # Long names, long phrases and zones, every kind of last run: the widths staff meet.
    for index, (task, phrase, status) in enumerate(
        [
            ("scheduler.cleanup_results", "every monday at 8am", "SUCCESS"),
            ("scheduler.sleep", "every 15 minutes", "FAILURE"),
            ("scheduler.ping", "0 9 * * 1-5", "SKIPPED"),
        ]
    ):
        name = f"tournament spring cup round robin decision loop {index}"
        make_schedule(name=name, task=task, schedule=phrase, tz="America/Argentina/Buenos_Aires")
        stored_run(
            # Unique: a row another test left behind in a shared database never collides.
            f"admin-browser-run-{index}-{uuid.uuid4().hex[:8]}",
            status=status,
            started=done - timedelta(seconds=754),
            done=done,
            periodic_task_name=name,
            task_name=task,
        )


def _signed_in_admin(browser: Any, server: LiveServer, path: str) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(PAGE_TIMEOUT)
    page.goto(f"{server.url}/admin/login/?next={path}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{server.url}{path}")
    return page


def test_it_fits_the_useful_columns_of_the_periodic_task_list_in_1280_px(browser, web_server):
    off_the_loop(_schedules_with_runs)
    page = _signed_in_admin(browser, web_server, CHANGELIST)
    page.wait_for_selector("#result_list tbody tr")
    screenshot(page, "admin-periodic-tasks-1280.png")

    # The admin's list scrolls sideways inside its box: a column past the box's right edge is
    # as hidden as one past the screen's.
    layout = page.evaluate(
        """() => {
            const table = document.querySelector("#result_list");
            const box = table.closest(".results") || table.parentElement;
            const headers = [...table.querySelectorAll("thead th")];
            return {
                visible: Math.min(window.innerWidth, Math.round(box.getBoundingClientRect().right)),
                box_scrolls: box.scrollWidth > box.clientWidth,
                page_scrolls: document.documentElement.scrollWidth > window.innerWidth,
                columns: headers.map((th) => ({
                    text: th.textContent.trim(),
                    right: Math.round(th.getBoundingClientRect().right),
                })),
            };
        }"""
    )

    columns = [column["text"] for column in layout["columns"]]
    assert columns[-2:] == ["Last run", "Next run"], columns
    assert [c for c in layout["columns"] if c["right"] > layout["visible"]] == [], layout
    assert not layout["box_scrolls"], layout
    assert not layout["page_scrolls"], layout
