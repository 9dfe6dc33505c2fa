"""The workers panel's controls in a real browser (see test_browser.py): the real worker's pool
as it answers `inspect stats`, the +1 and -1 buttons resizing it there, Autoscale… refused for a
worker started without `--autoscale` (the toast says so); no buttons for who may not use them."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from scheduler.models import AuditEntry
from scheduler.observability.worker_pools import worker_pool
from tests.browser import TASK_TIMEOUT, LiveServer, off_the_loop, screenshot, signed_in_page
from tests.processes import RunningProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "a browser's password"


def _user(username: str, *codenames: str) -> None:
    user = get_user_model()._default_manager.create_user(
        username, f"{username}@example.com", PASSWORD, is_staff=True
    )
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))


def _pool_reads(page: Any, item: Any, text: str) -> None:
    page.wait_for_function(
        "([node, text]) => node.querySelector('.worker-pool')?.textContent === text",
        arg=[item.element_handle(), text],
        timeout=TASK_TIMEOUT,
    )


def test_plus_and_minus_resize_the_pool_and_autoscale_is_refused_saying_why(
    browser: Any, web_server: LiveServer, celery_worker: RunningProcess
) -> None:
    off_the_loop(_user, "operator", "view_dashboard", "control_workers")
    page, errors = signed_in_page(
        browser, web_server, "/dashboard/", username="operator", password=PASSWORD
    )
    item = page.locator(f'#workers li[data-hostname="{celery_worker.hostname}"]')
    _pool_reads(page, item, "prefork · 2 processes")
    screenshot(page, "dashboard-workers.png")

    item.locator('button[data-worker-action="grow"]').click()

    page.locator("#notice").filter(has_text="pool will grow").wait_for(timeout=TASK_TIMEOUT)
    _pool_reads(page, item, "prefork · 3 processes")
    item.locator('button[data-worker-action="shrink"]').click()
    _pool_reads(page, item, "prefork · 2 processes")
    wait_for(
        lambda: getattr(off_the_loop(worker_pool, celery_worker.hostname), "processes", 0) == 2,
        timeout=30,
        what="the worker to run 2 processes again",
    )

    page.once("dialog", lambda dialog: dialog.accept("4,1"))
    item.locator('button[data-worker-action="autoscale"]').click()

    refusal = page.locator("#notice .toast[data-kind=error]")
    refusal.filter(has_text="was not started with --autoscale").wait_for(timeout=TASK_TIMEOUT)
    actions = off_the_loop(
        lambda: list(
            AuditEntry.objects.order_by("id").values_list("action", "actor__username", "source")
        )
    )
    assert actions == [
        ("pool_grown", "operator", "dashboard"),
        ("pool_shrunk", "operator", "dashboard"),
    ]
    assert errors == []


def test_who_may_not_control_workers_sees_the_pool_and_no_button(
    browser: Any, web_server: LiveServer, celery_worker: RunningProcess
) -> None:
    off_the_loop(_user, "watcher", "view_dashboard")
    page, errors = signed_in_page(
        browser, web_server, "/dashboard/", username="watcher", password=PASSWORD
    )
    item = page.locator(f'#workers li[data-hostname="{celery_worker.hostname}"]')

    _pool_reads(page, item, "prefork · 2 processes")

    assert item.locator("button").count() == 0
    assert errors == []
