"""The `/ws/events/` consumer, over the real channel layer (Redis) and the real ASGI app."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async as sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission
from django.test import Client

from config.asgi import application
from scheduler.live import publish
from scheduler.live.consumers import EventsConsumer
from scheduler.live.events import event_record
from scheduler.protocol import BackfillMessage, EventMessage, EventObject, EventPayload
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

TIMEOUT = 5


def _user(*, staff: bool = True, permitted: bool = True) -> Any:
    user = UserFactory.create(is_staff=staff)
    if permitted:
        user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    return user


async def _connect(user: Any, query: str = "") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(EventsConsumer.as_asgi(), f"/ws/events/?{query}")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    return communicator


async def _record(**fields: Any) -> None:
    await sync_to_async(event_record)(**fields)


async def _next_event(communicator: WebsocketCommunicator) -> dict[str, Any]:
    message = await communicator.receive_json_from(timeout=TIMEOUT)
    assert message["kind"] == "event", message
    event: dict[str, Any] = message["event"]
    return event


@pytest.mark.parametrize(
    ("make_user", "code"),
    [
        (lambda: None, 4401),
        (lambda: _user(staff=False), 4403),
        (lambda: _user(staff=True, permitted=False), 4403),
    ],
)
async def test_it_closes_with_an_application_code_for_who_may_not_watch(make_user, code):
    from django.contrib.auth.models import AnonymousUser

    user = await sync_to_async(make_user)() or AnonymousUser()
    communicator = await _connect(user)

    closed = await communicator.receive_output(timeout=TIMEOUT)

    assert closed == {"type": "websocket.close", "code": code}


async def test_it_backfills_then_streams_events_live():
    await _record(
        type="task.succeeded", task_id="old-1", task_name="scheduler.ping", state="SUCCESS"
    )
    user = await sync_to_async(_user)()

    communicator = await _connect(user)
    backfill = await communicator.receive_json_from(timeout=TIMEOUT)
    assert backfill["kind"] == "backfill"
    assert [event["task_id"] for event in backfill["events"]] == ["old-1"]
    # Every message and payload has the keys the protocol's types name, no more.
    assert set(backfill) == set(BackfillMessage.__annotations__)
    assert set(backfill["events"][0]) == set(EventPayload.__annotations__)

    await _record(
        type="task.started",
        task_id="new-1",
        task_name="scheduler.ping",
        state="STARTED",
        worker="w1@host",
        object_type="tournament",
        object_id=7,
    )
    message = await communicator.receive_json_from(timeout=TIMEOUT)
    assert set(message) == set(EventMessage.__annotations__)
    event = message["event"]
    assert set(event) == set(EventPayload.__annotations__)
    assert event["object"] == {"type": "tournament", "id": "7"}
    assert set(event["object"]) == set(EventObject.__annotations__)

    assert event["task_id"] == "new-1"
    assert event["type"] == "task.started"
    assert event["worker"] == "w1@host"
    assert event["at"]
    await communicator.disconnect()


async def test_it_sends_only_the_events_a_filter_asks_for():
    user = await sync_to_async(_user)()
    communicator = await _connect(user, "task=scheduler.sleep&state=failure,success&backfill=0")
    assert (await communicator.receive_json_from(timeout=TIMEOUT))["events"] == []

    await _record(type="task.started", task_id="a", task_name="scheduler.sleep", state="STARTED")
    await _record(type="task.failed", task_id="b", task_name="scheduler.ping", state="FAILURE")
    await _record(type="task.failed", task_id="c", task_name="scheduler.sleep", state="FAILURE")

    assert (await _next_event(communicator))["task_id"] == "c"
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_it_follows_one_domain_object_in_its_own_group():
    user = await sync_to_async(_user)()
    communicator = await _connect(user, "object=tournament:7&backfill=0")
    await communicator.receive_json_from(timeout=TIMEOUT)

    await _record(type="task.started", task_id="t6", object_type="tournament", object_id=6)
    await _record(type="task.started", task_id="t7", object_type="tournament", object_id=7)

    event = await _next_event(communicator)
    assert event["task_id"] == "t7"
    assert event["object"] == {"type": "tournament", "id": "7"}
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_it_changes_filters_and_answers_pings_and_bad_messages():
    user = await sync_to_async(_user)()
    communicator = await _connect(user, "backfill=0")
    await communicator.receive_json_from(timeout=TIMEOUT)

    await communicator.send_json_to({"action": "ping"})
    assert await communicator.receive_json_from(timeout=TIMEOUT) == {"kind": "pong"}
    await communicator.send_to(text_data="{not json")
    assert (await communicator.receive_json_from(timeout=TIMEOUT))["kind"] == "error"
    await communicator.send_json_to({"action": "filter", "backfill": "lots"})
    error = await communicator.receive_json_from(timeout=TIMEOUT)
    assert error == {
        "kind": "error",
        "field": "backfill",
        "error": "backfill must be a whole number, not 'lots'",
    }

    await communicator.send_json_to({"action": "filter", "state": "FAILURE", "backfill": 0})
    assert (await communicator.receive_json_from(timeout=TIMEOUT))["kind"] == "backfill"
    await _record(type="task.started", task_id="s", state="STARTED")
    await _record(type="task.failed", task_id="f", state="FAILURE")
    assert (await _next_event(communicator))["task_id"] == "f"
    await communicator.disconnect()


async def test_it_refuses_a_malformed_filter_in_the_url():
    user = await sync_to_async(_user)()
    communicator = await _connect(user, "object=tournament")

    error = await communicator.receive_json_from(timeout=TIMEOUT)
    closed = await communicator.receive_output(timeout=TIMEOUT)

    assert error["kind"] == "error"
    assert "type:id" in error["error"]
    assert closed == {"type": "websocket.close", "code": 4400}


BAD_FILTERS = [
    pytest.param({"state": "NOPE"}, "state", "NOPE", id="unknown state"),
    pytest.param({"state": "FAILURE,, nope"}, "state", "nope", id="one unknown state of several"),
    pytest.param({"task": "not a task name"}, "task", "not a task name", id="malformed task"),
    pytest.param({"task": "x" * 256}, "task", "255", id="task name too long"),
    pytest.param({"object": "tournament"}, "object", "type:id", id="object without id"),
    pytest.param({"object": "tour nament:7"}, "object", "tour nament", id="malformed object"),
    pytest.param({"type": "task failed"}, "type", "task failed", id="malformed type pattern"),
    pytest.param({"type": "task.*,x;y"}, "type", "x;y", id="one bad pattern of several"),
    pytest.param({"backfill": "lots"}, "backfill", "lots", id="backfill not a number"),
    pytest.param({"backfill": "501"}, "backfill", "500", id="backfill too large"),
]


@pytest.mark.parametrize(("raw", "field", "named"), BAD_FILTERS)
async def test_every_filter_of_the_url_is_validated_alike(raw, field, named):
    from urllib.parse import urlencode

    user = await sync_to_async(_user)()
    communicator = await _connect(user, urlencode(raw))

    error = await communicator.receive_json_from(timeout=TIMEOUT)
    closed = await communicator.receive_output(timeout=TIMEOUT)

    assert error["kind"] == "error"
    assert error["field"] == field
    assert named in error["error"]
    assert closed == {"type": "websocket.close", "code": 4400}


@pytest.mark.parametrize(("raw", "field", "named"), BAD_FILTERS)
async def test_every_filter_of_a_message_is_validated_alike_and_keeps_the_last_good_one(
    raw, field, named
):
    user = await sync_to_async(_user)()
    communicator = await _connect(user, "state=FAILURE&backfill=0")
    await communicator.receive_json_from(timeout=TIMEOUT)

    await communicator.send_json_to({"action": "filter", **raw})
    error = await communicator.receive_json_from(timeout=TIMEOUT)

    assert error["kind"] == "error"
    assert error["field"] == field
    assert named in error["error"]
    # Still open, still on the filter it had.
    await _record(type="task.started", task_id="s", state="STARTED")
    await _record(type="task.failed", task_id="f", state="FAILURE")
    assert (await _next_event(communicator))["task_id"] == "f"
    await communicator.disconnect()


async def test_a_filter_message_of_the_wrong_type_names_its_field():
    user = await sync_to_async(_user)()
    communicator = await _connect(user, "backfill=0")
    await communicator.receive_json_from(timeout=TIMEOUT)

    await communicator.send_json_to({"action": "filter", "state": ["FAILURE"]})

    assert await communicator.receive_json_from(timeout=TIMEOUT) == {
        "kind": "error",
        "field": "state",
        "error": "state must be a string, not ['FAILURE']",
    }
    await communicator.disconnect()


async def test_states_of_events_that_are_not_results_are_valid_filters():
    user = await sync_to_async(_user)()
    communicator = await _connect(user, "state=missed,PUBLISHED,skipped,pending&backfill=0")
    assert (await communicator.receive_json_from(timeout=TIMEOUT))["kind"] == "backfill"

    await _record(type="task.missed", task_id="m", periodic_task_name="nightly", state="MISSED")

    assert (await _next_event(communicator))["task_id"] == "m"
    await communicator.disconnect()


async def test_it_sends_the_event_types_its_patterns_and_aliases_name():
    user = await sync_to_async(_user)()
    communicator = await _connect(user, "type=task.failed,incident.*,task.completed&backfill=0")
    assert (await communicator.receive_json_from(timeout=TIMEOUT))["events"] == []

    for kind in ("task.started", "task.failed", "schedule.created", "incident.opened"):
        await _record(type=kind, task_id=kind)
    await _record(type="task.succeeded", task_id="done", state="SUCCESS")
    await sync_to_async(publish)("report.published", {"rows": 1})

    got = [(await _next_event(communicator))["task_id"] for _ in range(3)]
    assert got == ["task.failed", "incident.opened", "done"]
    assert await communicator.receive_nothing(timeout=0.3)

    # A filter message takes patterns too: now only custom events.
    await communicator.send_json_to({"action": "filter", "type": "report.*", "backfill": 1})
    backfill = await communicator.receive_json_from(timeout=TIMEOUT)
    assert [event["type"] for event in backfill["events"]] == ["report.published"]
    await _record(type="task.failed", task_id="ignored")
    await sync_to_async(publish)("report.retracted", source="reports", priority="low")
    event = await _next_event(communicator)
    assert event["type"] == "report.retracted"
    assert event["data"] == {"data": None, "source": "reports", "priority": "low"}
    await communicator.disconnect()


async def test_its_backfill_keeps_the_types_its_patterns_name():
    for kind in ("task.succeeded", "session.message", "task.failed", "schedule.updated"):
        await _record(type=kind, task_id=kind)
    await sync_to_async(publish)("report.published", {"rows": 1})
    await sync_to_async(publish)("report.retracted")
    user = await sync_to_async(_user)()

    communicator = await _connect(user, "type=task.completed,report.pub*,task.updated")
    backfill = await communicator.receive_json_from(timeout=TIMEOUT)

    assert [event["type"] for event in backfill["events"]] == [
        "task.succeeded",
        "schedule.updated",
        "report.published",
    ]
    await communicator.disconnect()


def _session_headers(user: Any) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"].value
    return [
        (b"cookie", f"sessionid={cookie}".encode()),
        (b"origin", b"http://localhost"),
        (b"host", b"localhost"),
    ]


async def test_it_authenticates_through_the_session_of_the_real_asgi_app():
    superuser = await sync_to_async(UserFactory.create)(is_superuser=True)
    headers = await sync_to_async(_session_headers)(superuser)
    communicator = WebsocketCommunicator(application, "/ws/events/?backfill=0", headers=headers)

    connected, _ = await communicator.connect(timeout=TIMEOUT)

    assert connected
    assert (await communicator.receive_json_from(timeout=TIMEOUT))["kind"] == "backfill"
    await communicator.disconnect()


async def test_the_real_asgi_app_refuses_a_foreign_origin():
    superuser = await sync_to_async(UserFactory.create)(is_superuser=True)
    headers = [
        (name, b"http://evil.example" if name == b"origin" else value)
        for name, value in await sync_to_async(_session_headers)(superuser)
    ]
    communicator = WebsocketCommunicator(application, "/ws/events/", headers=headers)

    connected, _ = await communicator.connect(timeout=TIMEOUT)

    assert not connected
