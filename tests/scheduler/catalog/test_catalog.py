"""The catalog: registration, parameter validation, JSON Schema, and its system check."""

from __future__ import annotations

import asyncio
import re

import pytest
from pydantic import Field

from config.celery import app
from config.queues import route_task
from scheduler.catalog import (
    Catalog,
    CatalogEntry,
    ParameterError,
    Params,
    UnknownTaskError,
    catalog,
    catalog_existing,
    catalog_task,
    load_catalog,
)
from scheduler.checks import check_catalog
from scheduler.schedules.policies import OverlapPolicy


class _Params(Params):
    days: int = Field(30, ge=1, description="how far back")
    tags: list[str] = Field(default_factory=list)


ENTRY = CatalogEntry(name="demo.cleanup", description="Clean up.", params=_Params)


def test_it_lists_the_built_in_tasks_with_their_queues():
    entries = {entry.name: entry for entry in load_catalog()}

    assert "scheduler.ping" in entries
    assert entries["scheduler.ping"].queue == "default"
    assert all(name in app.tasks for name in entries)


def test_it_validates_and_defaults_parameters():
    assert ENTRY.validate(None) == {"days": 30, "tags": []}
    assert ENTRY.validate({"days": "7", "tags": ["a"]}) == {"days": 7, "tags": ["a"]}


@pytest.mark.parametrize(
    ("raw", "path", "words"),
    [
        ({"days": 0}, "days", "greater than or equal to 1"),
        ({"days": "soon"}, "days", "valid integer"),
        ({"tags": "a"}, "tags", "valid list"),
        ({"tags": ["a", 3]}, "tags.1", "valid string"),
        ({"surprise": 1}, "surprise", "is not a parameter of this task"),
        ("days=3", "params", "must be a JSON object, not str"),
    ],
)
def test_it_names_the_parameter_that_is_wrong(raw, path, words):
    with pytest.raises(ParameterError) as caught:
        ENTRY.validate(raw)

    assert path in caught.value.errors
    assert words in " ".join(caught.value.errors[path])
    assert str(caught.value).startswith("invalid parameters for demo.cleanup:")


def test_it_exposes_each_entrys_json_schema():
    schema = ENTRY.schema()

    assert schema["properties"]["days"]["description"] == "how far back"
    assert schema["additionalProperties"] is False


def test_it_names_the_available_tasks_for_an_unknown_one():
    registry = Catalog()
    registry.register(ENTRY)

    with pytest.raises(UnknownTaskError, match=r"unknown task 'nope'.*available: demo\.cleanup"):
        registry.get("nope")


def test_it_refuses_two_different_entries_under_one_name():
    registry = Catalog()
    registry.register(ENTRY)
    registry.register(ENTRY)  # the same entry again: a module imported twice

    with pytest.raises(ValueError, match="registered twice"):
        registry.register(CatalogEntry(name="demo.cleanup", description="Other.", params=_Params))


def test_the_system_check_passes_for_the_real_catalog():
    assert check_catalog() == []


def test_the_system_check_flags_an_entry_that_is_not_a_celery_task():
    catalog.register(
        CatalogEntry(name="ghost.task", description="Nobody.", overlap=OverlapPolicy.SKIP)
    )
    try:
        errors = check_catalog()
    finally:
        catalog._entries.pop("ghost.task")

    assert [error.id for error in errors] == ["scheduler.E001"]
    assert "ghost.task" in errors[0].msg


# --- Bringing an existing Celery task into the catalog -------------------------------------------


class _InvoiceParams(Params):
    month: str = Field(description="YYYY-MM")


LEGACY_TASK = "tests.billing.send_invoices"


@pytest.fixture
def legacy_task():
    """A plain Celery task, as a team moving from django-celery-beat has them: no catalog."""
    from celery import shared_task

    @shared_task(name=LEGACY_TASK)
    def send_invoices(month: str) -> str:
        return f"sent {month}"

    task = app.tasks[LEGACY_TASK]
    try:
        yield task
    finally:
        catalog.unregister(LEGACY_TASK)
        app.tasks.unregister(LEGACY_TASK)


@pytest.mark.django_db
def test_catalog_existing_brings_a_celery_task_in_by_name(legacy_task):
    from scheduler.worker.task_base import CatalogTask

    assert LEGACY_TASK not in catalog

    entry = catalog_existing(
        LEGACY_TASK, queue="maintenance", time_limit=600, params=_InvoiceParams
    )

    assert catalog.get(LEGACY_TASK) is entry
    assert entry.queue == "maintenance"
    assert entry.validate({"month": "2026-11"}) == {"month": "2026-11"}
    with pytest.raises(ParameterError, match="month"):
        entry.validate({})
    task = app.tasks[LEGACY_TASK]
    # The catalog's run guarantees (one run per delivery, the overlap policy), its own body.
    assert isinstance(task, CatalogTask)
    assert task.time_limit == 600
    assert task.apply(kwargs={"month": "2026-11"}).get() == "sent 2026-11"
    assert check_catalog() == []


def test_catalog_existing_refuses_a_queue_we_do_not_have(legacy_task):
    with pytest.raises(ValueError, match="unknown queue 'reports'"):
        catalog_existing(LEGACY_TASK, queue="reports")

    assert LEGACY_TASK not in catalog


