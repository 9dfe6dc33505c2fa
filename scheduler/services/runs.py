"""Writes of runs: validating a catalog task and its parameters, queueing it (once, on commit,
with its domain-object header), running one somebody asked for and retrying a stored result
(both audited), revoking or terminating a run (audited)."""

from __future__ import annotations

import ast
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from config.celery import app
from config.queues import QUEUES
from scheduler.catalog import (
    ParameterError,
    UnknownTaskError,
    load_catalog,
    outside_catalog_message,
)
from scheduler.core.json_input import MalformedJSON, read_json
from scheduler.core.masking import holds_mask, masked_text
from scheduler.live.events import event_record
from scheduler.models import AuditEntry, Source
from scheduler.protocol import (
    OBJECT_HEADER,
    PERIODIC_TASK_HEADER,
    EventType,
    RunState,
    object_header,
)
from scheduler.selectors import run_identity, task_known, task_status
from scheduler.services.audit import actor_label, audit_write
from scheduler.services.errors import ScheduleError, TaskNotFound, User
from scheduler.services.owners import header_owner, owner_of_params

# --- Validation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidatedTask:
    task: str
    params: dict[str, Any]
    queue: str


def params_from_json(text: str | None) -> Any:
    """Parameters written as JSON (CLI, admin); a ScheduleError naming `params` if malformed."""
    if text is None or not text.strip():
        return {}
    try:
        return read_json(text)
    except MalformedJSON as exc:
        raise ScheduleError.on("params", str(exc)) from exc


def task_validate(
    *, task: str, params: Any, queue: str | None = None, stored_in: str | None = None
) -> ValidatedTask:
    """The catalog entry exists, the parameters match it, the queue is one of ours.

    `stored_in`: the periodic task that already runs `task`, so that a task outside the
    catalog is refused as every interface refuses such a row (`outside_catalog_message`).
    """
    errors: dict[str, list[str]] = {}
    param_errors: dict[str, list[str]] = {}
    try:
        entry = load_catalog().get(task)
    except UnknownTaskError as exc:
        if stored_in is not None:
            raise ScheduleError.on(
                "task", outside_catalog_message(task, stored_in, "edited")
            ) from exc
        raise ScheduleError.on("task", str(exc)) from exc
    try:
        checked = entry.validate(params)
    except ParameterError as exc:
        errors["params"] = [str(exc)]
        param_errors = exc.errors
        checked = {}
    if queue and queue not in QUEUES:
        errors["queue"] = [f"unknown queue {queue!r} (queues: {', '.join(QUEUES)})"]
    if errors:
        raise ScheduleError(errors, param_errors=param_errors)
    return ValidatedTask(task=task, params=checked, queue=queue or entry.queue)


# Seconds a publish keeps trying to reach the broker before the caller gets the error (the
# API's 503): long enough for a Redis restart (fault 2: 3 s down), short enough that a caller
# cut off from Redis is answered, not left waiting (each try is bounded by the broker's socket
# timeouts: a silent partition costs 2 s a try, so Celery's retry count alone bounds nothing).
PUBLISH_BUDGET = 5.0


def publish_retry_policy(budget: float = PUBLISH_BUDGET) -> dict[str, Any]:
    """The publish retry policy of the settings, ended once `budget` seconds have passed: kombu
    calls the errback on each failed try, and an errback that raises ends the retries."""
    deadline = time.monotonic() + budget

    def give_up_past_the_budget(exc: BaseException, interval: float) -> None:
        if time.monotonic() + interval > deadline:
            raise exc

    return {**settings.CELERY_TASK_PUBLISH_RETRY_POLICY, "errback": give_up_past_the_budget}


