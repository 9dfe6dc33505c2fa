"""The overlap policies as the task base carries them out (a `skip` periodic task never runs
twice at once; buffered, cancelled and terminated runs), and the run's intended time."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from django_celery_results.models import TaskResult

from scheduler.catalog import overlap_policy_of
from scheduler.core.redis_connection import get_redis
from scheduler.models import TaskEvent
from scheduler.protocol import BUFFERED
from scheduler.system.tasks import ping
from scheduler.worker import task_base
from scheduler.worker.deduplication import claim_key, claim_run
from scheduler.worker.overlap import (
    overlap_buffered,
    overlap_decide,
    overlap_hand_over,
    overlap_holder,
    stop_mark,
    stop_reason,
)
from scheduler.worker.task_base import SKIPPED, overlap_lock_key
from tests.factories import make_schedule

pytestmark = pytest.mark.django_db


@contextmanager
def as_run_of(periodic_task_name: str | None, task_id: str = "run-1") -> Iterator[None]:
    ping.push_request(id=task_id, periodic_task_name=periodic_task_name, hostname="w1@test")
    try:
        yield
    finally:
        ping.pop_request()


@contextmanager
def held(periodic_task_name: str) -> Iterator[None]:
    lock = get_redis().lock(overlap_lock_key(periodic_task_name), timeout=30)
    assert lock.acquire(blocking=False)
    try:
        yield
    finally:
        lock.release()


def test_it_skips_a_run_while_the_previous_run_holds_the_lock():
    make_schedule(name="slow report", overlap="skip")

    with held("slow report"), as_run_of("slow report", "run-2"), pytest.raises(Ignore):
        ping()

    row = TaskResult.objects.get(task_id="run-2")
    assert row.status == SKIPPED
    assert "still running" in row.result
    event = TaskEvent.objects.get(type="task.skipped")
    assert (event.task_id, event.periodic_task_name, event.worker) == (
        "run-2",
        "slow report",
        "w1@test",
    )


def test_it_runs_and_releases_the_lock_when_nothing_else_runs():
    make_schedule(name="solo", overlap="skip")

    with as_run_of("solo"):
        assert ping()["pong"] is True
    with as_run_of("solo", "run-3"):
        assert ping()["pong"] is True

    assert get_redis().get(overlap_lock_key("solo")) is None


def test_it_lets_runs_overlap_when_the_policy_allows_it():
    make_schedule(name="parallel", overlap="allow")

    with held("parallel"), as_run_of("parallel"):
        assert ping()["pong"] is True


def test_it_ignores_the_lock_for_runs_not_sent_for_a_periodic_task():
    with held("whatever"), as_run_of(None):
        assert ping()["pong"] is True


def test_a_periodic_task_without_options_takes_its_catalog_default():
    assert overlap_policy_of("made by hand", "scheduler.ping") == "allow"
    assert overlap_policy_of("made by hand", "not.in.catalog") == "allow"


# --- The other policies, carried out by the task base (the decisions: test_overlap.py) --------


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The buffered runs published again for their turn (not sent: no worker here)."""
    sent: list[str] = []
    monkeypatch.setattr(task_base, "overlap_publish", lambda run: sent.append(run["id"]))
    return sent


@pytest.fixture
def revoked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The runs revoked (run, signal); a test may set `on_revoke` to play the other run's part."""
    calls: list[tuple[str, str]] = []

    def revoke(task_id: str, terminate: bool = False, signal: str = "") -> None:
        assert terminate
        calls.append((task_id, signal))
        for then in on_revoke:
            then(task_id)

    monkeypatch.setattr(ping.app.control, "revoke", revoke)
    on_revoke.clear()
    return calls


on_revoke: list[Any] = []


def holding(periodic_task_name: str, run_id: str, policy: str = "skip") -> None:
    decision = overlap_decide(
        periodic_task_name=periodic_task_name, run_id=run_id, policy=policy, ttl_seconds=70
    )
    assert decision.outcome == "run"


@contextmanager
def run_of(periodic_task_name: str, task_id: str, **headers: Any) -> Iterator[None]:
    ping.push_request(
        id=task_id,
        periodic_task_name=periodic_task_name,
        hostname="w1@test",
        kwargs={},
        **headers,
    )
    try:
        yield
    finally:
        ping.pop_request()


def event_of(kind: str, task_id: str) -> TaskEvent:
    return TaskEvent.objects.get(type=kind, task_id=task_id)


