"""One execution per attempt: claims in Redis, holders alive or dead, copies dropped."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from typing import Any

import psutil
import pytest
from celery import states
from celery.exceptions import Ignore
from django_celery_results.models import TaskResult

from scheduler.core.redis_connection import get_redis
from scheduler.models import TaskEvent
from scheduler.protocol import CLAIM_DEFERRED_HEADER
from scheduler.system.tasks import ping
from scheduler.worker.deduplication import Holder, claim_key, claim_run, holder_alive, this_holder
from tests.factories import TaskResultFactory
from tests.processes import wait_for


def _redis() -> Any:
    return get_redis()


def _dead_holder() -> Holder:
    # A process that ran on this host and has exited: its pid is gone (or another process's).
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return Holder(host=this_holder("w@x").host, pid=child.pid, started=1.0, node="old@host")


def test_it_gives_an_attempt_to_the_first_claim_only():
    task_id = str(uuid.uuid4())

    first = claim_run(task_id=task_id, retries=0, node="w1@host", ttl_seconds=30)
    again = claim_run(task_id=task_id, retries=0, node="w1@host", ttl_seconds=30)

    assert first.acquired
    # Another delivery, even in the same process (a prefork child runs one at a time, so its
    # first copy ended; a thread pool runs both at once): a copy, dropped.
    assert not again.acquired
    ttl = _redis().pttl(claim_key(task_id, 0))
    assert 0 < ttl <= 30_000


def test_it_refuses_a_claim_held_by_a_live_process():
    task_id = str(uuid.uuid4())
    # pid 1 with its real start time: alive for as long as this machine runs.
    holder = Holder(
        host=this_holder("w@x").host, pid=1, started=psutil.Process(1).create_time(), node="w2"
    )
    _redis().set(claim_key(task_id, 0), holder.encode(), px=30_000)

    claim = claim_run(task_id=task_id, retries=0, node="w1@host", ttl_seconds=30)

    assert not claim.acquired
    assert claim.holder == holder


def test_it_takes_over_a_claim_whose_holder_died():
    task_id = str(uuid.uuid4())
    dead = _dead_holder()
    _redis().set(claim_key(task_id, 0), dead.encode(), px=30_000)

    claim = claim_run(task_id=task_id, retries=0, node="w1@host", ttl_seconds=30)

    assert claim.acquired
    assert claim.took_over
    now = Holder.decode(_redis().get(claim_key(task_id, 0)))
    assert now is not None
    assert replace(now, token="") == this_holder("w1@host")


def test_each_retry_is_an_attempt_of_its_own():
    task_id = str(uuid.uuid4())
    alive = Holder(
        host=this_holder("w@x").host, pid=1, started=psutil.Process(1).create_time(), node="w9"
    )
    _redis().set(claim_key(task_id, 0), alive.encode(), px=30_000)

    assert not claim_run(task_id=task_id, retries=0, node="w1@host", ttl_seconds=30).acquired
    assert claim_run(task_id=task_id, retries=1, node="w1@host", ttl_seconds=30).acquired


def test_a_holder_on_this_host_is_dead_once_its_pid_is_gone():
    assert not holder_alive(_dead_holder())
    me = this_holder("w1@host")
    assert holder_alive(me)
    assert me.booted is not None
    assert not holder_alive(replace(me, booted=me.booted - 3600))  # a reused pid


@pytest.mark.parametrize("step", [1.0, -1.0, 3600.0])
def test_a_live_holder_stays_alive_when_the_wall_clock_is_stepped(monkeypatch, step):
    me = this_holder("w1@host")
    # What psutil reads as the boot time moves with the wall clock (and by a whole second when
    # its rounding flips); a process's start as an epoch time moves with it.
    platform = psutil._psplatform  # type: ignore[attr-defined]  # psutil's own module for it
    booted = platform.boot_time()
    monkeypatch.setattr(platform, "boot_time", lambda: booted + step)

    assert holder_alive(me)
    assert me.booted is not None
    assert not holder_alive(replace(me, booted=me.booted - 3600))


def test_a_holder_written_by_an_older_worker_is_read_and_compared_as_before():
    me = this_holder("w1@host")
    older = json.loads(me.encode())
    del older["booted"]  # what a worker before boot-relative times wrote
    holder = Holder.decode(json.dumps(older))

    assert holder is not None
    assert holder.booted is None
    assert holder_alive(holder)
    assert not holder_alive(replace(holder, started=holder.started - 3600))
    # ... and what such a worker reads of ours: the fields it knows, unchanged.
    assert {key: json.loads(me.encode())[key] for key in older} == older


def test_a_claim_held_on_another_host_is_left_to_its_lease_without_asking_that_host():
    task_id = str(uuid.uuid4())
    # A node nobody runs: asking it would wait for an answer that never comes.
    far = Holder(host="far-away-host", pid=123, started=1.0, node=f"w-{uuid.uuid4().hex}@far")
    _redis().set(claim_key(task_id, 0), far.encode(), px=30_000)

    started = time.monotonic()
    claim = claim_run(task_id=task_id, retries=0, node="w1@host", ttl_seconds=30)

    assert time.monotonic() - started < 0.5
    assert (claim.acquired, claim.took_over, claim.holder) == (False, False, far)
    assert 29 < claim.lease_left <= 30


def test_a_claim_on_another_host_whose_lease_ended_is_free():
    task_id = str(uuid.uuid4())
    far = Holder(host="far-away-host", pid=123, started=1.0, node="w@far")
    _redis().set(claim_key(task_id, 0), far.encode(), px=1)
    time.sleep(0.01)

    assert claim_run(task_id=task_id, retries=0, node="w1@host", ttl_seconds=30).acquired


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_copy_claimed_on_another_host_runs_once_the_lease_ends_counted_as_executed_again(
    celery_worker,
):
    task_id = str(uuid.uuid4())
    # Another host claimed the run (and was cut off): its lease has 3 s left.
    far = Holder(host="far-away-host", pid=123, started=1.0, node="worker@far")
    _redis().set(claim_key(task_id, 0), far.encode(), px=3_000)
    sent = time.monotonic()

    ping.apply_async(task_id=task_id).get(timeout=30)

    # Not before the lease ended, and not by spending the run's own time: it was published
    # again for then.
    assert time.monotonic() - sent >= 3
    assert TaskResult.objects.get(task_id=task_id).status == states.SUCCESS
    events = TaskEvent.objects.filter(task_id=task_id)
    # The worker writes its events a moment after the result (its publisher's next flush).
    wait_for(
        lambda: events.filter(type="task.succeeded").exists(), timeout=15, what="task.succeeded"
    )
    deferred = events.get(type="task.duplicate", payload__deferred=True)
    assert deferred.message.startswith("copy deferred: claimed by worker@far on another host")
    again = events.get(type="task.duplicate", payload__executed_again=True)
    assert again.state == "STARTED"
    assert "executed again: the claim of worker@far ended" in again.message
    assert again.payload == {"executed_again": True, "first": "worker@far"}
    assert events.filter(type="task.succeeded").count() == 1


@pytest.mark.django_db
def test_a_deferred_copy_of_a_run_that_succeeded_meanwhile_is_dropped():
    result = TaskResultFactory.create(status=states.SUCCESS)
    ping.push_request(
        id=result.task_id,
        hostname="w1@test",
        delivery_info={"exchange": "", "routing_key": "default", "redelivered": False},
        eta="2026-12-03T10:00:00+00:00",
        headers={CLAIM_DEFERRED_HEADER: "worker@far"},
        retries=0,
        is_eager=False,
    )
    try:
        with pytest.raises(Ignore, match="the run ended SUCCESS"):
            ping()
    finally:
        ping.pop_request()
    assert not TaskEvent.objects.filter(
        task_id=result.task_id, type="task.duplicate", message__startswith="executed again"
    ).exists()


def test_a_holder_that_cannot_be_read_counts_as_dead():
    task_id = str(uuid.uuid4())
    _redis().set(claim_key(task_id, 0), b"not json", px=30_000)

    assert claim_run(task_id=task_id, retries=0, node="w1@host", ttl_seconds=30).took_over


def _delivered(task_id: str, *, redelivered: bool = False, eta: str | None = None) -> None:
    ping.push_request(
        id=task_id,
        hostname="w1@test",
        delivery_info={"exchange": "", "routing_key": "default", "redelivered": redelivered},
        eta=eta,
        retries=0,
        is_eager=False,
    )


@pytest.mark.django_db
def test_a_redelivered_copy_of_a_run_that_succeeded_is_dropped():
    result = TaskResultFactory.create(status=states.SUCCESS)
    _delivered(result.task_id, redelivered=True)
    try:
        with pytest.raises(Ignore, match="the run ended SUCCESS"):
            ping()
    finally:
        ping.pop_request()

    event = TaskEvent.objects.get(task_id=result.task_id, type="task.duplicate")
    assert event.state == states.SUCCESS
    assert TaskResult.objects.get(task_id=result.task_id).status == states.SUCCESS


@pytest.mark.django_db
def test_a_copy_of_a_run_still_going_elsewhere_is_dropped():
    task_id = str(uuid.uuid4())
    runner = Holder(
        host=this_holder("w@x").host, pid=1, started=psutil.Process(1).create_time(), node="w2"
    )
    _redis().set(claim_key(task_id, 0), runner.encode(), px=30_000)
    _delivered(task_id, eta="2026-12-03T10:00:00+00:00")
    try:
        with pytest.raises(Ignore, match="running in w2"):
            ping()
    finally:
        ping.pop_request()


@pytest.mark.django_db
def test_a_first_delivery_runs_and_claims_its_attempt():
    task_id = str(uuid.uuid4())
    _delivered(task_id)
    try:
        assert ping()["pong"] is True
    finally:
        ping.pop_request()
    assert _redis().exists(claim_key(task_id, 0))


def test_a_claim_names_this_process_and_its_delivery():
    task_id = str(uuid.uuid4())
    assert claim_run(task_id=task_id, retries=0, node="w@claims", ttl_seconds=5).acquired

    holder = Holder.decode(_redis().get(claim_key(task_id, 0)))
    assert holder is not None
    assert holder == replace(this_holder("w@claims"), token=holder.token)
    assert len(holder.token) == 32
    # Another delivery's claim, in the same process, carries another token.
    other = str(uuid.uuid4())
    claim_run(task_id=other, retries=0, node="w@claims", ttl_seconds=5)
    second = Holder.decode(_redis().get(claim_key(other, 0)))
    assert second is not None
    assert second.token != holder.token
