"""`agents.create_crm_order`: a signed POST of an agent's order to the CRM, once per order however
often its body runs, against a real HTTP endpoint (tests/receivers.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from agents import crm
from agents.errors import ExternalServiceError, PermanentError, RetryableError
from agents.signatures import HEADER, signature_verify
from agents.tasks import create_crm_order
from config.queues import QUEUES
from scheduler.catalog import load_catalog
from scheduler.core import get_redis, redis_key
from tests.factories import make_agent

pytestmark = pytest.mark.django_db

SECRET = "crm-secret-for-tests"


@pytest.fixture
def crm_endpoint(receiver: Any, settings: Any) -> Any:
    settings.CRM_ENDPOINT_URL = receiver.url
    settings.CRM_WEBHOOK_SECRET = SECRET
    settings.CRM_TIMEOUT = 5
    return receiver


def order(**fields: Any) -> dict[str, Any]:
    return {
        "agent": "seller",
        # Redis outlives a test: every order is a new one.
        "order_id": f"A-{uuid.uuid4().hex[:12]}",
        "customer": {"name": "Olena", "email": "olena@example.com"},
        "lines": [{"sku": "TSHIRT-M", "quantity": 2, "unit_price": "12.50"}],
        **fields,
    }


def run(kwargs: dict[str, Any], task_id: str | None = None) -> Any:
    return create_crm_order.apply(kwargs=kwargs, task_id=task_id or str(uuid.uuid4()))


@pytest.fixture
def seller() -> Any:
    return make_agent("Seller")


def test_it_is_a_catalog_task_on_the_crm_queue_with_25_and_30_second_limits(seller):
    entry = load_catalog().get("agents.create_crm_order")

    assert entry.queue == "crm"
    assert (create_crm_order.soft_time_limit, create_crm_order.time_limit) == (25, 30)
    assert (QUEUES["crm"].soft_limit, QUEUES["crm"].hard_limit) == (25, 30)
    assert entry.validate(order())["lines"][0]["unit_price"] == "12.50"


def test_it_posts_the_order_once_signed_with_its_idempotency_key(crm_endpoint, seller):
    kwargs = order()

    result = run(kwargs).get()

    [(headers, body)] = crm_endpoint.received
    signature_verify(SECRET, body, headers[HEADER])  # raises when it does not sign the body
    key = f"crm-order:seller:{kwargs['order_id']}"
    assert headers["Idempotency-Key"] == key
    sent = json.loads(body)
    assert sent["idempotency_key"] == key
    assert sent["agent"] == {"slug": "seller", "name": "Seller"}
    assert sent["order"]["order_id"] == kwargs["order_id"]
    assert sent["order"]["total"] == "25.00"
    assert result == {
        "order": kwargs["order_id"],
        "idempotency_key": key,
        "created": True,
        "status": 200,
    }


def test_a_repeated_run_of_the_same_order_posts_nothing_more(crm_endpoint, seller):
    kwargs = order()
    task_id = str(uuid.uuid4())

    first = run(kwargs, task_id).get()
    # acks_late: the same message delivered again; and the same order queued a second time.
    again = run(kwargs, task_id).get()
    other = run(kwargs).get()

    assert len(crm_endpoint.received) == 1
    assert first["created"] is True
    assert (again["created"], other["created"]) == (False, False)
    assert other["reason"] == f"sent already by run {task_id}"


def test_prices_written_otherwise_are_the_same_order(crm_endpoint, seller):
    kwargs = order()
    run(kwargs).get()

    same = {**kwargs, "lines": [{"sku": "TSHIRT-M", "quantity": 2, "unit_price": 12.5}]}

    assert run(same).get()["created"] is False
    assert len(crm_endpoint.received) == 1


def test_the_same_order_id_with_other_contents_is_refused(crm_endpoint, seller):
    kwargs = order()
    run(kwargs).get()

    changed = {**kwargs, "note": "two more, please"}
    with pytest.raises(PermanentError, match=r"order_changed.*needs a new order_id"):
        run(changed).get()

    assert len(crm_endpoint.received) == 1


def test_a_server_error_is_retryable_and_lets_the_next_run_send_it(crm_endpoint, seller):
    kwargs = order()
    crm_endpoint.statuses = [500]

    with pytest.raises(ExternalServiceError, match=r"external service crm failed.*500"):
        run(kwargs).get()  # a run in the caller does not retry: the worker does (integration)
    assert run(kwargs).get()["created"] is True

    keys = [headers["Idempotency-Key"] for headers, _ in crm_endpoint.received]
    assert keys == [f"crm-order:seller:{kwargs['order_id']}"] * 2


def test_a_refusal_fails_at_once(crm_endpoint, seller):
    crm_endpoint.status = 422

    with pytest.raises(PermanentError, match=r"crm_rejected.*422"):
        run(order()).get()


def test_an_unreachable_crm_is_retryable(settings, seller):
    settings.CRM_ENDPOINT_URL = "http://127.0.0.1:9/orders"  # discard: nothing listens
    settings.CRM_WEBHOOK_SECRET = SECRET

    with pytest.raises(ExternalServiceError, match="unreachable"):
        run(order()).get()


def test_another_run_sending_the_order_makes_this_one_wait(crm_endpoint, seller):
    kwargs = order()
    key = f"crm-order:seller:{kwargs['order_id']}"
    validated = load_catalog().get("agents.create_crm_order").validate(kwargs)
    validated.pop("agent")
    record = {"state": "sending", "run": "other-run", "digest": crm._digest(validated)}
    get_redis().set(redis_key(key), json.dumps(record), ex=60)

    with pytest.raises(RetryableError, match="being sent by run other-run"):
        run(kwargs).get()

    assert crm_endpoint.received == []


@pytest.mark.parametrize(
    ("url", "secret", "missing"),
    [("", SECRET, "CRM_ENDPOINT_URL"), ("http://127.0.0.1:9/", "", "CRM_WEBHOOK_SECRET")],
)
def test_it_says_what_is_not_configured(settings, seller, url, secret, missing):
    settings.CRM_ENDPOINT_URL, settings.CRM_WEBHOOK_SECRET = url, secret

    with pytest.raises(PermanentError, match=f"crm_not_configured: {missing} not set"):
        run(order()).get()


def test_a_malformed_order_queued_by_code_fails_at_once(crm_endpoint, seller):
    with pytest.raises(PermanentError, match="invalid_order"):
        run(order(lines=[])).get()

    assert crm_endpoint.received == []
