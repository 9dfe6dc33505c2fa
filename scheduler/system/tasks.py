"""The built-in system tasks of the catalog. Each body calls one function of a named module."""

from __future__ import annotations

import json
import logging
import time
from typing import Annotated, Any, cast

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.utils import timezone
from pydantic import AfterValidator, Field, HttpUrl, field_validator, model_validator
from pydantic_core import PydanticCustomError

from config.queues import QUEUES, queue_for
from scheduler.catalog import Params, catalog_task
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.observability.health import full_health_report
from scheduler.protocol import FLAKY_TURNS_KEY
from scheduler.schedules.policies import OverlapPolicy
from scheduler.services.backfills import backfill_as_dict, backfill_publish
from scheduler.services.retention import MAX_BATCH_SIZE, retention_cleanup
from scheduler.system.alerting import notification_deliver
from scheduler.system.allowed_commands import (
    MAX_TIMEOUT,
    CommandFailed,
    CommandNotAllowed,
    allowed_argv,
    allowed_commands,
    command_run,
)
from scheduler.system.backups import database_backup
from scheduler.system.log_files import log_files_prune
from scheduler.system.notifications import NotificationError, notification_send

logger = logging.getLogger(__name__)


@catalog_task(
    name="scheduler.ping", description="Answer pong: the smallest round trip through a worker."
)
def ping() -> dict[str, Any]:
    return {"pong": True, "timestamp": timezone.now().isoformat()}


class SleepParams(Params):
    seconds: float = Field(1.0, ge=0, le=8, description="How long to sleep (under the 10 s limit).")


@catalog_task(
    name="scheduler.sleep",
    description="Sleep for N seconds: try out overlap policies, time limits and worker capacity.",
    params=SleepParams,
)
def sleep(seconds: float = 1.0) -> dict[str, Any]:
    started = time.monotonic()
    time.sleep(seconds)
    return {"slept": round(time.monotonic() - started, 3)}


class UnhealthyError(RuntimeError):
    """The system is not healthy: raised so that the run is a FAILURE that history, metrics and
    alerts see. One argument (Celery stores exceptions by their args): each failing check with
    its detail, then the whole report as JSON."""


@catalog_task(
    name="scheduler.health_check",
    description="Check the database, Redis, workers and beat; the result is the report, a "
    "failure naming the failing checks when one fails.",
)
def health_check() -> dict[str, Any]:
    report = full_health_report()
    if not report.ok:
        failing = "; ".join(
            f"{name}: {check.detail}" for name, check in report.checks.items() if not check.ok
        )
        logger.warning("health check: unhealthy (%s)", failing)
        raise UnhealthyError(f"unhealthy: {failing}\n{json.dumps(report.as_dict(), default=str)}")
    return report.as_dict()


class LogCleanupParams(Params):
    days: int | None = Field(
        None, ge=0, le=36_500, description="Keep this many days (default: LOG_RETENTION_DAYS)."
    )


@catalog_task(
    name="scheduler.cleanup_logs",
    description="Delete the log files in LOG_DIR not written for LOG_RETENTION_DAYS days.",
    params=LogCleanupParams,
    overlap=OverlapPolicy.SKIP,
)
def cleanup_logs(days: int | None = None) -> dict[str, Any]:
    return log_files_prune(days=days)


class BackupParams(Params):
    keep: int | None = Field(
        None, ge=1, le=1000, description="Backups to keep, newest first (default: BACKUP_KEEP)."
    )


@catalog_task(
    name="scheduler.backup_database",
    description="Back up the database into BACKUP_DIR, verify the copy, keep the newest N.",
    params=BackupParams,
    overlap=OverlapPolicy.SKIP,
)
def backup_database(keep: int | None = None) -> dict[str, Any]:
    return database_backup(keep=keep).as_dict()


class CleanupParams(Params):
    days: int | None = Field(
        None,
        ge=0,
        le=36_500,
        description=(
            "Keep task results and events this many days instead of RESULTS_RETENTION_DAYS and "
            "EVENTS_RETENTION_DAYS (the other tables follow their settings)."
        ),
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        le=MAX_BATCH_SIZE,
        description="Rows per batch, each its own transaction (default: RETENTION_BATCH_SIZE).",
    )


# Under the queue's soft time limit: a first cleanup of a long history stops between batches
# and reports what is left, rather than being killed in the middle of one.
CLEANUP_TIME_BUDGET = QUEUES[queue_for("scheduler.cleanup_results")].soft_limit * 0.8


@catalog_task(
    name="scheduler.cleanup_results",
    description=(
        "Delete what each growing table keeps no longer (its *_RETENTION_DAYS setting), in batches."
    ),
    params=CleanupParams,
    overlap=OverlapPolicy.SKIP,
)
def cleanup_results(days: int | None = None, batch_size: int | None = None) -> dict[str, Any]:
    started = time.monotonic()
    deleted = retention_cleanup(
        history_days=days, batch_size=batch_size, time_budget=CLEANUP_TIME_BUDGET
    )
    return {
        "deleted": sum(deleted.values()),
        "tables": dict(deleted),
        "complete": deleted.complete,
        "duration": round(time.monotonic() - started, 3),
    }