def task_enqueue(
    *,
    task: str,
    params: Any = None,
    queue: str | None = None,
    periodic_task_name: str | None = None,
    countdown: float | None = None,
    owner: tuple[str, object] | None = None,
) -> str:
    """Queue catalog task `task` after the current transaction commits; returns its task id.

    The run carries the object header of the domain object it belongs to, as beat's runs do:
    `owner` (("tournament", 7)); else the periodic task's (a run of `periodic_task_name`); else
    the object its parameters name (services/owners.py).
    """
    checked = task_validate(task=task, params=params, queue=queue)
    task_id = str(uuid.uuid4())
    headers = _run_headers(checked, periodic_task_name=periodic_task_name, owner=owner)

    def send() -> None:
        if not settings.CELERY_ENABLED:
            # No broker in this deployment: the caller runs the task itself (MIRT's dispatcher).
            app.tasks[checked.task].apply(kwargs=checked.params, task_id=task_id, headers=headers)
            return

        policy = publish_retry_policy()

        def publish(connection: Any = None) -> None:
            app.send_task(
                checked.task,
                kwargs=checked.params,
                queue=checked.queue,
                task_id=task_id,
                headers=headers,
                kwargsrepr=json.dumps(checked.params),
                countdown=countdown,
                connection=connection,
                retry_policy=policy,
            )

        try:
            try:
                publish()
            except AttributeError:
                # kombu's pooled producer whose channel was closed under it (Redis went away
                # and came back, or is still away): once more on a connection of its own, which
                # either publishes or raises the broker's own error (the API's 503).
                with app.connection_for_write() as connection:
                    publish(connection)
        except Exception as exc:
            # The transaction that asked for this run has committed (its audit entry too): the
            # event log must say the run never left, and the caller gets the error.
            event_record(
                type="task.failed",
                task_id=task_id,
                task_name=checked.task,
                periodic_task_name=periodic_task_name or "",
                state="FAILURE",
                message=f"could not be queued: {type(exc).__name__}: {exc}",
            )
            raise

    transaction.on_commit(send)
    return task_id


def _run_headers(
    checked: ValidatedTask, *, periodic_task_name: str | None, owner: tuple[str, object] | None
) -> dict[str, str] | None:
    headers: dict[str, str] = {}
    if periodic_task_name:
        headers[PERIODIC_TASK_HEADER] = periodic_task_name
        if owner is None:
            stored = (
                PeriodicTask.objects.filter(name=periodic_task_name)
                .values_list("headers", flat=True)
                .first()
            )
            if (value := header_owner(stored)) is not None:
                headers[OBJECT_HEADER] = value
    if owner is None and OBJECT_HEADER not in headers:
        owner = owner_of_params(checked.params)
    if owner is not None:
        headers.update(object_header(*owner))
    return headers or None


def stored_kwargs(result: TaskResult) -> dict[str, Any]:
    """The keyword arguments a stored result ran with.

    The results backend stores the message's `kwargsrepr`: JSON for tasks we queue (we pass it),
    a Python literal for tasks queued by others (beat); Celery cuts it at 1024 characters.
    Secret values in it are masked (config/celery.py).
    """
    raw = result.task_kwargs or ""
    try:
        text = json.loads(raw) if raw else "{}"
    except json.JSONDecodeError:
        text = raw
    if not isinstance(text, str):
        text = json.dumps(text)
    for read in (json.loads, ast.literal_eval):
        try:
            value = read(text)
        except (ValueError, SyntaxError, RecursionError, MemoryError):
            continue
        if isinstance(value, dict):
            return value
    raise ScheduleError.on(
        "params",
        f"the stored arguments of task {result.task_id} cannot be read back: "
        f"{masked_text(raw[:80])}",
    )


@transaction.atomic
def task_run(
    *,
    task: str,
    params: Any = None,
    queue: str | None = None,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
) -> str:
    """Queue catalog task `task` now, as somebody asked (an ad-hoc run, outside any schedule),
    audited under the task's name; its task id. ScheduleError naming `task`, `params` or
    `queue`, and nothing queued, on bad input."""
    checked = task_validate(task=task, params=params, queue=queue)
    task_id = task_enqueue(task=checked.task, params=checked.params, queue=checked.queue)
    _run_record(
        checked.task,
        AuditEntry.Action.TASK_RUN,
        {
            "task_id": [None, task_id],
            "params": [None, checked.params],
            "queue": [None, checked.queue],
        },
        actor=actor,
        actor_name=actor_name,
        source=source,
    )
    return task_id


def _run_record(
    name: str,
    action: AuditEntry.Action,
    changes: dict[str, Any],
    *,
    actor: User,
    actor_name: str,
    source: str,
) -> None:
    """The audit entry of a run somebody asked for: under its periodic task's name (linked
    while it exists), or its task's name for an ad-hoc run."""
    audit_write(
        PeriodicTask.objects.filter(name=name).first(),
        name=name[:200],
        action=action,
        actor=actor,
        actor_name=actor_name,
        source=source,
        changes=changes,
    )


