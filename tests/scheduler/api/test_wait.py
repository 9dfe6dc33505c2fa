"""`GET /api/tasks/{id}/?wait=S` through the real ASGI app, the real channel layer and Redis.

Requests go through `config.asgi.application` (as daphne runs it), not Django's AsyncClient:
only the ASGI handler gives each request its own thread for sync code, as in production.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import HttpCommunicator
from rest_framework.authtoken.models import Token

from config.asgi import application
from scheduler import selectors
from scheduler.api import waiting
from scheduler.live.events import event_record
from scheduler.live.publisher import task_group
from tests.factories import TaskResultFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

TASK_ID = "0b5d7c3e-2f41-4a8e-9c6d-7e8f9a0b1c2d"


@pytest.fixture
def token() -> str:
    user = UserFactory.create(is_staff=True, is_superuser=True)
    return str(Token.objects.create(user=user).key)


class Communicator(HttpCommunicator):
    """channels' HttpCommunicator, for a streamed answer too: the ASGI spec lets the last
    `http.response.body` message leave `body` out, which HttpCommunicator cannot read."""

    async def get_response(self, timeout: float = 1) -> dict[str, Any]:
        await self.send_input({"type": "http.request", "body": self.body})
        response = await self.receive_output(timeout)
        assert response["type"] == "http.response.start"
        response["body"] = b""
        while True:
            chunk = await self.receive_output(timeout)
            assert chunk["type"] == "http.response.body"
            response["body"] += chunk.get("body", b"")
            if not chunk.get("more_body", False):
                break
        await self.wait(timeout)
        return response


def _headers(token: str | None, content: bytes) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"host", b"testserver"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
    ]
    if token:
        headers.append((b"authorization", f"Token {token}".encode()))
    return headers


async def _request(
    method: str, path: str, *, token: str | None, body: Any = None, timeout: float = 20
) -> tuple[int, Any, float]:
    content = json.dumps(body).encode() if body is not None else b""
    communicator = Communicator(
        application, method, path, body=content, headers=_headers(token, content)
    )
    started = time.monotonic()
    response = await communicator.get_response(timeout=timeout)
    elapsed = time.monotonic() - started
    sent = {name.decode().lower(): value.decode() for name, value in response["headers"]}
    assert sent["content-type"].startswith("application/json"), sent
    return response["status"], json.loads(response["body"]), elapsed


def _finish(task_id: str) -> None:
    """What a worker does when a task succeeds: store the result, then record the event."""
    TaskResultFactory.create(task_id=task_id, status="SUCCESS", result='{"pong": true}')
    event_record(
        type="task.succeeded", task_id=task_id, task_name="scheduler.ping", state="SUCCESS"
    )


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    real = selectors.task_status

    def counted(task_id: str) -> selectors.TaskStatus:
        reads.append(task_id)
        return real(task_id)

    monkeypatch.setattr(selectors, "task_status", counted)
    monkeypatch.setattr(waiting, "task_status", counted)
    return reads


async def test_it_answers_pending_when_the_wait_runs_out(token):
    status, body, elapsed = await _request("GET", f"/api/tasks/{TASK_ID}/?wait=1", token=token)

    assert status == 200
    assert body["state"] == "PENDING"
    assert 0.95 <= elapsed < 2.5


async def test_it_answers_as_soon_as_the_finished_event_arrives_without_polling(token, monkeypatch):
    reads = _count_reads(monkeypatch)
    waiting_request = asyncio.create_task(
        _request("GET", f"/api/tasks/{TASK_ID}/?wait=10", token=token)
    )
    await asyncio.sleep(1.0)  # a poller would have read the state several times by now
    assert not waiting_request.done()
    reads_while_waiting = len(reads)

    await sync_to_async(_finish, thread_sensitive=False)(TASK_ID)
    finished = time.monotonic()
    status, body, elapsed = await waiting_request
    latency = time.monotonic() - finished

    assert status == 200
    assert body["state"] == "SUCCESS"
    assert body["result"] == {"pong": True}
    assert latency < 0.5, f"answered {latency:.3f} s after the event"
    assert elapsed < 5
    # The view's read and one more once in the group; then one after the event woke it.
    assert reads_while_waiting == 2
    assert len(reads) == 3


async def test_it_sends_the_status_line_at_once_and_the_body_when_the_task_finishes(token):
    # The middleware's response phase runs while the task runs, not after it has finished.
    communicator = Communicator(
        application, "GET", f"/api/tasks/{TASK_ID}/?wait=10", headers=_headers(token, b"")
    )
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(timeout=5)
    assert start["type"] == "http.response.start"
    assert start["status"] == 200
    assert await communicator.receive_nothing(timeout=0.5)

    await sync_to_async(_finish, thread_sensitive=False)(TASK_ID)
    body = b""
    while True:
        chunk = await communicator.receive_output(timeout=5)
        body += chunk.get("body", b"")
        if not chunk.get("more_body", False):
            break

    assert json.loads(body)["state"] == "SUCCESS"
    await communicator.wait(timeout=5)


async def test_a_client_that_leaves_takes_its_membership_with_it(token):
    communicator = Communicator(
        application, "GET", f"/api/tasks/{TASK_ID}/?wait=10", headers=_headers(token, b"")
    )
    await communicator.send_input({"type": "http.request", "body": b""})
    assert (await communicator.receive_output(timeout=5))["type"] == "http.response.start"

    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(timeout=5)

    assert await _members(TASK_ID) == 0


async def _members(task_id: str) -> int:
    layer: Any = get_channel_layer()
    group_key = layer._group_key(task_group(task_id))
    async with layer.connection(layer.consistent_hash(task_group(task_id))) as connection:
        return int(await connection.zcard(group_key))


async def test_it_leaves_the_task_group_once_it_has_answered(token):
    status, _, _ = await _request("GET", f"/api/tasks/{TASK_ID}/?wait=0.2", token=token)

    layer: Any = get_channel_layer()
    group_key = layer._group_key(task_group(TASK_ID))
    async with layer.connection(layer.consistent_hash(task_group(TASK_ID))) as connection:
        members = await connection.zcard(group_key)
    assert status == 200
    assert members == 0


async def test_it_serves_other_requests_while_one_waits(token):
    waiting_request = asyncio.create_task(
        _request("GET", f"/api/tasks/{TASK_ID}/?wait=3", token=token)
    )
    await asyncio.sleep(0.3)

    status, body, elapsed = await _request("GET", "/api/catalog/", token=token)

    assert status == 200
    assert body
    assert elapsed < 1.0, f"the catalog took {elapsed:.2f} s while another request waited"
    assert not waiting_request.done()
    assert (await waiting_request)[1]["state"] == "PENDING"


async def test_it_checks_who_asks_before_it_waits():
    status, body, elapsed = await _request("GET", f"/api/tasks/{TASK_ID}/?wait=5", token=None)

    assert status == 401
    assert "credentials" in body["detail"]
    assert elapsed < 1.0


async def test_it_answers_503_when_the_channel_layer_is_down(token, monkeypatch):
    async def unreachable(*args: Any, **kwargs: Any) -> None:
        raise ConnectionRefusedError("Redis is down")

    monkeypatch.setattr(type(get_channel_layer()), "group_add", unreachable)

    status, body, _ = await _request("GET", f"/api/tasks/{TASK_ID}/?wait=5", token=token)

    assert status == 503
    assert "channel layer" in body["detail"]


# --- With a real worker --------------------------------------------------------------------------


@pytest.mark.integration
async def test_it_waits_for_a_task_run_by_a_real_worker(celery_worker, token):
    status, queued, _ = await _request(
        "POST",
        "/api/tasks/",
        token=token,
        body={"task": "scheduler.sleep", "params": {"seconds": 0.5}},
    )
    assert status == 202, queued

    status, body, elapsed = await _request(
        "GET", f"/api/tasks/{queued['task_id']}/?wait=10", token=token
    )

    assert status == 200
    assert body["state"] == "SUCCESS", body
    assert body["result"]["slept"] >= 0.5
    assert body["worker"] == celery_worker.hostname
    assert body["date_started"] is not None
    assert elapsed < 5, f"took {elapsed:.2f} s of the 10 s wait"


@pytest.mark.integration
async def test_it_revokes_a_task_still_in_the_queue(celery_worker, token):
    # Both worker processes busy (prefetch 1, late acks): the third task waits in Redis.
    for _ in range(2):
        status, _, _ = await _request(
            "POST",
            "/api/tasks/",
            token=token,
            body={"task": "scheduler.sleep", "params": {"seconds": 1.0}},
        )
        assert status == 202
    status, queued, _ = await _request(
        "POST",
        "/api/tasks/",
        token=token,
        body={"task": "scheduler.sleep", "params": {"seconds": 0.1}},
    )
    assert status == 202

    status, revoked, _ = await _request(
        "POST", f"/api/tasks/{queued['task_id']}/revoke/", token=token, body={}
    )
    status_after, body, _ = await _request(
        "GET", f"/api/tasks/{queued['task_id']}/?wait=15", token=token
    )

    assert status == 202, revoked
    assert status_after == 200
    assert body["state"] == "REVOKED", body
