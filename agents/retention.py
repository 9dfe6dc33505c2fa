"""How long agent conversations are kept (scheduler/services/retention.py runs the cleanup).

Messages are the users' own conversations: AGENT_MESSAGE_RETENTION_DAYS defaults to 0, kept
forever, and a deployment that wants them gone sets it. Deleting a message sets `reply_to` of
the reply that answered it to NULL (SET_NULL); nothing else points at a message.
"""

from __future__ import annotations

from agents.models import Message
from scheduler.services import RetentionPolicy, retention_register

retention_register(
    RetentionPolicy(
        label="agent messages",
        model=Message,
        field="created_at",  # indexed (db_index)
        setting="AGENT_MESSAGE_RETENTION_DAYS",
    )
)