def _email_address(value: str) -> str:
    try:
        validate_email(value)
    except DjangoValidationError:
        raise PydanticCustomError(
            "email", "{value} is not an email address", {"value": repr(value)}
        ) from None
    return value


class NotificationParams(Params):
    subject: str = Field(min_length=1, max_length=200, description="Subject line.")
    message: str = Field(min_length=1, max_length=20_000, description="Body text.")
    recipients: list[Annotated[str, AfterValidator(_email_address)]] = Field(
        default_factory=list, max_length=100, description="Email addresses (or webhook_url)."
    )
    webhook_url: HttpUrl | None = Field(
        None, description="An http(s) URL to POST {subject, message, sent_at} to as JSON."
    )
    timeout: float = Field(10.0, gt=0, le=20, description="Seconds to wait for the webhook.")

    @model_validator(mode="after")
    def _exactly_one_channel(self) -> NotificationParams:
        if bool(self.recipients) == bool(self.webhook_url):
            raise PydanticCustomError(
                "channel", "give exactly one of recipients (email) or webhook_url"
            )
        return self


@catalog_task(
    name="scheduler.send_notification",
    description="Send an email, or POST JSON to a webhook; retried on failure.",
    params=NotificationParams,
    # Backoff of 5, 10, 20 s (jittered): long enough for a restarting receiver to come back.
    autoretry_for=(NotificationError,),
    retry_backoff=5,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=3,
)
def send_notification(
    subject: str,
    message: str,
    recipients: list[str] | None = None,
    webhook_url: str | None = None,
    timeout: float = 10.0,
) -> dict[str, Any]:
    return notification_send(
        subject=subject,
        message=message,
        recipients=recipients,
        webhook_url=webhook_url,
        timeout=timeout,
    )


class FlakyFailure(RuntimeError):
    """What `scheduler.flaky` raises on a turn its pattern says fails."""


class FlakyParams(Params):
    pattern: str = Field(
        "FS",
        pattern=r"^[FS]{1,20}$",
        description="Outcomes in turn, F fails and S succeeds: 'FS' fails every other run.",
    )
    key: str = Field(
        "", max_length=100, description="Whose turns to count (blank: the schedule's name)."
    )


@catalog_task(
    name="scheduler.flaky",
    description="Fail or succeed in turn as a pattern says: a demo and a drill of alerts.",
    params=FlakyParams,
    bind=True,
)
def flaky(self: Any, pattern: str = "FS", key: str = "") -> dict[str, Any]:
    owner = key or getattr(self.request, "periodic_task_name", None) or "ad hoc"
    turn = int(cast("int", get_redis().incr(redis_key(f"{FLAKY_TURNS_KEY}:{owner}")))) - 1
    if pattern[turn % len(pattern)] == "F":
        raise FlakyFailure(f"run {turn + 1} of {owner!r} fails, as the pattern {pattern!r} says")
    return {"run": turn + 1, "outcome": "success", "pattern": pattern}


class DeliveryParams(Params):
    delivery_id: int = Field(gt=0, description="The notification delivery to send (its log row).")


@catalog_task(
    name="scheduler.deliver_notification",
    description="Send one alert notification to its channel; retried, each attempt logged.",
    params=DeliveryParams,
    bind=True,
)
def deliver_notification(self: Any, delivery_id: int) -> dict[str, Any]:
    return notification_deliver(self, delivery_id)


class BackfillParams(Params):
    backfill_id: int = Field(gt=0, description="The backfill whose runs to publish (its row).")


@catalog_task(
    name="scheduler.backfill",
    description="Publish the runs of a backfill (a schedule's times over a range), a chunk at a "
    "time, with its progress; staff start one with 'Backfill…', `scheduler backfill` or the API.",
    params=BackfillParams,
)
def backfill(backfill_id: int) -> dict[str, Any]:
    return backfill_as_dict(backfill_publish(backfill_id=backfill_id))


def _allowed_names_in_schema(schema: dict[str, Any]) -> None:
    # Read when the schema is asked for, so the admin shows the deployment's current list.
    names = sorted(allowed_commands())
    if names:
        schema["enum"] = names


class CommandParams(Params):
    command: str = Field(
        description="The name of a command in SCHEDULER_ALLOWED_COMMANDS (empty: task is off).",
        json_schema_extra=_allowed_names_in_schema,
    )
    timeout: float = Field(
        60.0, gt=0, le=MAX_TIMEOUT, description="Seconds before the command is killed."
    )
    check: bool = Field(
        True, description="Fail the run when the command exits non-zero or times out."
    )

    @field_validator("command")
    @classmethod
    def _allowed(cls, value: str) -> str:
        try:
            allowed_argv(value)
        except CommandNotAllowed as exc:
            raise PydanticCustomError(
                "command_not_allowed", "{reason}", {"reason": str(exc)}
            ) from None
        return value


@catalog_task(
    name="scheduler.execute_command",
    description="Run a command from SCHEDULER_ALLOWED_COMMANDS (off by default), without a shell.",
    params=CommandParams,
)
def execute_command(command: str, timeout: float = 60.0, check: bool = True) -> dict[str, Any]:
    # The name is checked again here: the setting may have changed since the run was queued.
    run = command_run(name=command, timeout=timeout)
    if check and not run.ok:
        raise CommandFailed(run.summary())
    return run.as_dict()
