"""The periodic task add form in a real browser (Debian's Chromium, tests/browser.py): typed
inputs for the chosen task's parameters, checked as they are typed with the services' own
messages and saved as the kwargs JSON; the task select within its column; no "Translation:
undefined" under the crontab select."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from scheduler.services import ScheduleError, task_validate
from tests.browser import PAGE_TIMEOUT, LiveServer, off_the_loop, screenshot
from tests.factories import make_agent

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "an admin's password"
ADD_PATH = "/admin/django_celery_beat/periodictask/add/"
# A catalog task with an enum (time_unit), a whole number (time_value, 1 to 10000) and a
# string checked against the database (agent): agents/tasks.py.
TASK = "agents.reply"


@pytest.fixture(scope="module")
def admin_server(django_db_setup: None, run_dir: Path) -> Iterator[LiveServer]:
    """The web server alone: the form needs no worker."""
    server = LiveServer(log_dir=run_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# Schemas no catalog task declares yet, and the input each gets: (property, kind, element).
KINDS = [
    ({"type": "string", "format": "date-time"}, "datetime", "INPUT datetime-local"),
    ({"$ref": "#/$defs/Unit"}, "enum", "SELECT"),
    ({"anyOf": [{"type": "boolean"}, {"type": "null"}], "default": None}, "boolean", "SELECT"),
    ({"type": "boolean", "default": False}, "boolean", "INPUT checkbox"),
    ({"type": "array", "items": {"type": "integer"}}, "list", "TEXTAREA"),
    ({"type": "number", "exclusiveMinimum": 0}, "number", "INPUT number"),
    ({"$ref": "#/$defs/Inner"}, "json", "TEXTAREA"),
    ({"type": "array", "items": {"$ref": "#/$defs/Inner"}}, "json", "TEXTAREA"),
    ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, "json", "TEXTAREA"),
]
DEFS = {
    "Unit": {"enum": ["minutes", "hours"], "type": "string"},
    "Inner": {"type": "object", "properties": {"x": {"type": "integer"}}},
}


def _admin_and_agent() -> None:
    get_user_model()._default_manager.create_superuser("admin", "admin@example.com", PASSWORD)
    make_agent("Helper")  # slug "helper"
    CrontabSchedule.objects.create(minute="0", hour="2")


def _service_messages(params: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(ScheduleError) as refused:
        task_validate(task=TASK, params=params)
    return refused.value.param_errors


def _saved_kwargs(name: str) -> Any:
    return json.loads(PeriodicTask.objects.get(name=name).kwargs)


def test_it_types_checks_and_saves_the_parameters_of_the_chosen_task(browser, admin_server):
    off_the_loop(_admin_and_agent)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(PAGE_TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{admin_server.url}/admin/login/?next={ADD_PATH}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{admin_server.url}{ADD_PATH}")
    page.wait_for_selector("#periodictask_form[data-params-ready]", state="attached")

    # The crontab select says nothing until a crontab is chosen, then the crontab in words.
    assert "Translation" not in page.inner_text(".field-crontab")
    page.select_option("#id_crontab", index=1)
    assert "In words: At 02:00 AM" in page.inner_text(".field-crontab")
    page.select_option("#id_crontab", "")
    assert "undefined" not in page.inner_text("body")

    page.select_option("#id_task", TASK)
    # The longest catalog descriptions stay inside the select's column, right of its label.
    box = page.evaluate(
        """() => {
            const select = document.querySelector("#id_task");
            const rect = (node) => node.getBoundingClientRect();
            return {
                select: rect(select).toJSON(),
                label: rect(document.querySelector(".field-task label")).toJSON(),
                row: rect(select.closest(".form-row")).toJSON(),
            };
        }"""
    )
    assert box["select"]["right"] <= box["row"]["right"], box
    assert box["select"]["left"] >= box["label"]["right"], box

    # Typed inputs: a select of the enum's values, a number input, the JSON box put away.
    unit = page.locator("select#scheduler-param-time_unit")
    options = unit.locator("option").all_inner_texts()
    assert options == ["(default: hours)", "minutes", "hours", "days"]
    assert page.get_attribute("#scheduler-param-time_value", "type") == "number"
    assert not page.is_visible("#id_kwargs")

    page.fill("#id_name", "replies every morning")
    page.fill("#id_schedule", "every day at 8am")
    page.fill("#scheduler-param-agent", "helper")
    page.fill("#scheduler-param-time_value", "0")
    error = page.locator(".field-param-time_value .errorlist li")
    error.wait_for()
    expected = off_the_loop(_service_messages, {"agent": "helper", "time_value": 0})
    assert [error.inner_text()] == expected["time_value"]
    screenshot(page, "admin-typed-params-error.png")

    # Every kind of schema gets its input (the module, on the page that loaded it).
    kinds = page.evaluate(
        """async ([properties, defs]) => {
            const { parameterInput } = await import("/static/scheduler/admin/param_inputs.js");
            return properties.map((property, index) => {
                const { row } = parameterInput({
                    name: `p${index}`, property, root: { $defs: defs }, required: false,
                    onInput() {},
                });
                const input = row.querySelector("input, select, textarea");
                const element = input.tagName === "INPUT" ? `INPUT ${input.type}` : input.tagName;
                return [row.dataset.kind, element];
            });
        }""",
        [[property for property, _, _ in KINDS], DEFS],
    )
    assert kinds == [[kind, element] for _, kind, element in KINDS]

    page.fill("#scheduler-param-time_value", "30")
    error.wait_for(state="detached")
    unit.select_option(label="minutes")
    page.click("input[name=_save]")
    page.wait_for_url(f"{admin_server.url}/admin/django_celery_beat/periodictask/")

    assert off_the_loop(_saved_kwargs, "replies every morning") == {
        "agent": "helper",
        "time_value": 30,
        "time_unit": "minutes",
    }
    assert errors == []
