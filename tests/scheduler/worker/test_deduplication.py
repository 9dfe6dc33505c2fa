"""One execution per attempt: claims in Redis, holders alive or dead, copies dropped."""

from __future__ import annotations

import subprocess
import sys
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
from scheduler.system.tasks import ping, sleep
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
    assert not holder_alive(_dead_holder(), "any")
    me = this_holder("w1@host")
    assert holder_alive(me, "any")
    assert not holder_alive(replace(me, started=me.started - 3600), "any")  # a reused pid


def test_a_holder_on_another_host_whose_node_does_not_answer_is_dead():
    far = Holder(host="far-away-host", pid=123, started=1.0, node=f"w-{uuid.uuid4().hex}@far")
    assert not holder_alive(far, str(uuid.uuid4()))


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_holder_on_another_host_is_alive_while_its_node_runs_the_task(celery_worker):
    result = sleep.apply_async(kwargs={"seconds": 3})
    wait_for(
        lambda: _redis().get(claim_key(result.id, 0)) is not None,
        timeout=15,
        what="the worker to claim the run",
    )
    holder = Holder.decode(_redis().get(claim_key(result.id, 0)))
    assert holder is not None
    seen_from_afar = replace(holder, host="another-host")  # asked of its node, not its pid

    assert holder_alive(seen_from_afar, result.id)
    result.get(timeout=15)
    assert not holder_alive(seen_from_afar, result.id)


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
