"""`/api/workers/` with real workers: the pool size each answers `inspect stats` with, grown and
shrunk there; autoscale of a worker started with `--autoscale` (and refused, saying so, for one
started without); a warm shutdown that stops that worker's process; `control_workers` needed
(403 JSON), every control audited, bad numbers a 400 naming the field, an unknown worker a 404.

The module shares one worker (`celery_worker`, two prefork processes) and leaves its pool as it
found it; the shutdown test starts a worker of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler.models import AuditEntry
from scheduler.observability import worker_pools
from scheduler.observability.worker_pools import worker_pool
from tests.clients import api_client, response_json
from tests.factories import user_with
from tests.processes import RunningProcess, start_worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CONTROL = "scheduler.control_workers"


def _processes(hostname: str) -> int | None:
    pool = worker_pool(hostname)
    return pool.processes if pool is not None else None


def _wait_processes(worker: RunningProcess, count: int) -> None:
    wait_for(
        lambda: _processes(worker.hostname) == count,
        timeout=30,
        what=f"{worker.hostname} to run {count} pool processes\n{worker.log()}",
    )


@pytest.fixture
def short_replies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nobody answers the tests that use it: a shorter wait for the answer that never comes."""
    monkeypatch.setattr(worker_pools, "REPLY_TIMEOUT", 0.5)


@pytest.fixture
def operator() -> Any:
    return api_client(user_with(CONTROL))


def test_it_lists_each_worker_with_its_pool_as_inspect_stats_gives_it(
    celery_worker: RunningProcess,
) -> None:
    response = api_client(user_with()).get("/api/workers/")

    assert response.status_code == 200
    rows = {row["hostname"]: row for row in response_json(response)}
    row = rows[celery_worker.hostname]
    assert row["answered"] is True
    assert row["last_seen"] is not None
    assert "default" in row["queues"]
    assert row["pool"]["kind"] == "prefork"
    assert row["pool"]["processes"] == 2
    assert row["pool"]["autoscale"] is None


def test_grow_then_shrink_show_in_inspect_stats_and_are_audited(
    celery_worker: RunningProcess, operator: Any
) -> None:
    url = f"/api/workers/{celery_worker.hostname}/pool/"

    grown = operator.post(url, {"grow": 2}, format="json")

    assert grown.status_code == 200, grown.content
    assert response_json(grown) == {
        "hostname": celery_worker.hostname,
        "action": "pool_grown",
        "detail": "pool will grow",
        "changes": {"processes": [2, 4]},
    }
    _wait_processes(celery_worker, 4)

    shrunk = operator.post(url, {"shrink": 2}, format="json")

    assert shrunk.status_code == 200, shrunk.content
    assert response_json(shrunk)["changes"] == {"processes": [4, 2]}
    _wait_processes(celery_worker, 2)
    trail = AuditEntry.objects.order_by("id")
    assert [(entry.periodic_task_name, entry.action, entry.source) for entry in trail] == [
        (f"worker:{celery_worker.hostname}", "pool_grown", "api"),
        (f"worker:{celery_worker.hostname}", "pool_shrunk", "api"),
    ]
    assert {entry.actor_id for entry in trail} == {grown.wsgi_request.user.pk}
    assert trail[0].changes == {"processes": [2, 4]}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("pool/", {"grow": 1}),
        ("pool/", {"shrink": 1}),
        ("autoscale/", {"max": 3, "min": 1}),
        ("shutdown/", {}),
    ],
)
def test_without_control_workers_it_is_refused_as_json_and_nothing_changes(
    celery_worker: RunningProcess, path: str, body: dict[str, Any]
) -> None:
    watcher = api_client(user_with("scheduler.view_dashboard", "scheduler.run_tasks"))

    response = watcher.post(f"/api/workers/{celery_worker.hostname}/{path}", body, format="json")

    assert response.status_code == 403
    assert response_json(response) == {"detail": "permission required: scheduler.control_workers"}
    assert not AuditEntry.objects.exists()
    assert _processes(celery_worker.hostname) == 2


