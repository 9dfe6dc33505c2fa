"""Orders agents produce, created in the CRM (the MIRT seed's `create_crm_order`): one signed POST
per order, however often the run is delivered or repeated.

The body is `{"agent", "idempotency_key", "order"}` as JSON, signed with CRM_WEBHOOK_SECRET in
the agents' webhook scheme (`X-Agent-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." +
the body>`), with an `Idempotency-Key` header made from the agent and the order's own id, so the
CRM can refuse a second copy too.

The order is sent once: a record in Redis, keyed by the idempotency key, says `sending` (by which
run, while it may still be running) and then `sent` (kept CRM_IDEMPOTENCY_DAYS). A run that finds
it `sent` posts nothing and answers what was sent; one that finds another run `sending` retries
later; a failed POST lets the record go, so the retry sends it. The same order id with other
contents is refused: an order that changed is a new order, with a new id. A worker killed
between the CRM's answer and the record leaves `sending` to expire, and the next delivery posts
again: the Idempotency-Key is what keeps that one from making a second order.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from decimal import Decimal
from typing import Any

import redis
from django.conf import settings

from agents.errors import ExternalServiceError, PermanentError, RetryableError
from agents.models import Agent
from agents.signatures import HEADER, sign
from config.queues import QUEUES
from scheduler.core import get_redis, redis_key
from scheduler.system import NotificationError, NotificationRejected, webhook_post

logger = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
# A `sending` record outlives the run that wrote it (the crm queue's hard limit) by a margin.
SENDING_TTL = QUEUES["crm"].hard_limit + 60

# Let the record go only if it is still this run's.
_RELEASE = """
local record = redis.call('GET', KEYS[1])
if not record then
    return 0
end
local held = cjson.decode(record)
if held['run'] == ARGV[1] and held['state'] == 'sending' then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def crm_idempotency_key(agent: Agent, order: dict[str, Any]) -> str:
    """The order's key: the agent's and the order's ids, the same for every run of it."""
    return f"crm-order:{agent.slug}:{order['order_id']}"


def crm_order_body(agent: Agent, order: dict[str, Any], key: str) -> dict[str, Any]:
    total = sum(
        (Decimal(str(line["unit_price"])) * line["quantity"] for line in order["lines"]),
        Decimal(0),
    )
    return {
        "agent": {"slug": agent.slug, "name": agent.name},
        "idempotency_key": key,
        "order": {**order, "total": str(total)},
    }


def _digest(order: dict[str, Any]) -> str:
    canonical = json.dumps(order, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _record_key(key: str) -> str:
    return redis_key(key)


def crm_order_send(*, agent: Agent, order: dict[str, Any], run_id: str) -> dict[str, Any]:
    """POST `order` (validated parameters of `agents.create_crm_order`) to the CRM once (module
    docstring); what happened. Errors are the agents' (agents/errors.py): retryable or not."""
    url, secret = settings.CRM_ENDPOINT_URL, settings.CRM_WEBHOOK_SECRET
    if not url or not secret:
        missing = " and ".join(
            name
            for name, value in (("CRM_ENDPOINT_URL", url), ("CRM_WEBHOOK_SECRET", secret))
            if not value
        )
        raise PermanentError(
            "crm_not_configured", f"{missing} not set: the worker has nowhere to send orders"
        )
    key = crm_idempotency_key(agent, order)
    digest = _digest(order)
    try:
        sent = _claim(key, digest=digest, run_id=run_id)
    except (redis.exceptions.RedisError, OSError) as exc:
        # No record, no promise of one order: the Idempotency-Key alone is not relied upon.
        raise ExternalServiceError("redis", f"order {key} not claimed: {exc}") from exc
    if sent is not None:
        return {
            "order": order["order_id"],
            "idempotency_key": key,
            "created": False,
            "reason": f"sent already by run {sent.get('run') or '?'}",
            "status": sent.get("status"),
        }
    try:
        status = webhook_post(
            url=url,
            payload=crm_order_body(agent, order, key),
            timeout=settings.CRM_TIMEOUT,
            sign=lambda body: {HEADER: sign(secret, body)},
            headers={IDEMPOTENCY_HEADER: key},
        )
    except NotificationRejected as exc:
        _release(key, run_id)
        raise PermanentError("crm_rejected", str(exc)) from exc
    except NotificationError as exc:
        _release(key, run_id)
        raise ExternalServiceError("crm", str(exc)) from exc
    except BaseException:
        # Its soft time limit, mid-request: a retry or a redelivery sends it.
        _release(key, run_id)
        raise
    _record_sent(key, digest=digest, run_id=run_id, status=status)
    return {"order": order["order_id"], "idempotency_key": key, "created": True, "status": status}


def _claim(key: str, *, digest: str, run_id: str) -> dict[str, Any] | None:
    """The `sent` record when the order went out already; None once this run may send it."""
    client = get_redis()
    name = _record_key(key)
    mine = json.dumps({"state": "sending", "run": run_id, "digest": digest})
    if client.set(name, mine, nx=True, ex=SENDING_TTL):
        return None
    raw = client.get(name)
    record = _decoded(raw)
    if record is None:
        # Gone between the two calls (expired, or let go by a failed run): take it now.
        if client.set(name, mine, nx=True, ex=SENDING_TTL):
            return None
        raise RetryableError(f"order {key} is being sent by another run: tried again later")
    if record.get("digest") != digest:
        raise PermanentError(
            "order_changed",
            f"order {key} was sent with other contents: an order that changed needs a new order_id",
        )
    if record.get("state") == "sent":
        return record
    if record.get("run") == run_id:
        # This run's own claim, left by an earlier delivery of it that died: its turn again.
        client.set(name, mine, ex=SENDING_TTL)
        return None
    raise RetryableError(f"order {key} is being sent by run {record.get('run')}: tried again later")


def _record_sent(key: str, *, digest: str, run_id: str, status: int) -> None:
    record = {"state": "sent", "run": run_id, "digest": digest, "status": status, "at": time.time()}
    try:
        get_redis().set(
            _record_key(key), json.dumps(record), ex=settings.CRM_IDEMPOTENCY_DAYS * 86_400
        )
    except (redis.exceptions.RedisError, OSError) as exc:
        # The CRM has the order: failing the run would send it again. The `sending` record
        # expires, and a repeat is refused by the CRM through the Idempotency-Key.
        logger.warning("order %s sent, but not recorded as sent: %s", key, exc)


def _release(key: str, run_id: str) -> None:
    # Redis away: the record expires after SENDING_TTL.
    with contextlib.suppress(redis.exceptions.RedisError, OSError):
        get_redis().eval(_RELEASE, 1, _record_key(key), run_id)


def _decoded(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
