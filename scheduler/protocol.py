"""The run protocol: every name that crosses a process boundary, once.

Web, worker and beat agree on these by value (they are stored in the database, sent through
Redis and the broker, and read by the browser), so each has exactly one definition here: the
states a run or an event carries, the event types, the sets of states that end a run, the
header that ties a run to a domain object, and the Redis key names (unprefixed: callers wrap
them in `scheduler.core.redis_connection.redis_key`, which adds REDIS_KEY_PREFIX).

Pure: it imports nothing of the project, so every room may import it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, TypedDict

from celery import states


class RunState(StrEnum):
    """A run's state (Celery's, and ours), as results and events store it."""

    PENDING = states.PENDING
    RECEIVED = states.RECEIVED
    STARTED = states.STARTED
    RETRY = states.RETRY
    SUCCESS = states.SUCCESS
    FAILURE = states.FAILURE
    REVOKED = states.REVOKED
    REJECTED = states.REJECTED
    IGNORED = states.IGNORED
    # Ours: a run the overlap policy skipped (stored as its result too), and one it kept to run
    # after the running run ends (stored until its turn comes; then STARTED, SUCCESS, ...).
    SKIPPED = "SKIPPED"
    BUFFERED = "BUFFERED"
    # An event's only: a run beat published that never got a result (beat's watchdog), and an
    # agent's post that went out.
    MISSED = "MISSED"
    PUBLISHED = "PUBLISHED"


SKIPPED = RunState.SKIPPED.value
BUFFERED = RunState.BUFFERED.value
MISSED = RunState.MISSED.value
PUBLISHED = RunState.PUBLISHED.value

# Every state an event may carry: `/ws/events/?state=` and the feed's filter accept these only.
EVENT_STATES: frozenset[str] = frozenset(state.value for state in RunState)
# A run in one of these is over: it will not change again (the dashboard stops waiting on it,
# REST clients waiting on it are answered, a later event of an earlier state never wins).
FINISHED_STATES: frozenset[str] = frozenset(
    {
        RunState.SUCCESS,
        RunState.FAILURE,
        RunState.REVOKED,
        RunState.REJECTED,
        RunState.IGNORED,
        RunState.SKIPPED,
    }
)
# States whose event carries how long the attempt took (/metrics' duration histogram).
TIMED_STATES: frozenset[str] = frozenset({RunState.SUCCESS, RunState.FAILURE, RunState.RETRY})


class EventType(StrEnum):
    """`TaskEvent.type`: what `manage.py scheduler logs --filter` matches and the feed shows."""

    TASK_QUEUED = "task.queued"
    TASK_STARTED = "task.started"
    TASK_SUCCEEDED = "task.succeeded"
    TASK_FAILED = "task.failed"
    TASK_RETRIED = "task.retried"
    TASK_REVOKED = "task.revoked"
    TASK_SKIPPED = "task.skipped"
    # The overlap policy's other decisions: a run kept for later (buffer_one, buffer_all), and
    # the running run stopped for a newer one (cancel_other, terminate_other; on the stopped run).
    TASK_BUFFERED = "task.buffered"
    TASK_CANCELLED = "task.cancelled"
    TASK_TERMINATED = "task.terminated"
    # A second delivery of a run already claimed (dropped), and a run beat flagged as missed.
    TASK_DUPLICATE = "task.duplicate"
    TASK_MISSED = "task.missed"
    SCHEDULE_CREATED = "schedule.created"
    SCHEDULE_UPDATED = "schedule.updated"
    SCHEDULE_ENABLED = "schedule.enabled"
    SCHEDULE_DISABLED = "schedule.disabled"
    SCHEDULE_DELETED = "schedule.deleted"
    SCHEDULE_RUN_NOW = "schedule.run_now"
    # Its due times in a range made now (one event per backfill; its progress: backfill.*).
    SCHEDULE_BACKFILLED = "schedule.backfilled"
    # Paused with a note (by staff, or by itself after failed runs) and resumed (by staff, or by
    # itself when its "until" passed).
    SCHEDULE_PAUSED = "schedule.paused"
    SCHEDULE_RESUMED = "schedule.resumed"
    # Alerts: an incident opened (its first notification) and recovered; a dead letter kept.
    INCIDENT_OPENED = "incident.opened"
    INCIDENT_RESOLVED = "incident.resolved"
    DEAD_LETTER = "task.dead_letter"
    # Staff resolved a dead letter (its run's task id; the letter's id in the data).
    DEAD_LETTER_REQUEUED = "dead_letter.requeued"
    DEAD_LETTER_DISCARDED = "dead_letter.discarded"
    # Staff stopped consuming a queue on every worker, started again, or emptied it (the
    # queue's name in the data).
    QUEUE_PAUSED = "queue.paused"
    QUEUE_RESUMED = "queue.resumed"
    QUEUE_PURGED = "queue.purged"


# The seeds' event names (seed 002), accepted wherever an event type or pattern is: in
# subscriptions, the websocket filter and `scheduler logs --filter`. Alias -> our types.
EVENT_ALIASES: dict[str, tuple[str, ...]] = {
    "task.completed": (EventType.TASK_SUCCEEDED,),
    "task.created": (EventType.SCHEDULE_CREATED,),
    "task.updated": (
        EventType.SCHEDULE_UPDATED,
        EventType.SCHEDULE_ENABLED,
        EventType.SCHEDULE_DISABLED,
        EventType.SCHEDULE_PAUSED,
        EventType.SCHEDULE_RESUMED,
    ),
}


# The lifecycle of one run, as the dashboard's feed and a task's timeline show it.
RUN_EVENTS: tuple[str, ...] = (
    EventType.TASK_QUEUED,
    EventType.TASK_STARTED,
    EventType.TASK_SUCCEEDED,
    EventType.TASK_FAILED,
    EventType.TASK_RETRIED,
    EventType.TASK_REVOKED,
    EventType.TASK_SKIPPED,
    EventType.TASK_BUFFERED,
    EventType.TASK_CANCELLED,
    EventType.TASK_TERMINATED,
)
SCHEDULE_EVENTS: tuple[str, ...] = tuple(
    event for event in EventType if event.startswith("schedule.")
)
QUEUE_EVENTS: tuple[str, ...] = tuple(event for event in EventType if event.startswith("queue."))

# The message header naming the domain object a run belongs to ("tournament:7"): its events go
# to that object's group too (a tournament page, a chat session).
OBJECT_HEADER = "scheduler_object"
# The headers of a periodic run (beat, "Run now" and backfill set them): the periodic task it is a
# run of; its due time and when it was published (ISO 8601, UTC); an overlap policy that wins
# over the schedule's (backfill's own); the backfill it belongs to. And the header of a buffered
# run published again when its turn came: it holds the overlap lock already.
PERIODIC_TASK_HEADER = "periodic_task_name"
SCHEDULED_FOR_HEADER = "scheduled_for"
PUBLISHED_AT_HEADER = "published_at"
OVERLAP_POLICY_HEADER = "overlap_policy"
BACKFILL_HEADER = "backfill_id"
OVERLAP_TURN_HEADER = "overlap_turn"
# The header of a copy published again to run once the claim of another host's worker has
# ended (scheduler/worker/deduplication.py): that worker's node.
CLAIM_DEFERRED_HEADER = "claim_deferred_from"

# As long as TaskEvent's columns.
OBJECT_TYPE_MAX, OBJECT_ID_MAX = 40, 64

# Any publish without `published_at` (not beat's, not backfill's) gets it from the publishing
# process (worker/receivers.py).


class DispatchStep(StrEnum):
    """The steps of a run's dispatch lag (due -> published -> started -> finished): the keys of
    an event's `data["dispatch"]["lags"]` and the `step` label of /metrics."""

    DUE_TO_PUBLISHED = "due_to_published"
    PUBLISHED_TO_STARTED = "published_to_started"
    STARTED_TO_FINISHED = "started_to_finished"