def test_buffer_one_keeps_one_overlapping_run_and_skips_the_next(published):
    make_schedule(name="one more", overlap="buffer_one")
    holding("one more", "run-1")

    with run_of("one more", "run-2"), pytest.raises(Ignore):
        ping()
    with run_of("one more", "run-3"), pytest.raises(Ignore):
        ping()

    row = TaskResult.objects.get(task_id="run-2")
    assert row.status == BUFFERED
    assert json.loads(row.result)["reason"] == "buffered (buffer_one): runs after run run-1 ends"
    assert event_of("task.buffered", "run-2").message.startswith("buffered (buffer_one)")
    [kept] = overlap_buffered("one more")
    assert (kept["id"], kept["task"], kept["headers"]) == (
        "run-2",
        "scheduler.ping",
        {"periodic_task_name": "one more"},
    )
    skipped = TaskResult.objects.get(task_id="run-3")
    assert skipped.status == SKIPPED
    assert "and one run is buffered already" in skipped.result
    assert "run run-1" in event_of("task.skipped", "run-3").message
    assert published == []


def test_the_run_that_ends_hands_the_lock_to_the_first_buffered_run_and_publishes_it(published):
    make_schedule(name="in order", overlap="buffer_all")
    holding("in order", "run-1")
    for run_id in ("run-2", "run-3"):
        with run_of("in order", run_id), pytest.raises(Ignore):
            ping()
    assert "1 buffered run ahead" in TaskResult.objects.get(task_id="run-3").result

    with run_of("in order", "run-1"):
        assert ping()["pong"] is True
    assert published == ["run-2"]
    assert overlap_holder("in order") == "run-2"

    # run-2's turn: published again with the turn header, it holds the lock and runs.
    with run_of("in order", "run-2", overlap_turn="1"):
        assert ping()["pong"] is True
    assert published == ["run-2", "run-3"]
    with run_of("in order", "run-3", overlap_turn="1"):
        assert ping()["pong"] is True
    assert overlap_holder("in order") is None


def test_a_run_handed_the_lock_hands_it_on_even_if_the_policy_became_allow(published):
    make_schedule(name="changed", overlap="allow")
    holding("changed", "run-2")

    with run_of("changed", "run-2", overlap_turn="1"):
        ping()

    assert overlap_holder("changed") is None


def test_terminate_other_kills_the_running_run_and_runs_at_once(published, revoked):
    make_schedule(name="replace", overlap="terminate_other")
    holding("replace", "replace-1")

    with run_of("replace", "replace-2"):
        assert ping()["pong"] is True

    assert revoked == [("replace-1", "SIGKILL")]
    event = event_of("task.terminated", "replace-1")
    assert (
        event.message == "terminated by run replace-2 (overlap policy terminate_other of 'replace')"
    )
    assert (event.state, event.payload["by"]) == ("REVOKED", "replace-2")
    assert stop_reason("replace-1") == event.message
    assert overlap_holder("replace") is None  # replace-2 held it, and let go at its end


def test_cancel_other_cancels_the_running_run_and_starts_once_it_let_go(published, revoked):
    make_schedule(name="cooperative", overlap="cancel_other")
    holding("cooperative", "coop-1")
    # The cancelled run lets go of the lock as its SoftTimeLimitExceeded unwinds it.
    on_revoke.append(
        lambda task_id: overlap_hand_over(periodic_task_name="cooperative", holder=task_id)
    )

    with run_of("cooperative", "coop-2"):
        assert ping()["pong"] is True

    assert revoked == [("coop-1", "SIGUSR1")]
    assert event_of("task.cancelled", "coop-1").message.startswith("cancelled by run coop-2")
    assert overlap_holder("cooperative") is None


def test_a_waiting_run_replaced_by_a_newer_one_is_skipped(published, revoked):
    make_schedule(name="newest wins", overlap="cancel_other")
    holding("newest wins", "newest-1")
    # newest-3 arrives while newest-2 waits for newest-1 to stop: it names itself the waiter.
    on_revoke.append(
        lambda task_id: overlap_decide(
            periodic_task_name="newest wins",
            run_id="newest-3",
            policy="cancel_other",
            ttl_seconds=70,
        )
    )

    with run_of("newest wins", "newest-2"), pytest.raises(Ignore):
        ping()

    row = TaskResult.objects.get(task_id="newest-2")
    assert row.status == SKIPPED
    assert "run newest-3 replaced it while it waited for run newest-1 to stop" in row.result


