"""The overlap policy's decisions, made atomically in Redis across workers and hosts.

Each periodic task has one lock (`protocol.running_key`): its value is the task id of the run
that holds it, and it expires after that run's hard time limit and a margin, so a killed worker
never holds it for ever. Every decision about a run that starts is one Lua script:

- `allow`: no lock at all;
- `skip`: take the lock, or skip the run;
- `buffer_one` and `buffer_all`: take the lock, or keep the run (its message: task, arguments,
  headers, queue, limits) at the end of the periodic task's buffer, a Redis list; `buffer_one`
  keeps one at most and skips the others, `buffer_all` keeps up to BUFFER_CAP;
- `cancel_other`: name the run the waiter (`protocol.overlap_waiter_key`), and tell the caller
  to cancel the holder and wait for it to let go; a newer run that names itself the waiter
  replaces an older waiter, which then skips;
- `terminate_other`: take the lock from the holder at once, and tell the caller to kill it.

A run that ends hands the lock over in one script too: to the first buffered run, whose message
the caller publishes again (same task id, with `OVERLAP_TURN_HEADER`), or to nobody. A buffered
run whose holder died without handing over is not stranded: the next run that finds the lock
free hands it over first, and every worker's heartbeat (`overlap_rescue`) does the same for
buffers whose lock is gone.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from redis.commands.core import Script
from redis.exceptions import RedisError

from config.celery import app
from scheduler import protocol
from scheduler.core.redis_connection import get_redis, redis_key

logger = logging.getLogger(__name__)

# At most this many runs wait in a `buffer_all` buffer; later ones are skipped, and say so.
BUFFER_CAP = 1000

# KEYS: lock, buffer, waiter, set of buffered periodic tasks.
# ARGV: run id, lock TTL (ms), policy, the run's message (JSON, buffer policies), cap, name.
# Returns {outcome, the run overlapped, queued or lock PTTL, a stranded run handed the lock}.
_DECIDE = """
local lock, buffer, waiter, buffered = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local me, ttl, policy = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local holder = redis.call('GET', lock)
if holder == me then
    redis.call('PEXPIRE', lock, ttl)
    return {'run', '', 0, ''}
end
local handed = ''
local stopping = policy == 'cancel_other' or policy == 'terminate_other'
if not holder then
    -- A buffered run whose predecessor died without handing over goes first, unless this run
    -- would stop it at once (this run hands it over at its end).
    local first = not stopping and redis.call('LPOP', buffer)
    if not first then
        redis.call('SET', lock, me, 'PX', ttl)
        if policy == 'cancel_other' and redis.call('EXISTS', waiter) == 1 then
            -- A run still waiting for the one before to stop: this newer run replaces it.
            redis.call('SET', waiter, me, 'PX', ttl)
        end
        return {'run', '', 0, ''}
    end
    local run = cjson.decode(first)
    redis.call('SET', lock, run['id'], 'PX', run['ttl'])
    if redis.call('LLEN', buffer) == 0 then
        redis.call('SREM', buffered, ARGV[6])
    end
    holder, handed = run['id'], first
end
if policy == 'buffer_one' or policy == 'buffer_all' then
    local queued = redis.call('LLEN', buffer)
    if queued >= tonumber(ARGV[5]) or (policy == 'buffer_one' and queued >= 1) then
        return {'skip', holder, queued, handed}
    end
    queued = redis.call('RPUSH', buffer, ARGV[4])
    redis.call('SADD', buffered, ARGV[6])
    -- No longer than the runs ahead may take: a buffer nobody serves goes by itself.
    redis.call('PEXPIRE', buffer, math.max(redis.call('PTTL', lock), 0) + queued * ttl)
    return {'buffer', holder, queued, handed}
end
if policy == 'cancel_other' then
    local left = redis.call('PTTL', lock)
    redis.call('SET', waiter, me, 'PX', math.max(left, 0) + ttl)
    return {'cancel', holder, left, handed}
end
if policy == 'terminate_other' then
    redis.call('SET', lock, me, 'PX', ttl)
    return {'terminate', holder, 0, handed}
end
return {'skip', holder, 0, handed}
"""

# KEYS: lock, waiter. ARGV: run id, lock TTL (ms), a holder whose hard limit has passed ('').
# The waiter of `cancel_other` takes the lock once the holder let go (or is surely dead).
_TAKE_OVER = """
local waiting = redis.call('GET', KEYS[2])
if waiting ~= ARGV[1] then
    return {'replaced', waiting or ''}
