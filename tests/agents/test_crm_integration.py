"""`agents.create_crm_order` in a real worker on the `crm` queue, against a real HTTP endpoint: a
500 is retried with backoff until the CRM takes the order; an order delivered again (the same
message, and the same order queued anew) reaches the CRM once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django_celery_results.models import TaskResult

from agents.signatures import HEADER, signature_verify
from agents.tasks import create_crm_order
from tests.factories import make_agent
from tests.processes import RunningProcess, start_worker, wait_for
from tests.receivers import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SECRET = "crm-secret-for-the-worker"


@pytest.fixture(scope="module")
def crm_server() -> Iterator[Receiver]:
    server = Receiver()
    server.thread.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def crm_worker(
    django_db_setup: None, django_db_blocker: object, run_dir: Path, crm_server: Receiver
) -> Iterator[RunningProcess]:
    """A worker consuming the `crm` queue only, sending to `crm_server`, retrying quickly."""
    worker = start_worker(
        log_dir=run_dir,
        queues=["crm"],
        concurrency=1,
        env={
            "CRM_ENDPOINT_URL": crm_server.url,
            "CRM_WEBHOOK_SECRET": SECRET,
            "CRM_TIMEOUT": "5",
            "AGENT_RETRY_BASE": "0.05",
        },
    )
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def crm(crm_server: Receiver, crm_worker: RunningProcess) -> Receiver:
    crm_server.received.clear()
    crm_server.statuses, crm_server.status = [], 200
    return crm_server


def _order() -> dict[str, Any]:
    return {
        "agent": "seller",
        "order_id": f"B-{uuid.uuid4().hex[:12]}",
        "customer": {"name": "Taras"},
        "lines": [{"sku": "MUG", "quantity": 1, "unit_price": "9.90"}],
    }


def _finished(task_id: str, worker: RunningProcess) -> TaskResult:
    def stored() -> bool:
        return TaskResult.objects.filter(
            task_id=task_id, status__in=["SUCCESS", "FAILURE"]
        ).exists()

    wait_for(stored, timeout=30, what=f"run {task_id} to finish\n{worker.log()}")
    return TaskResult.objects.get(task_id=task_id)


def _queue(kwargs: dict[str, Any], task_id: str | None = None) -> str:
    task_id = task_id or str(uuid.uuid4())
    create_crm_order.apply_async(kwargs=kwargs, task_id=task_id)  # routed to `crm`
    return task_id


def test_a_server_error_is_retried_until_the_crm_takes_the_order(crm, crm_worker):
    make_agent("Seller")
    crm.statuses = [500, 503]

    run = _finished(_queue(_order()), crm_worker)

    assert run.status == "SUCCESS", crm_worker.log()
    assert json.loads(run.result)["created"] is True
    assert len(crm.received) == 3
    keys = {headers["Idempotency-Key"] for headers, _ in crm.received}
    assert len(keys) == 1
    for headers, body in crm.received:
        signature_verify(SECRET, body, headers[HEADER])


def test_an_order_delivered_again_reaches_the_crm_once(crm, crm_worker):
    make_agent("Seller")
    order = _order()
    task_id = _queue(order)
    assert _finished(task_id, crm_worker).status == "SUCCESS", crm_worker.log()

    # acks_late: the same message handed out again; then the same order queued a second time.
    _queue(order, task_id)
    again = _finished(_queue(order), crm_worker)

    assert again.status == "SUCCESS"
    assert json.loads(again.result)["created"] is False
    assert len(crm.received) == 1
    assert TaskResult.objects.get(task_id=task_id).status == "SUCCESS"