DISPATCH_STEPS: tuple[str, ...] = tuple(step.value for step in DispatchStep)


def object_header(object_type: str, object_id: object) -> dict[str, str]:
    """The headers of a run that belongs to `object_type` `object_id`."""
    return {OBJECT_HEADER: f"{object_type}:{object_id}"}


def object_of(headers: object) -> tuple[str, str] | None:
    """The (type, id) a run's headers name, or None when they name none."""
    value = headers.get(OBJECT_HEADER) if isinstance(headers, dict) else None
    if not isinstance(value, str) or ":" not in value:
        return None
    object_type, _, object_id = value.partition(":")
    return object_type[:OBJECT_TYPE_MAX], object_id[:OBJECT_ID_MAX]


# The headers of a periodic run: the periodic task it belongs to; its due time and when it was
# published (ISO 8601, UTC); an overlap policy that overrides its schedule's for this run; the
# backfill that made it (the Backfill row's id).
PERIODIC_TASK_HEADER = "periodic_task_name"
SCHEDULED_FOR_HEADER = "scheduled_for"
PUBLISHED_AT_HEADER = "published_at"
OVERLAP_POLICY_HEADER = "overlap_policy"
BACKFILL_ID_HEADER = "backfill_id"


class EventObject(TypedDict):
    """The domain object an event belongs to (from the run's OBJECT_HEADER)."""

    type: str
    id: str


