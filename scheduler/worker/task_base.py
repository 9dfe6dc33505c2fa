"""The base class of every catalog task: one execution per delivery, and overlap policies.

A run delivered by the broker first claims its attempt (scheduler/worker/deduplication.py): a second
copy of a run that succeeded or still runs elsewhere is dropped: acknowledged, its STARTED row
discarded, and recorded as a `task.duplicate` event carrying the state of the copy that counts.
A copy whose claim another host holds is published again for when that claim's lease ends, and
acknowledged; it then runs only if no SUCCESS was stored meanwhile, recorded as a `task.duplicate`
event too (a possible second execution).

A run sent by beat (or by "Run now", or a backfill) carries its periodic task's name in the message
headers, and follows that periodic task's overlap policy (a header `overlap_policy` wins over it:
a backfill's own). The decisions are made in Redis, atomically, across workers and hosts
(scheduler/worker/overlap.py); here each is carried out, stored as the run's result and recorded
as an event:

- `skip`: the run does nothing, stored as SKIPPED (`task.skipped`);
- `buffer_one` / `buffer_all`: the run is kept in Redis, stored as BUFFERED (`task.buffered`);
  when the running run ends it hands the lock over and publishes the first buffered run again,
  under its own task id, whose row then goes on STARTED, SUCCESS...; `buffer_one` keeps one
  run and skips the others, `buffer_all` keeps up to BUFFER_CAP runs and runs them in order;
- `cancel_other`: the running run is revoked with SIGUSR1, which raises SoftTimeLimitExceeded in
  it (cooperative, as its soft time limit would); it is stored REVOKED "cancelled by run X"
  (`task.cancelled`) and lets the lock go; this run waits for that, at most until the other's
  hard limit has passed (then it is surely dead) and at most half its own soft limit;
- `terminate_other`: this run takes the lock at once and the running run is killed (SIGKILL,
  no clean-up), stored REVOKED "terminated by run X" (`task.terminated`).

A body written as `async def` runs on the worker's event loop helper, within its soft time limit
(scheduler/worker/event_loop.py); the rest of this applies to it unchanged.

A run also gets its intended time: the header `scheduled_for` is `self.request.scheduled_for` (an
aware datetime) and the keyword argument `scheduled_for` of a task function that takes one.
"""

from __future__ import annotations

import inspect
import logging
import time
from datetime import UTC, datetime
from typing import Any

import redis
from celery import Task, states
from celery.exceptions import Ignore, Reject, SoftTimeLimitExceeded
from django.db import DatabaseError
from django_celery_results.models import TaskResult

from config.queues import QUEUES, queue_of
from scheduler.core.compiled_reads import FirstValue
from scheduler.core.redis_connection import redis_key
from scheduler.live.events import event_record_safely
from scheduler.live.publisher import publisher
from scheduler.protocol import (
    BUFFERED,
    CLAIM_DEFERRED_HEADER,
    OVERLAP_POLICY_HEADER,
    OVERLAP_TURN_HEADER,
    PERIODIC_TASK_HEADER,
    SCHEDULED_FOR_HEADER,
    SKIPPED,
    EventType,
    RunState,
    running_key,
)
from scheduler.schedules.policies import OverlapPolicy
from scheduler.worker.deduplication import claim_run
from scheduler.worker.event_loop import loop_run
from scheduler.worker.overlap import (
    BUFFER_CAP,
    Decision,
    overlap_decide,
    overlap_hand_over,
    overlap_publish,
    overlap_take_over,
    run_message,
    run_publish,
    stop_mark,
    stop_reason_or_none,
)
from scheduler.worker.result_backend import discard_started

logger = logging.getLogger(__name__)