def test_a_run_cancelled_by_another_is_stored_revoked_naming_it(monkeypatch):
    make_schedule(name="cancelled", overlap="cancel_other")
    holding("cancelled", "cancelled-1")
    stop_mark("cancelled-1", "cancelled by run cancelled-2 (overlap policy ...)", ttl_seconds=60)

    def interrupted() -> None:
        raise SoftTimeLimitExceeded()  # what SIGUSR1 raises in the pool process

    monkeypatch.setattr(ping, "run", interrupted)
    with run_of("cancelled", "cancelled-1"), pytest.raises(Ignore):
        ping()

    row = TaskResult.objects.get(task_id="cancelled-1")
    assert row.status == "REVOKED"
    assert "cancelled by run cancelled-2" in row.result
    assert overlap_holder("cancelled") is None


def test_a_run_past_its_own_soft_time_limit_fails_as_before(monkeypatch):
    make_schedule(name="slow", overlap="cancel_other")

    def interrupted() -> None:
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(ping, "run", interrupted)
    with run_of("slow", "slow-1"), pytest.raises(SoftTimeLimitExceeded):
        ping()
    assert overlap_holder("slow") is None


def test_the_overlap_policy_header_wins_over_the_schedules(published):
    make_schedule(name="backfilled", overlap="skip")
    holding("backfilled", "run-1")

    with run_of("backfilled", "run-2", overlap_policy="allow"):
        assert ping()["pong"] is True
    with run_of("backfilled", "run-3", overlap_policy="buffer_all"), pytest.raises(Ignore):
        ping()
    with run_of("backfilled", "run-4", overlap_policy="nonsense"), pytest.raises(Ignore):
        ping()

    assert TaskResult.objects.get(task_id="run-3").status == BUFFERED
    assert TaskResult.objects.get(task_id="run-4").status == SKIPPED


def test_a_run_in_the_caller_cannot_wait_in_a_buffer_it_is_skipped(published):
    make_schedule(name="eager", overlap="buffer_all")
    holding("eager", "run-1")

    with run_of("eager", "run-2", is_eager=True), pytest.raises(Ignore):
        ping()

    assert TaskResult.objects.get(task_id="run-2").status == SKIPPED
    assert overlap_buffered("eager") == []


def test_the_scheduled_for_header_is_on_the_request_and_given_to_a_task_that_takes_it(monkeypatch):
    seen: dict[str, Any] = {}

    def report(scheduled_for: datetime | None = None) -> None:
        seen["argument"] = scheduled_for
        seen["request"] = ping.request.scheduled_for

    monkeypatch.setattr(ping, "run", report)
    monkeypatch.setattr(task_base, "_takes_scheduled_for", {})
    with run_of("due", "run-1", scheduled_for="2027-03-14T07:30:00.000250Z"):
        ping()

    due = datetime(2027, 3, 14, 7, 30, 0, 250, tzinfo=UTC)
    assert seen == {"argument": due, "request": due}


def test_a_task_without_the_parameter_gets_the_time_on_its_request_only():
    with run_of("due", "run-1", scheduled_for="2027-03-14T07:30:00+00:00"):
        assert ping()["pong"] is True
        assert ping.request.scheduled_for == datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
    with run_of("due", "run-2", scheduled_for="not a time"):
        assert ping()["pong"] is True
        assert ping.request.scheduled_for is None


def test_the_result_backend_stores_who_stopped_a_revoked_run():
    stop_mark(
        "run-9", "terminated by run run-10 (overlap policy terminate_other of 'x')", ttl_seconds=60
    )

    ping.backend.mark_as_revoked("run-9", "terminated")

    assert "terminated by run run-10" in TaskResult.objects.get(task_id="run-9").result


def test_a_buffered_runs_turn_claims_a_delivery_of_its_own():
    make_schedule(name="claims", overlap="buffer_one")
    task_id = f"run-{uuid.uuid4().hex[:6]}"
    # Its first delivery claimed the attempt, and its process lives on.
    assert claim_run(task_id=task_id, retries=0, node="w1@test", ttl_seconds=60).acquired
    holding("claims", task_id)

    ping.push_request(
        id=task_id,
        hostname="w1@test",
        delivery_info={"exchange": "", "routing_key": "default", "redelivered": False},
        retries=0,
        is_eager=False,
        periodic_task_name="claims",
        overlap_turn="1",
    )
    try:
        assert ping()["pong"] is True
    finally:
        ping.pop_request()
    assert get_redis().exists(claim_key(task_id, 0, turn=1))