class EventPayload(TypedDict):
    """One event as it travels live: what the publisher sends to the channel layer, the
    websocket consumer forwards to browsers, REST clients waiting on a task read, and the
    pages' scripts render (`live/events.py`'s `event_payload` builds it from a stored row)."""

    id: int | None  # None until the publisher thread stored its row (worker and beat)
    type: str  # an EventType
    task_id: str
    task_name: str
    periodic_task_name: str
    state: str  # a RunState, or "" (schedule events)
    worker: str
    duration: float | None  # seconds, on timed states
    message: str
    at: str  # ISO 8601 with its offset
    object: EventObject | None
    data: dict[str, Any]  # the event's own data, secrets masked


class BackfillMessage(TypedDict):
    """What a websocket connection gets first: the latest events, oldest first."""

    kind: Literal["backfill"]
    events: list[EventPayload]


class EventMessage(TypedDict):
    """One live event on a websocket connection."""

    kind: Literal["event"]
    event: EventPayload


# The heading of the note a refusing webhook's answer is kept under in the failed run's stored
# traceback (scheduler/system/notifications.py writes it, the task page finds it).
RESPONSE_NOTE = "Response body"

# Redis keys and channels (unprefixed; see the module docstring).
WORKERS_KEY = "scheduler:workers"  # sorted set: worker hostname -> last heartbeat
WORKER_QUEUES_KEY = "scheduler:workers:queues"  # hash: worker hostname -> "queue,queue"
BEAT_LEADER_KEY = "scheduler:beat:leader"  # the leading beat's lock
BEAT_HEARTBEAT_KEY = "scheduler:beat:heartbeat"  # the leader's heartbeat
BEAT_STANDBY_KEY = "scheduler:beat:standby"  # + ":<beat>": each standby's heartbeat
BEAT_CHANGES_CHANNEL = "scheduler:beat:changes"  # pub/sub: periodic tasks changed
MISSED_RUNS_KEY = "scheduler:beat:missed"  # hash: run task id -> what beat published
ALERT_STREAKS_KEY = "scheduler:alerts:streaks"  # hash: "<rule>|<subject>" -> failures in a row
ALERT_SINCE_KEY = "scheduler:alerts:since"  # hash: "<rule>|<subject>" -> when it began to hold
ALERT_LAST_SUCCESS_KEY = "scheduler:alerts:last_success"  # hash: periodic task -> last success
ALERT_WATCH_LOCK_KEY = "scheduler:alerts:watch"  # the watcher's lock: one check per interval
ALERT_NO_SUCCESS_CHECKED_KEY = "scheduler:alerts:no_success_checked"  # at most once a minute
PAUSES_RESUME_LOCK_KEY = "scheduler:pauses:resume"  # one look for ended pauses per interval
FLAKY_TURNS_KEY = "scheduler:flaky"  # + ":<schedule or key>": `scheduler.flaky`'s turn counter
METRICS_EVENTS_KEY = "scheduler:metrics:events"  # "published|failed\t<type>" -> count
METRICS_TASKS_KEY = "scheduler:metrics:tasks"  # "<state>\t<task name>" -> count
METRICS_DURATIONS_KEY = "scheduler:metrics:durations"  # "<bucket>|sum|count\t<task>" -> value
DISPATCH_LAG_INDEX_KEY = "scheduler:lag:index"  # sorted set: periodic task -> last sample time


def running_key(periodic_task_name: str) -> str:
    """The lock a run of `periodic_task_name` holds while it runs (the overlap policy)."""
    return f"scheduler:running:{periodic_task_name}"


def overlap_buffer_key(periodic_task_name: str) -> str:
    """The runs of `periodic_task_name` buffered behind the running one, oldest first."""
    return f"scheduler:overlap:buffer:{periodic_task_name}"


# Set: the periodic tasks with buffered runs (workers hand a stranded one its turn).
OVERLAP_BUFFERED_KEY = "scheduler:overlap:buffered"


def overlap_waiter_key(periodic_task_name: str) -> str:
    """The run waiting for the running run of `periodic_task_name` to stop (cancel_other)."""
    return f"scheduler:overlap:waiter:{periodic_task_name}"


def overlap_stopped_key(task_id: str) -> str:
    """Why run `task_id` was stopped by the overlap policy ("cancelled by run ...")."""
    return f"scheduler:overlap:stopped:{task_id}"


def claim_key(task_id: str, retries: int, turn: int = 0) -> str:
    """The claim of one delivery of a run (duplicate deliveries find it taken); a buffered
    run published again for its `turn` claims anew (its first delivery's claim still stands)."""
    return f"scheduler:claim:{task_id}:{retries}" + (f":turn{turn}" if turn else "")


def dispatch_lag_key(periodic_task_name: str) -> str:
    """The latest dispatch lags of `periodic_task_name`'s runs (a capped list, newest first)."""
    return f"scheduler:lag:samples:{periodic_task_name}"
