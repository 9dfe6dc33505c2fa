"""A run that fails on a real worker is kept as a dead letter, and requeued through the catalog
runs there again under a new id."""

from __future__ import annotations

import pytest

from scheduler.models import DeadLetter, Source, TaskEvent
from scheduler.services import dead_letter_requeue, task_enqueue
from tests.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# A message for a session that does not exist: agents.process_message fails at once, no retry.
UNKNOWN_SESSION = {"session_id": 999_999, "text": "hello"}


def _letter_of(task_id: str) -> DeadLetter:
    wait_for(
        lambda: DeadLetter.objects.filter(task_id=task_id).exists(),
        timeout=30,
        what=f"the dead letter of {task_id}",
    )
    return DeadLetter.objects.get(task_id=task_id)


def test_a_run_failing_on_a_real_worker_is_kept_and_requeued(celery_worker):
    task_id = task_enqueue(task="agents.process_message", params=UNKNOWN_SESSION)

    letter = _letter_of(task_id)
    assert letter.task_name == "agents.process_message"
    assert letter.kwargs == {**UNKNOWN_SESSION, "idempotency_key": "", "trace_id": ""}
    assert letter.queue == "llm"
    assert letter.attempts == 1
    assert letter.error.startswith("PermanentError: ")
    assert "no session 999999" in letter.error
    wait_for(
        lambda: TaskEvent.objects.filter(type="task.dead_letter", task_id=task_id).exists(),
        timeout=10,
        what="the dead letter's event",
    )

    new_id = dead_letter_requeue(dead_letter_id=letter.pk, source=Source.CLI)

    letter.refresh_from_db()
    assert (letter.status, letter.requeued_as) == (DeadLetter.Status.REQUEUED, new_id)
    # It fails again on the worker: a letter of its own, the first one left as it was.
    assert _letter_of(new_id).status == DeadLetter.Status.OPEN
    assert DeadLetter.objects.get(task_id=task_id).status == DeadLetter.Status.REQUEUED