def test_someone_not_staff_may_not_even_list_the_workers() -> None:
    response = api_client(user_with(CONTROL, staff=False)).get("/api/workers/")

    assert response.status_code == 403
    assert "detail" in response_json(response)


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        ("pool/", {"grow": 0}, "grow", "must be a whole number from 1 to 64, not 0"),
        ("pool/", {"grow": 65}, "grow", "must be a whole number from 1 to 64, not 65"),
        ("pool/", {"grow": 63}, "grow", "2 + 63 processes is more than 64: grow by at most 62"),
        ("pool/", {"shrink": -1}, "shrink", "must be a whole number from 1 to 64, not -1"),
        ("pool/", {"shrink": 2}, "shrink", "has 2 process(es): shrink by at most 1"),
        ("pool/", {"grow": "many"}, "grow", "A valid integer is required."),
        ("pool/", {"grow": None}, "grow", "This field may not be null."),
        ("pool/", {}, "body", 'give one of "grow" or "shrink"'),
        ("pool/", {"grow": 1, "shrink": 1}, "body", 'give one of "grow" or "shrink"'),
        ("pool/", {"size": 3}, "size", "is not a field of this request"),
        ("autoscale/", {"max": 0}, "max", "must be a whole number from 1 to 64, not 0"),
        ("autoscale/", {"max": 2, "min": 3}, "min", "must not be more than max (2), not 3"),
        ("autoscale/", {"min": 1}, "max", "This field is required."),
        ("autoscale/", {"max": 2, "min": -1}, "min", "must be a whole number from 0 to 64"),
    ],
)
def test_bad_numbers_are_a_400_naming_the_field_and_change_nothing(
    celery_worker: RunningProcess,
    operator: Any,
    path: str,
    body: dict[str, Any],
    field: str,
    message: str,
) -> None:
    response = operator.post(f"/api/workers/{celery_worker.hostname}/{path}", body, format="json")

    assert response.status_code == 400, response.content
    errors = response_json(response)
    assert list(errors) == [field]
    assert message in " ".join(errors[field])
    assert not AuditEntry.objects.exists()
    assert _processes(celery_worker.hostname) == 2


def test_autoscale_of_a_worker_started_without_it_is_a_409_saying_so(
    celery_worker: RunningProcess, operator: Any
) -> None:
    response = operator.post(
        f"/api/workers/{celery_worker.hostname}/autoscale/", {"max": 4, "min": 1}, format="json"
    )

    assert response.status_code == 409
    detail = response_json(response)["detail"]
    assert f"worker {celery_worker.hostname} was not started with --autoscale" in detail
    assert "--autoscale=MAX,MIN" in detail
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    ("path", "body"),
    [("pool/", {"grow": 1}), ("autoscale/", {"max": 2}), ("shutdown/", {})],
)
def test_a_hostname_no_worker_answers_for_is_a_404(
    short_replies: None, operator: Any, path: str, body: dict[str, Any]
) -> None:
    response = operator.post(f"/api/workers/nobody@nowhere/{path}", body, format="json")

    assert response.status_code == 404
    assert response_json(response) == {
        "detail": "no worker named nobody@nowhere answered within 0.5 s "
        "(`manage.py scheduler worker list` lists the workers online)"
    }
    assert not AuditEntry.objects.exists()


def test_a_hostname_that_cannot_be_one_is_a_404_of_the_resolver(operator: Any) -> None:
    response = operator.post("/api/workers/-not a host/pool/", {"grow": 1}, format="json")

    assert response.status_code == 404
    assert "no such API endpoint" in response_json(response)["detail"]


@pytest.fixture
def autoscaled_worker(run_dir: Path) -> Iterator[RunningProcess]:
    running = start_worker(log_dir=run_dir, queues=["default"], extra=("--autoscale=3,1",))
    try:
        yield running
    finally:
        running.stop()


def test_an_autoscaled_worker_is_rescaled_then_shut_down_warm(
    autoscaled_worker: RunningProcess, celery_worker: RunningProcess, operator: Any
) -> None:
    hostname = autoscaled_worker.hostname

    response = operator.post(
        f"/api/workers/{hostname}/autoscale/", {"max": 5, "min": 2}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response_json(response)["detail"] == "autoscale now max=5 min=2"
    wait_for(
        lambda: (
            (pool := worker_pool(hostname)) is not None
            and pool.autoscale == worker_pools.Autoscale(max=5, min=2)
            and pool.processes >= 2
        ),
        timeout=30,
        what=f"{hostname} to autoscale between 2 and 5\n{autoscaled_worker.log()}",
    )
    # An autoscaled pool is resized through its range only.
    refused = operator.post(f"/api/workers/{hostname}/pool/", {"grow": 1}, format="json")
    assert refused.status_code == 409
    assert "autoscales (max 5, min 2): change its autoscale range" in refused.json()["detail"]

    stopped = operator.post(f"/api/workers/{hostname}/shutdown/", format="json")

    assert stopped.status_code == 202, stopped.content
    assert response_json(stopped)["action"] == "shut_down"
    wait_for(
        lambda: autoscaled_worker.process.poll() is not None,
        timeout=30,
        what=f"{hostname} to exit\n{autoscaled_worker.log()}",
    )
    assert autoscaled_worker.process.poll() == 0
    # That worker alone.
    assert celery_worker.process.poll() is None
    assert list(AuditEntry.objects.order_by("id").values_list("action", "changes")) == [
        ("autoscaled", {"autoscale": [{"max": 3, "min": 1}, {"max": 5, "min": 2}]}),
        ("shut_down", {"state": ["running", "shutting down"]}),
    ]
