"""The catalog: registration, parameter validation, JSON Schema, and its system check."""

from __future__ import annotations

import pytest
from pydantic import Field

from config.celery import app
from scheduler.catalog import (
    Catalog,
    CatalogEntry,
    ParameterError,
    Params,
    UnknownTaskError,
    catalog,
    load_catalog,
)
from scheduler.checks import check_catalog
from scheduler.policies import OverlapPolicy


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