@transaction.atomic
def task_result_retry(
    *,
    result: TaskResult,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
) -> str:
    """Queue the task of a stored result again with the same arguments (catalog tasks only),
    audited; the new task id."""
    params = stored_kwargs(result)
    if holds_mask(params):
        # Secrets are stored masked (scheduler/core/masking.py): running with the mask would be
        # wrong.
        raise ScheduleError.on(
            "params",
            f"the stored arguments of task {result.task_id} hold masked secrets: run the task "
            "again with its parameters instead",
        )
    periodic_task_name: str | None = result.periodic_task_name  # type: ignore[attr-defined]
    task_id = task_enqueue(
        task=result.task_name or "", params=params, periodic_task_name=periodic_task_name
    )
    _run_record(
        periodic_task_name or result.task_name or "",
        AuditEntry.Action.RETRIED,
        {"task_id": [result.task_id, task_id]},
        actor=actor,
        actor_name=actor_name,
        source=source,
    )
    return task_id


@dataclass(frozen=True)
class RevokeOutcome:
    """What `task_revoke` asked of the workers, for the interfaces to say."""

    task_id: str
    task_name: str
    periodic_task_name: str
    state: str  # the run's state when asked (PENDING: queued, STARTED: running, ...)
    terminate: bool

    @property
    def status(self) -> str:
        return "terminate requested" if self.terminate else "revoke requested"


def task_revoke(
    *,
    task_id: str,
    terminate: bool = False,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
) -> RevokeOutcome:
    """Ask every worker to drop run `task_id` if it has not started, and to stop it (SIGTERM)
    if it runs when `terminate`; audited (REVOKED or TERMINATED, under the run's periodic task
    or else its task name), with a `task.revoked` event so that the live pages show it at once.

    TaskNotFound when nothing is known of `task_id` (no stored result, no event: a revoke
    would only leave workers holding an id nobody queued). A ScheduleError naming `task_id`
    when the run has finished already, or `terminate` when it runs and `terminate` was not
    asked (a revoke does not stop a running run: it would go on while the page said revoked).
    Nothing is recorded when the broker cannot be reached. Workers keep revoked ids in memory:
    a revoke reaches a queued run if a worker receives the run before its restart.
    """
    if not task_known(task_id):
        raise TaskNotFound(task_id)

    status = task_status(task_id)
    if status.finished:
        raise ScheduleError.on(
            "task_id", f"task {task_id} has finished already ({status.state}): nothing to revoke"
        )
    if status.state == RunState.STARTED and not terminate:
        raise ScheduleError.on(
            "terminate",
            f"task {task_id} is running: a revoke only drops a run that has not started; "
            "terminate it to stop it",
        )
    run = run_identity(task_id)
    # First: when the broker is down nothing is audited as done.
    app.control.revoke(task_id, terminate=terminate, signal="SIGTERM")
    action = AuditEntry.Action.TERMINATED if terminate else AuditEntry.Action.REVOKED
    who = actor_label(actor, actor_name)
    with transaction.atomic():
        audit_write(
            PeriodicTask.objects.filter(name=run.periodic_task_name).first()
            if run.periodic_task_name
            else None,
            name=run.name,
            action=action,
            actor=actor,
            actor_name=actor_name,
            source=source,
            changes={"task_id": [None, task_id], "state": [status.state, RunState.REVOKED]},
        )
        # REVOKED at once: a queued run is dropped by the worker that receives it (maybe much
        # later, from a paused queue), a terminated one as soon as its worker hears of it; each
        # worker's own `task.revoked` follows. Should the run end otherwise first, its later
        # event wins on every page (by time).
        event_record(
            type=EventType.TASK_REVOKED,
            task_id=task_id,
            task_name=run.task_name,
            periodic_task_name=run.periodic_task_name,
            state=RunState.REVOKED,
            message=f"{'terminated' if terminate else 'revoked'} by {who} ({source})",
            payload={"requested_by": who, "source": source, "terminate": terminate},
            object_type=run.object_type,
            object_id=run.object_id,
        )
    return RevokeOutcome(
        task_id=task_id,
        task_name=run.task_name,
        periodic_task_name=run.periodic_task_name,
        state=status.state,
        terminate=terminate,
    )
