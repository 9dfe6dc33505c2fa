"""The one way a message reaches an agent: queued for a worker, or answered in the caller.

With CELERY_ENABLED (the default) the message goes to `agents.process_message` on the `llm`
queue once the caller's transaction commits, and the caller gets `{queued, task_id, trace_id}`
at once; with CELERY_ENABLED=false (no broker: scripts, small deployments) the same services run
here and the caller gets the reply. Both store the message and its answer once per source
message (`source` + `message_id`).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import transaction

from agents import services
from agents.models import Message, Session
from agents.tasks import process_message
from scheduler.protocol import object_header


def dispatch_message(
    *,
    session: Session,
    text: str,
    source: str = "",
    message_id: str = "",
    trace_id: str = "",
) -> dict[str, Any]:
    """Hand `text` to the session's agent (module docstring); bad input raises AgentInputError."""
    text = text.strip()
    errors: dict[str, str] = {}
    if not text:
        errors["text"] = "a message needs some text"
    elif len(text) > settings.AGENT_MESSAGE_MAX_LENGTH:
        errors["text"] = f"at most {settings.AGENT_MESSAGE_MAX_LENGTH} characters"
    if session.status != Session.Status.OPEN:
        errors["session"] = f"session {session.pk} is closed"
    if errors:
        raise services.AgentInputError(errors)
    # Sources number their messages per conversation (Telegram does): the key names the
    # session too, or message 7 of one chat would pass for message 7 of another.
    key = f"{source or session.channel}:{session.pk}:{message_id}" if message_id else ""
    trace_id = trace_id or uuid.uuid4().hex
    kwargs = {
        "session_id": session.pk,
        "text": text,
        "idempotency_key": key,
        "trace_id": trace_id,
    }

    if not settings.CELERY_ENABLED:
        # The worker's own code, here: stored, answered, delivered, recorded in history. An
        # agent error is raised to the caller (no retries in the caller).
        outcome = process_message.apply(kwargs=kwargs).get()
        return {
            "queued": False,
            "task_id": None,
            "trace_id": trace_id,
            "duplicate": outcome["duplicate"],
            "message": services.message_payload(Message.objects.get(pk=outcome["message"])),
            "reply": services.message_payload(Message.objects.get(pk=outcome["reply"])),
        }

    task_id = str(uuid.uuid4())
    # After commit: a worker must find the session the caller may just have created.
    transaction.on_commit(
        lambda: process_message.apply_async(
            kwargs=kwargs, task_id=task_id, headers=object_header("session", session.pk)
        )
    )
    return {"queued": True, "task_id": task_id, "trace_id": trace_id}