@pytest.mark.django_db
def test_a_schedule_outside_the_catalog_can_be_enabled_once_its_task_is_brought_in(legacy_task):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from scheduler.services import ScheduleError, schedule_enable, schedule_update

    interval = IntervalSchedule.objects.create(every=1, period="days")
    PeriodicTask.objects.create(
        name="invoices",
        task=LEGACY_TASK,
        interval=interval,
        kwargs='{"month": "2026-11"}',
        enabled=False,
    )
    with pytest.raises(ScheduleError, match="outside the catalog"):
        schedule_enable(name="invoices")

    catalog_existing(LEGACY_TASK, queue="maintenance", params=_InvoiceParams)
    schedule_enable(name="invoices")
    schedule_update(name="invoices", queue="maintenance")

    row = PeriodicTask.objects.get(name="invoices")
    assert (row.enabled, row.queue) == (True, "maintenance")


@pytest.mark.parametrize("policy", [p.value for p in OverlapPolicy if p != OverlapPolicy.DEFAULT])
def test_an_entry_may_declare_every_overlap_policy(policy):
    entry = catalog_existing(f"demo.overlap_{policy}", queue="default", overlap=policy)
    try:
        assert entry.overlap == policy
    finally:
        catalog.unregister(entry.name)


def test_an_entry_cannot_declare_default_or_an_unknown_policy():
    for policy in ("default", "sometimes"):
        with pytest.raises(ValueError, match="allow, skip, buffer_one, buffer_all, cancel_other"):
            catalog_existing("demo.overlap_wrong", queue="default", overlap=policy)
    assert "demo.overlap_wrong" not in catalog


# --- Tasks outside the routed prefixes, and async bodies ------------------------------------------


@pytest.fixture
def forget():
    """Names of tasks a test declares, taken out of the catalog and the app afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        catalog.unregister(name)
        app.tasks.pop(name, None)


def test_a_task_outside_the_routed_prefixes_without_a_queue_is_refused(forget):
    forget.append("reports.weekly")
    with pytest.raises(ValueError, match=r"catalog task 'reports\.weekly' declares no queue") as e:

        @catalog_task(name="reports.weekly", description="A weekly report.")
        def weekly() -> None:
            return None

    message = str(e.value)
    assert "it would run on 'default' with its 10 s limit" in message
    declare = "@catalog_task(name='reports.weekly', queue=..., time_limit=..., soft_time_limit=...)"
    assert declare in message
    assert "maintenance" in message  # the queues to choose from
    assert "reports.weekly" not in catalog


def test_an_existing_task_outside_the_routed_prefixes_needs_a_queue_too(legacy_task):
    with pytest.raises(
        ValueError, match=r"catalog_existing\('tests\.billing\.send_invoices', queue="
    ):
        catalog_existing(LEGACY_TASK, params=_InvoiceParams)

    assert LEGACY_TASK not in catalog


def test_a_task_outside_the_routed_prefixes_runs_on_its_declared_queue_and_limits(forget):
    forget.append("reports.monthly")

    @catalog_task(
        name="reports.monthly",
        description="A monthly report.",
        queue="maintenance",
        soft_time_limit=100,
        time_limit=120,
    )
    def monthly() -> str:
        return "done"

    assert catalog.get("reports.monthly").queue == "maintenance"
    assert (monthly.time_limit, monthly.soft_time_limit) == (120, 100)
    assert app.amqp.router.route({"queue": monthly.queue}, monthly.name)["queue"].name == (
        "maintenance"
    )
    assert route_task(monthly.name, (), {}, {}, task=monthly) == {"queue": "maintenance"}


def test_a_declared_queue_gives_its_limits_when_the_task_declares_none(forget):
    forget.append("reports.daily")

    @catalog_task(name="reports.daily", description="A daily report.", queue="webhooks")
    def daily() -> None:
        return None

    assert (daily.time_limit, daily.soft_time_limit) == (30, 25)


def test_an_existing_task_moved_to_a_queue_gets_that_queues_limits(legacy_task):
    assert (legacy_task.time_limit, legacy_task.soft_time_limit) == (10, 8)  # default's

    catalog_existing(LEGACY_TASK, queue="maintenance", params=_InvoiceParams)

    assert (legacy_task.time_limit, legacy_task.soft_time_limit) == (900, 870)


@pytest.mark.parametrize(
    ("limits", "words"),
    [
        ({"time_limit": 0}, "time_limit of 'reports.x' must be a number of seconds above 0"),
        ({"soft_time_limit": 60, "time_limit": 30}, "must be less than its time_limit (30 s)"),
    ],
)
def test_limits_that_cannot_work_are_refused(forget, limits, words):
    forget.append("reports.x")
    with pytest.raises(ValueError, match=re.escape(words)):
        catalog_task(name="reports.x", description="X.", queue="maintenance", **limits)

    assert "reports.x" not in catalog


@pytest.mark.django_db
def test_an_async_def_body_runs_on_one_loop_and_returns_its_result(forget):
    forget.append("reports.async_sum")

    @catalog_task(name="reports.async_sum", description="Sum, awaited.", queue="default")
    async def async_sum(a: int, b: int) -> dict[str, int]:
        await asyncio.sleep(0)
        return {"sum": a + b, "loop": id(asyncio.get_running_loop())}

    first = async_sum.apply(kwargs={"a": 2, "b": 3}).get()
    second = async_sum.apply(kwargs={"a": 4, "b": 5}).get()

    assert (first["sum"], second["sum"]) == (5, 9)
    assert first["loop"] == second["loop"]  # one loop per process, not one per run
    assert async_sum(a=1, b=1)["sum"] == 2  # called directly, as tests call task bodies
