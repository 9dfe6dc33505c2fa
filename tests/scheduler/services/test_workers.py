"""The controls of one worker without one: what they refuse before asking any worker (bad
numbers, a hostname that cannot be one), a worker that does not answer, and how a worker's
answer is read (its refusals in words). The controls with real workers: tests/scheduler/api/
test_workers.py and tests/scheduler/cli/test_workers.py."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.models import AuditEntry, Source
from scheduler.observability import worker_pools
from scheduler.observability.worker_heartbeats import forget_worker, record_worker_seen
from scheduler.services import (
    ScheduleError,
    WorkerNotFound,
    WorkerRefused,
    worker_autoscale,
    worker_pool_grow,
    worker_pool_shrink,
    worker_shutdown,
)
from scheduler.services import workers as worker_services

pytestmark = pytest.mark.django_db


@pytest.fixture
def nobody_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input is refused before any broadcast: asking a worker fails the test."""

    def asked(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a worker was asked")

    monkeypatch.setattr(worker_services, "worker_pool", asked)
    monkeypatch.setattr(worker_services, "worker_answers", asked)


@pytest.mark.parametrize(
    ("call", "kwargs", "field"),
    [
        (worker_pool_grow, {"n": 0}, "grow"),
        (worker_pool_grow, {"n": True}, "grow"),
        (worker_pool_grow, {"n": 2.5}, "grow"),
        (worker_pool_grow, {"n": 65}, "grow"),
        (worker_pool_shrink, {"n": -3}, "shrink"),
        (worker_autoscale, {"max_processes": 0}, "max"),
        (worker_autoscale, {"max_processes": 3, "min_processes": 4}, "min"),
        (worker_autoscale, {"max_processes": 3, "min_processes": -1}, "min"),
        (worker_pool_grow, {"n": 1, "hostname": ""}, "hostname"),
        (worker_pool_grow, {"n": 1, "hostname": "w@host/../x"}, "hostname"),
        (worker_shutdown, {"hostname": "a" * 191}, "hostname"),
    ],
)
def test_bad_input_names_its_field_before_any_worker_is_asked(
    nobody_asked: None, call: Any, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ScheduleError) as refused:
        call(**{"hostname": "w@host", **kwargs}, source=Source.API)

    assert list(refused.value.errors) == [field]
    assert not AuditEntry.objects.exists()


@pytest.fixture
def short_replies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_pools, "REPLY_TIMEOUT", 0.3)


def test_a_worker_heard_from_that_does_not_answer_is_named_as_such(short_replies: None) -> None:
    record_worker_seen("gone@host")
    try:
        with pytest.raises(WorkerNotFound) as missing:
            worker_pool_grow(hostname="gone@host", n=1, source=Source.CLI, actor_name="alice")
    finally:
        forget_worker("gone@host")

    assert str(missing.value) == (
        "worker gone@host did not answer within 0.3 s: it is stopped, restarting or too busy "
        "to answer"
    )
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    ("answer", "refusal"),
    [
        (
            {"error": "ValueError('Autoscale not enabled')"},
            "worker w@host was not started with --autoscale; start it with "
            "`celery -A config worker --autoscale=MAX,MIN` to use autoscale",
        ),
        (
            {"error": 'ValueError("Can\'t shrink pool. All processes busy!")'},
            "worker w@host refused to shrink its pool: Can't shrink pool. All processes busy!",
        ),
        (
            {"error": "pool_grow is not supported with autoscale."},
            "worker w@host refused to shrink its pool: pool_grow is not supported with autoscale.",
        ),
    ],
)
def test_a_refusal_is_told_in_words(answer: dict[str, str], refusal: str) -> None:
    with pytest.raises(WorkerRefused) as refused:
        worker_services._answer("w@host", [{"w@host": answer}], what="shrink its pool")

    assert str(refused.value) == refusal


def test_an_answer_from_another_worker_is_no_answer(short_replies: None) -> None:
    with pytest.raises(WorkerNotFound):
        worker_services._answer("w@host", [{"other@host": {"ok": "pool will grow"}}], what="grow")

    assert worker_services._answer("w@host", [{"w@host": {"ok": "done"}}], what="grow") == "done"