# The lock outlives the longest the run may take, so a killed worker cannot hold it for ever.
_LOCK_MARGIN = 60
# A claim's lease: the run's hard limit and this margin (more than the watchdog's grace,
# scheduler/worker/watchdog.py), after which no execution of the run can still be going.
CLAIM_MARGIN = 10
# A copy deferred until a lease ends is published for this long after it (seconds).
_DEFER_SLACK = 1.0
# cancel_other: how often the waiting run looks whether the other let go, and how long after
# the other's hard limit it takes the lock anyway (the worker kills a run at its hard limit).
_WAIT_INTERVAL = 0.05
_KILL_GRACE = 5.0
# The signals that stop the other run: SIGUSR1 is the pool's soft time limit signal (it raises
# SoftTimeLimitExceeded in the task); SIGKILL cannot be caught.
_CANCEL_SIGNAL = "SIGUSR1"
_TERMINATE_SIGNAL = "SIGKILL"

_BUFFERING = frozenset({OverlapPolicy.BUFFER_ONE, OverlapPolicy.BUFFER_ALL})
_STOPPING = frozenset({OverlapPolicy.CANCEL_OTHER, OverlapPolicy.TERMINATE_OTHER})


def overlap_lock_key(periodic_task_name: str) -> str:
    return redis_key(running_key(periodic_task_name))


# Read as every periodic, redelivered or deferred copy starts: compiled once (scheduler/core).
_stored_state = FirstValue(
    TaskResult,
    lambda task_id: TaskResult.objects.filter(task_id=task_id).values_list("status", flat=True),
)


def stored_state(task_id: str) -> str | None:
    state = _stored_state(task_id)
    return None if state is None else str(state)


def _stored_state_or_none(task_id: str) -> str | None:
    try:
        return stored_state(task_id)
    except DatabaseError as exc:
        # The database restarting: the run goes on (its own errors retry it), guarded by the
        # claim alone; failing it here would cut its retries short.
        logger.warning("could not read the stored state of %s: %s", task_id, exc)
        return None


def _header(request: Any, name: str) -> Any:
    # A worker puts message headers on the request; a run in the caller keeps them apart.
    value = getattr(request, name, None)
    if value is None:
        value = (request.headers or {}).get(name)
    return value


def _periodic_task_name(request: Any) -> str | None:
    return _header(request, PERIODIC_TASK_HEADER) or None


def _turn(request: Any) -> int:
    try:
        return int(_header(request, OVERLAP_TURN_HEADER) or 0)
    except (TypeError, ValueError):
        return 0


def scheduled_for_of(request: Any) -> datetime | None:
    """The run's intended time from its `scheduled_for` header (ISO 8601, UTC), if it has one."""
    value = _header(request, SCHEDULED_FOR_HEADER)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        logger.warning("ignoring a scheduled_for header that is no ISO 8601 time: %r", value)
        return None
    # The header is UTC by the protocol; one without an offset is read so.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# task name -> whether its function takes a `scheduled_for` parameter.
_takes_scheduled_for: dict[str, bool] = {}


def _takes(function: Any, name: str) -> bool:
    try:
        parameter = inspect.signature(function).parameters.get(name)
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind not in (
        inspect.Parameter.VAR_POSITIONAL,
        inspect.Parameter.VAR_KEYWORD,
        inspect.Parameter.POSITIONAL_ONLY,
    )


