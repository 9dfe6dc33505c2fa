"""The periodic task add form's live preview in a real browser (Debian's Chromium, see
tests/browser.py): typing a schedule a character at a time redraws the next runs, and a cron
line that can never run shows the form's own message for it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from tests.browser import PAGE_TIMEOUT, LiveServer, off_the_loop, screenshot

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "an admin's password"
ADD = "/admin/django_celery_beat/periodictask/add/"
# Each key a separate input event, as a person types; the form waits for a pause to ask.
KEY_DELAY_MS = 30


@pytest.fixture(scope="module")
def admin_web_server(django_db_setup: None, run_dir: Path) -> Iterator[LiveServer]:
    """The real web server on the test database (made first): the preview needs no worker."""
    server = LiveServer(log_dir=run_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _admin() -> None:
    get_user_model()._default_manager.create_superuser("admin", "admin@example.com", PASSWORD)


def _type(page: Any, text: str) -> None:
    field = page.locator("#id_schedule")
    field.fill("")
    field.press_sequentially(text, delay=KEY_DELAY_MS)


def test_it_previews_the_schedule_as_it_is_typed_on_the_add_form(browser, admin_web_server):
    off_the_loop(_admin)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(PAGE_TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{admin_web_server.url}/admin/login/?next={ADD}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{admin_web_server.url}{ADD}")

    box = page.locator("#scheduler-preview")
    first_run = box.locator(".scheduler-preview-run").first
    expect(box).to_have_attribute("data-state", "ready")
    expect(box).to_contain_text("Write a schedule")

    page.fill("#id_timezone", "America/New_York")
    _type(page, "every day at 7am")
    expect(first_run).to_contain_text(re.compile(r"07:00 E[DS]T \(UTC-0[45]:00\)"))
    expect(first_run).to_contain_text(re.compile(r"= \w{3} \d{4}-\d\d-\d\d 1[12]:00 UTC"))
    expect(box.locator(".scheduler-preview-run")).to_have_count(10)
    expect(box.locator(".scheduler-preview-effects")).to_contain_text("catch-up latest")
    screenshot(page, "admin-schedule-preview.png")

    _type(page, "every day at 9pm")
    expect(first_run).to_contain_text(re.compile(r"21:00 E[DS]T"))
    expect(first_run).not_to_contain_text("07:00")

    _type(page, "0 0 31 4 *")
    expect(box).to_have_attribute("data-state", "invalid")
    expect(box.locator(".errorlist")).to_contain_text(
        "Schedule: '0 0 31 4 *' can never run: April has no day 31"
    )
    expect(box.locator(".scheduler-preview-run")).to_have_count(0)
    screenshot(page, "admin-schedule-preview-error.png")
    assert errors == []