end
local holder = redis.call('GET', KEYS[1])
if not holder or holder == ARGV[1] or holder == ARGV[3] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    redis.call('DEL', KEYS[2])
    return {'run', holder or ''}
end
return {'wait', holder}
"""

# KEYS: lock, buffer, set of buffered periodic tasks. ARGV: the holder ('': nobody, the lock
# must be gone), name. The lock goes to the first buffered run (returned), or is let go.
_HAND_OVER = """
local holder = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
    if holder then return '' end
elseif holder ~= ARGV[1] then
    return ''
end
local first = redis.call('LPOP', KEYS[2])
if not first then
    if holder then redis.call('DEL', KEYS[1]) end
    redis.call('SREM', KEYS[3], ARGV[2])
    return ''
end
local run = cjson.decode(first)
redis.call('SET', KEYS[1], run['id'], 'PX', run['ttl'])
local left = redis.call('LLEN', KEYS[2])
if left == 0 then
    redis.call('SREM', KEYS[3], ARGV[2])
else
    redis.call('PEXPIRE', KEYS[2], (left + 1) * run['ttl'])
end
return first
"""

# KEYS: lock, buffer, set. ARGV: the run's id, its message, name. A run handed the lock that could
# not be published goes back to the front of the buffer, and the lock is let go.
_GIVE_BACK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('DEL', KEYS[1])
end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
"""


@lru_cache(maxsize=8)
def _script(source: str) -> Script:
    # EVALSHA from then on; redis-py loads the script again after a Redis restart.
    return get_redis().register_script(source)


@dataclass(frozen=True)
class Decision:
    """What the overlap policy says of a run that starts (module docstring)."""

    outcome: str  # run | skip | buffer | cancel | terminate
    holder: str = ""  # the run it overlaps (the lock's holder)
    queued: int = 0  # buffer: its place in the buffer; skip: how many are buffered
    holder_ttl_ms: int = 0  # cancel: how long the holder's lock has left
    handed: dict[str, Any] | None = None  # a stranded buffered run given the lock: publish it


@dataclass(frozen=True)
class TakeOver:
    outcome: str  # run | wait | replaced
    other: str = ""  # wait: the holder; replaced: the newer waiter; run: the holder it took over


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _run_of(raw: Any) -> dict[str, Any] | None:
    text = _text(raw)
    return json.loads(text) if text else None


def _keys(periodic_task_name: str) -> tuple[str, str, str, str]:
    return (
        redis_key(protocol.running_key(periodic_task_name)),
        redis_key(protocol.overlap_buffer_key(periodic_task_name)),
        redis_key(protocol.overlap_waiter_key(periodic_task_name)),
        redis_key(protocol.OVERLAP_BUFFERED_KEY),
    )


def overlap_decide(
    *,
    periodic_task_name: str,
    run_id: str,
    policy: str,
    ttl_seconds: float,
    run: dict[str, Any] | None = None,
    cap: int = BUFFER_CAP,
) -> Decision:
    """Decide, atomically, what a starting run of `periodic_task_name` does under `policy` (any
    but `allow`, which takes no lock).

    `run` is the run's message (`run_message`), kept when the run is buffered.
    """
    ttl_ms = int(ttl_seconds * 1000)
    if run is None and policy in ("buffer_one", "buffer_all"):
        run = {"id": run_id}
    # Kept with the lock's TTL its turn will take; only a buffering policy keeps it.
    message = json.dumps(dict(run, ttl=ttl_ms)) if run is not None else ""
    reply = _script(_DECIDE)(
        keys=list(_keys(periodic_task_name)),
        args=[run_id, ttl_ms, policy, message, cap, periodic_task_name],
    )
    outcome, holder, number, handed = reply
    return Decision(
        outcome=_text(outcome),
        holder=_text(holder),
        queued=int(number) if _text(outcome) != "cancel" else 0,
        holder_ttl_ms=int(number) if _text(outcome) == "cancel" else 0,
        handed=_run_of(handed),
    )


def overlap_take_over(
    *, periodic_task_name: str, run_id: str, ttl_seconds: float, dead_holder: str = ""
) -> TakeOver:
    """The waiter of `cancel_other`: take the lock if the holder let go (or is `dead_holder`)."""
    lock, _, waiter, _ = _keys(periodic_task_name)
    outcome, other = _script(_TAKE_OVER)(
        keys=[lock, waiter], args=[run_id, int(ttl_seconds * 1000), dead_holder]
    )
    return TakeOver(outcome=_text(outcome), other=_text(other))