class CatalogTask(Task):
    """The worker's side of a catalog task: one execution per delivery, and the overlap policy.

    The catalog declares its tasks on a subclass (scheduler/catalog/declaring.py) that answers
    the two questions below from its registry; the worker runtime imports nothing of the catalog.
    """

    #: Whether the catalog holds this task now (beat refuses to publish one it does not).
    in_catalog = False

    def overlap_policy(self, periodic_task_name: str) -> str:
        """The overlap policy a run of `periodic_task_name` follows, resolved as it starts."""
        return OverlapPolicy.ALLOW.value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        periodic_task_name = _periodic_task_name(request)
        if request.delivery_info and not request.is_eager:
            self._claim_delivery(periodic=bool(periodic_task_name))
        kwargs = self._with_scheduled_for(kwargs)
        if not periodic_task_name:
            return self._body(*args, **kwargs)
        policy = self._policy_of(periodic_task_name)
        # A buffered run published again holds the lock already: it hands it on at its end,
        # whatever the policy says now.
        holds = _turn(request) > 0
        if policy != OverlapPolicy.ALLOW:
            holds = self._take_turn(periodic_task_name, OverlapPolicy(policy))
        if not holds:
            return self._body(*args, **kwargs)
        try:
            return self._body(*args, **kwargs)
        except SoftTimeLimitExceeded:
            self._ignore_if_stopped()
            raise
        finally:
            self._hand_over(periodic_task_name)

    def _body(self, *args: Any, **kwargs: Any) -> Any:
        result = super().__call__(*args, **kwargs)
        if inspect.iscoroutine(result):
            # An `async def` body: run on the worker's loop, within its soft limit.
            return loop_run(
                result,
                soft_limit=self._limits()[1],
                close_connections=not self.request.is_eager,
            )
        return result

    def _with_scheduled_for(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        request: Any = self.request  # Celery's Context takes any attribute
        moment = scheduled_for_of(request)
        request.scheduled_for = moment
        if moment is None or "scheduled_for" in kwargs:
            return kwargs
        takes = _takes_scheduled_for.get(self.name)
        if takes is None:
            takes = _takes_scheduled_for[self.name] = _takes(self.run, "scheduled_for")
        return {**kwargs, "scheduled_for": moment} if takes else kwargs

    def _policy_of(self, periodic_task_name: str) -> str:
        given = _header(self.request, OVERLAP_POLICY_HEADER)
        if given:
            try:
                policy = OverlapPolicy(given)
            except ValueError:
                logger.warning(
                    "%s[%s]: unknown overlap_policy header %r: the schedule's policy applies",
                    self.name,
                    self.request.id,
                    given,
                )
            else:
                if policy != OverlapPolicy.DEFAULT:
                    return policy.value
        return self.overlap_policy(periodic_task_name)

    def _claim_delivery(self, *, periodic: bool) -> None:
        """Run this delivery only if no other copy of the attempt ran or runs (deduplication)."""
        request = self.request
        task_id = request.id or ""
        # A copy the broker handed out again, one held until its ETA, or a periodic run (beat
        # publishes a run again under the same id when its leader died before recording it):
        # the first copy may have finished already.
        if (request.delivery_info or {}).get("redelivered") or request.eta or periodic:
            self._drop_if_succeeded(task_id)
        deferred_from = str(_header(request, CLAIM_DEFERRED_HEADER) or "")
        try:
            claim = claim_run(
                task_id=task_id,
                retries=request.retries or 0,
                node=request.hostname or "",
                ttl_seconds=self._claim_ttl(),
                turn=_turn(request),
            )
        except (redis.exceptions.RedisError, OSError) as exc:
            # Redis restarting: running a rare duplicate beats failing the run, and the stored
            # SUCCESS check above still holds.
            logger.warning("%s[%s]: not claimed (%s): runs anyway", self.name, task_id, exc)
            return
        if claim.took_over and claim.holder is not None:
            logger.warning(
                "%s[%s]: taken over from %s (pid %s), which died while running it",
                self.name,
                task_id,
                claim.holder.node or claim.holder.host,
                claim.holder.pid,
            )
            self._drop_if_succeeded(task_id)  # it may have died after storing its result
        if not claim.acquired and claim.lease_left > 0 and claim.holder is not None:
            self._defer(claim.holder.node or claim.holder.host, claim.lease_left)
        if not claim.acquired:
            holder = claim.holder
            where = f"{holder.node or holder.host} (pid {holder.pid})" if holder else "elsewhere"
            stored = _stored_state_or_none(task_id)
            if stored in states.READY_STATES:
                self._drop_duplicate(f"duplicate delivery dropped: the run ended {stored}", stored)
            self._drop_duplicate(f"duplicate delivery dropped: running in {where}", "STARTED")

        if claim.acquired and deferred_from:
            self._record_executed_again(deferred_from)

    def _defer(self, holder: str, lease_left: float) -> None:
        """Publish this copy again to run once the lease of `holder` (on another host) has
        ended, and acknowledge this one: asking that host whether it still runs the run would
        spend this run's time budget, and a host cut off the network never answers."""
        request = self.request
        run = run_message(request, task_name=self.name)
        countdown = round(lease_left + _DEFER_SLACK, 3)
        try:
            run_publish(
                run,
                headers={**run["headers"], CLAIM_DEFERRED_HEADER: holder},
                countdown=countdown,
                retries=request.retries or 0,
            )
        except Exception as exc:
            # Given back to the broker instead: a worker gets it again and decides again.
            logger.warning(
                "%s[%s]: could not defer the copy (%s): given back", self.name, request.id, exc
            )
            discard_started(request.id or "")
            raise Reject(str(exc), requeue=True) from exc
        reason = (
            f"claimed by {holder} on another host: published again to run in {countdown:g} s, "
            "once that claim's lease has ended, unless the run has succeeded by then"
        )
        logger.warning("%s[%s]: %s", self.name, request.id, reason)
        discard_started(request.id or "")
        self._record_copy(
            f"copy deferred: {reason}",
            {"deferred": True, "first": holder, "in_seconds": countdown},
        )
        raise Ignore(reason)

    def _record_copy(self, message: str, payload: dict[str, Any]) -> None:
        """A `task.duplicate` event of this copy, which runs (STARTED) or will."""
        request = self.request
        event_record_safely(
            type="task.duplicate",
            task_id=request.id or "",
            task_name=self.name,
            periodic_task_name=getattr(request, "periodic_task_name", None) or "",
            state="STARTED",
            worker=request.hostname or "",
            message=message,
            payload=payload,
        )

    def _record_executed_again(self, first: str) -> None:
        """This copy runs after the lease of `first`'s claim ended with no SUCCESS stored: the
        first may have run all or part of the body (a host cut off, then killed by its watchdog),
        so this is counted and shown as a possible second execution."""
        request = self.request
        message = (
            f"executed again: the claim of {first} ended with no success stored (its host was "
            "cut off or died); any part of the run it did happens twice, except side effects "
            "made once through their idempotency keys"
        )
        logger.warning("%s[%s]: %s", self.name, request.id, message)
        self._record_copy(message, {"executed_again": True, "first": first})

    def _drop_if_succeeded(self, task_id: str) -> None:
        state = _stored_state_or_none(task_id)
        if state == states.SUCCESS:
            self._drop_duplicate(f"duplicate delivery dropped: the run ended {state}", state)

    def _drop_duplicate(self, reason: str, state: str) -> None:
        logger.warning("%s[%s]: %s", self.name, self.request.id, reason)
        # Its STARTED row, written just before the task body, must not land over the state of
        # the copy that counts.
        discard_started(self.request.id or "")
        # The state of the run that counts, so the dashboard's row shows it again.
        event_record_safely(
            type="task.duplicate",
            task_id=self.request.id or "",
            task_name=self.name,
            periodic_task_name=getattr(self.request, "periodic_task_name", None) or "",
            state=state,
            worker=self.request.hostname or "",
            message=reason,
        )
        # Acknowledged, and nothing more stored for it: the stored state is the other copy's.
        raise Ignore(reason)

    def _limits(self) -> tuple[float, float]:
        """The run's hard and soft time limits: a limit given with the message
        (apply_async(time_limit=...)) wins over the task's, which wins over its queue's."""
        hard, soft = getattr(self.request, "timelimit", None) or (None, None)
        spec = QUEUES[queue_of(self)]
        return (
            float(hard or self.time_limit or spec.hard_limit),
            float(soft or self.soft_time_limit or spec.soft_limit),
        )

    def _lock_ttl(self) -> int:
        return int(self._limits()[0]) + _LOCK_MARGIN

    def _claim_ttl(self) -> float:
        return self._limits()[0] + CLAIM_MARGIN

    # --- the overlap policy (module docstring) -------------------------------------------------

    def _take_turn(self, periodic_task_name: str, policy: OverlapPolicy) -> bool:
        """Carry out the policy's decision on this run: True once it holds the lock and may run,
        False when Redis could not be asked (it runs anyway); Ignore when it does not run."""
        request = self.request
        if request.is_eager and (policy in _BUFFERING or policy in _STOPPING):
            # A run in the caller can neither be published again later nor wait for a worker
            # to stop another: it follows `skip`.
            policy = OverlapPolicy.SKIP
        try:
            decision = overlap_decide(
                periodic_task_name=periodic_task_name,
                run_id=request.id or "",
                policy=policy.value,
                ttl_seconds=self._lock_ttl(),
                run=run_message(request, task_name=self.name) if policy in _BUFFERING else None,
            )
            if decision.handed is not None:
                overlap_publish(decision.handed)  # a stranded buffered run: its turn first
            if decision.outcome == "skip":
                reason = self._skip_reason(periodic_task_name, policy, decision)
                self._skip(periodic_task_name, reason)
            elif decision.outcome == "buffer":
                self._buffer(periodic_task_name, policy, decision)
            elif decision.outcome == "terminate":
                self._stop(periodic_task_name, decision.holder, how="terminated", policy=policy)
            elif decision.outcome == "cancel":
                self._stop(periodic_task_name, decision.holder, how="cancelled", policy=policy)
                self._wait_for_turn(periodic_task_name, decision)
        except (redis.exceptions.RedisError, OSError) as exc:
            # Redis restarting: running an overlapping run beats failing it.
            logger.warning(
                "%s[%s]: overlap policy %s not applied (%s): runs anyway",
                self.name,
                request.id,
                policy.value,
                exc,
            )
            return False
        return True

    def _skip_reason(
        self, periodic_task_name: str, policy: OverlapPolicy, decision: Decision
    ) -> str:
        running = (
            f"the previous run of {periodic_task_name!r} is still running (run {decision.holder})"
        )
        if decision.queued >= 1:
            kept = "one run is" if decision.queued == 1 else f"{decision.queued} runs are"
            most = f" ({policy.value} keeps {BUFFER_CAP} at most)" if decision.queued > 1 else ""
            return f"skipped: {running} and {kept} buffered already{most}"
        return f"skipped: {running}"

    def _skip(self, periodic_task_name: str, reason: str | None = None) -> None:
        reason = reason or f"skipped: the previous run of {periodic_task_name!r} is still running"
        self.update_state(state=SKIPPED, meta={"skipped": True, "reason": reason})
        self._record(EventType.TASK_SKIPPED, periodic_task_name, SKIPPED, reason)
        # Ignore: the state stored above stays; the message is acknowledged, not retried.
        raise Ignore(reason)

    def _buffer(self, periodic_task_name: str, policy: OverlapPolicy, decision: Decision) -> None:
        ahead = decision.queued - 1
        reason = f"buffered ({policy.value}): runs after run {decision.holder} ends" + (
            f", {ahead} buffered run{'s' if ahead > 1 else ''} ahead of it" if ahead else ""
        )
        meta = {"buffered": True, "reason": reason, "after": decision.holder}
        self.update_state(state=BUFFERED, meta={**meta, "position": decision.queued})
        self._record(EventType.TASK_BUFFERED, periodic_task_name, BUFFERED, reason, meta)
        # Acknowledged: the run lives on in the buffer, and is published again for its turn.
        raise Ignore(reason)

    def _stop(
        self, periodic_task_name: str, other: str, *, how: str, policy: OverlapPolicy
    ) -> None:
        """Stop run `other` (module docstring); its worker stores why, read from Redis."""
        me = self.request.id or ""
        reason = f"{how} by run {me} (overlap policy {policy.value} of {periodic_task_name!r})"
        stop_mark(other, reason, ttl_seconds=self._lock_ttl())
        signal = _CANCEL_SIGNAL if how == "cancelled" else _TERMINATE_SIGNAL
        try:
            self.app.control.revoke(other, terminate=True, signal=signal)
        except Exception as exc:
            # The broker is away: a cancelling run waits for the other's end all the same.
            logger.warning("%s[%s]: could not revoke run %s: %s", self.name, me, other, exc)
        kind = EventType.TASK_CANCELLED if how == "cancelled" else EventType.TASK_TERMINATED
        event_record_safely(
            type=kind,
            task_id=other,
            task_name=self.name,
            periodic_task_name=periodic_task_name,
            state=RunState.REVOKED.value,
            worker=self.request.hostname or "",
            message=reason,
            payload={"by": me, "policy": policy.value},
        )
        # Written now, not with the process's next batch: the next overlapping run may stop
        # this one (terminate_other kills its process) before the batch goes out.
        publisher().flush(timeout=2.0)

    def _wait_for_turn(self, periodic_task_name: str, decision: Decision) -> None:
        """cancel_other: wait for the cancelled run to let the lock go, then take it."""
        me, holder = self.request.id or "", decision.holder
        started = time.monotonic()
        # The holder's lock lives its hard limit and a margin: past its hard limit and a grace
        # it is surely dead (the worker kills it) and its lock is taken over.
        dead_at = started + max(0.0, decision.holder_ttl_ms / 1000 - _LOCK_MARGIN) + _KILL_GRACE
        # The wait counts against this run's own limits: half its soft limit at most.
        give_up = min(dead_at, started + self._limits()[1] / 2)
        stopped = {holder}
        while True:
            now = time.monotonic()
            turn = overlap_take_over(
                periodic_task_name=periodic_task_name,
                run_id=me,
                ttl_seconds=self._lock_ttl(),
                dead_holder=holder if now >= dead_at else "",
            )
            if turn.outcome == "run":
                return
            if turn.outcome == "replaced":
                newer = f"run {turn.other}" if turn.other else "a newer run"
                self._skip(
                    periodic_task_name,
                    f"skipped: {newer} replaced it while it waited for run {holder} to stop",
                )
            if turn.other not in stopped:
                # Another run took the lock meanwhile (a buffered one, a run of another
                # policy): the newest run wins over it too.
                stopped.add(turn.other)
                policy = OverlapPolicy.CANCEL_OTHER
                self._stop(periodic_task_name, turn.other, how="cancelled", policy=policy)
            if now >= give_up:
                self._skip(
                    periodic_task_name,
                    f"skipped: run {holder} did not stop within {now - started:.0f} s",
                )
            time.sleep(_WAIT_INTERVAL)

    def _ignore_if_stopped(self) -> None:
        """A SoftTimeLimitExceeded sent by another run's cancel_other: stored as REVOKED,
        'cancelled by run X', rather than as a failure."""
        task_id = self.request.id or ""
        reason = stop_reason_or_none(task_id)
        if reason is None:
            return  # its own soft time limit
        logger.info("%s[%s]: %s", self.name, task_id, reason)
        self.backend.mark_as_revoked(task_id, reason, request=self.request)
        raise Ignore(reason)

    def _hand_over(self, periodic_task_name: str) -> None:
        try:
            run = overlap_hand_over(
                periodic_task_name=periodic_task_name, holder=self.request.id or ""
            )
        except (redis.exceptions.RedisError, OSError) as exc:
            # The lock expires; a worker's heartbeat hands a buffered run its turn then.
            logger.warning("%s[%s]: lock not handed over: %s", self.name, self.request.id, exc)
            return
        if run is not None:
            overlap_publish(run)

    def _record(
        self,
        kind: str,
        periodic_task_name: str,
        state: str,
        reason: str,
        payload: dict[str, Any] | None = None,
    ) -> None:
        event_record_safely(
            type=kind,
            task_id=self.request.id or "",
            task_name=self.name,
            periodic_task_name=periodic_task_name,
            state=state,
            worker=self.request.hostname or "",
            message=reason,
            payload=payload,
        )