def overlap_hand_over(*, periodic_task_name: str, holder: str) -> dict[str, Any] | None:
    """Let go of the lock (if `holder` still holds it): to the first buffered run, returned for
    the caller to publish again; `holder=""` hands a stranded buffer over if the lock is gone."""
    lock, buffer, _, buffered = _keys(periodic_task_name)
    raw = _script(_HAND_OVER)(keys=[lock, buffer, buffered], args=[holder, periodic_task_name])
    return _run_of(raw)


def overlap_holder(periodic_task_name: str) -> str | None:
    """The task id of the run holding the lock of `periodic_task_name`, if any."""
    raw = get_redis().get(_keys(periodic_task_name)[0])
    return None if raw is None else _text(raw)


def overlap_buffered(periodic_task_name: str) -> list[dict[str, Any]]:
    """The runs buffered for `periodic_task_name`, oldest first."""
    client: Any = get_redis()
    raws = client.lrange(_keys(periodic_task_name)[1], 0, -1)
    return [json.loads(_text(raw)) for raw in raws]


def stop_mark(task_id: str, reason: str, *, ttl_seconds: float) -> None:
    """Say why run `task_id` is being stopped, for its worker to store and log it."""
    get_redis().set(redis_key(protocol.overlap_stopped_key(task_id)), reason, ex=int(ttl_seconds))


def stop_reason(task_id: str) -> str | None:
    """Why run `task_id` was stopped by another run's overlap policy, if it was."""
    raw = get_redis().get(redis_key(protocol.overlap_stopped_key(task_id)))
    return None if raw is None else _text(raw)


def stop_reason_or_none(task_id: str) -> str | None:
    """`stop_reason`, or None when Redis cannot say (then Celery's own reason stands)."""
    try:
        return stop_reason(task_id)
    except (RedisError, OSError):
        return None


def run_message(request: Any, *, task_name: str) -> dict[str, Any]:
    """What publishing the run of `request` again takes (a buffered run, when its turn comes)."""
    queue = (request.delivery_info or {}).get("routing_key") or None
    return {
        "id": request.id,
        "task": task_name,
        "args": list(request.args or ()),
        "kwargs": dict(request.kwargs or {}),
        # The custom headers only (Celery's own are rebuilt on publishing).
        "headers": dict(request.headers or {}),
        "queue": queue,
        "timelimit": list(request.timelimit) if request.timelimit else None,
    }


def run_publish(
    run: dict[str, Any],
    *,
    headers: dict[str, Any],
    countdown: float | None = None,
    retries: int = 0,
) -> None:
    """Publish the run `run_message` described again, under its own task id, with `headers`
    (its custom ones, changed as the caller needs)."""
    hard, soft = run.get("timelimit") or (None, None)
    app.send_task(
        run["task"],
        args=run.get("args") or [],
        kwargs=run.get("kwargs") or {},
        task_id=run["id"],
        headers=headers,
        queue=run.get("queue"),
        countdown=countdown,
        retries=retries,
        time_limit=hard,
        soft_time_limit=soft,
    )


def overlap_publish(run: dict[str, Any]) -> None:
    """Publish a buffered run again, under its own task id, now that it holds the lock.

    Its header OVERLAP_TURN_HEADER counts its turns, so that its delivery claims a claim of its
    own (the first delivery's still stands: scheduler/worker/deduplication.py).
    """
    headers = dict(run.get("headers") or {})
    headers[protocol.OVERLAP_TURN_HEADER] = str(
        int(headers.get(protocol.OVERLAP_TURN_HEADER) or 0) + 1
    )
    name = str(headers.get(protocol.PERIODIC_TASK_HEADER) or "")
    try:
        run_publish(run, headers=headers)
    except Exception:
        # The broker is away: the run goes back to the front of the buffer and the lock is let
        # go, so the next run or a worker's heartbeat hands it over again.
        logger.warning("could not publish buffered run %s again", run.get("id"), exc_info=True)
        lock, buffer, _, buffered = _keys(name)
        _script(_GIVE_BACK)(keys=[lock, buffer, buffered], args=[run["id"], json.dumps(run), name])


def overlap_rescue() -> int:
    """Hand the lock to the first buffered run of every periodic task whose lock is gone (its
    holder died); returns how many were published again. One read when nothing is buffered."""
    client: Any = get_redis()
    names = client.smembers(redis_key(protocol.OVERLAP_BUFFERED_KEY))
    published = 0
    for raw in names:
        run = overlap_hand_over(periodic_task_name=_text(raw), holder="")
        if run is not None:
            logger.warning("buffered run %s was stranded: its turn now", run.get("id"))
            overlap_publish(run)
            published += 1
    return published
