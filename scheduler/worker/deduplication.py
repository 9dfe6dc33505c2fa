"""At most one execution of a task's attempt, however often the broker delivers it.

Redis hands a message out again when
- the worker holding it died (kill -9, out of memory, machine lost) or was cut off the network:
  its unacknowledged messages come back after the visibility timeout;
- a pool child died mid-run: the run is requeued at once (`task_reject_on_worker_lost`);
- its ETA or countdown lies further ahead than the visibility timeout: the message is restored
  while a worker still holds it, so two workers (or one, twice) hold it and both run it at its
  ETA, and again every visibility timeout (kombu issue #337).

So before a run's body starts, the worker claims the attempt (task id and retry count) in Redis
with `SET NX`, naming itself: host, pid, the process's start time, the worker node and a token
of this delivery. The claim is a lease: it lasts the run's hard time limit and a margin, and no
execution of the attempt can still be going when it ends (the pool kills a run at its hard
limit, and the run's own watchdog does if the pool cannot: scheduler/worker/watchdog.py). It is
not released at the end: a redelivered, ETA or periodic copy first reads the stored state, and a
SUCCESS there is final.

A copy that finds the claim taken looks at its holder:
- on this host, the holder is alive while its pid is (and is the same process): alive, the copy
  is dropped (acknowledged); dead, the copy takes the claim over and runs at once;
- on another host, nothing is asked of it: a host cut off the network answers nobody, and
  asking would spend the run's own time budget. The copy is published again to run when the
  lease ends (`Claim.lease_left`, header CLAIM_DEFERRED_HEADER) and acknowledged; then a stored
  SUCCESS drops it, and otherwise it claims the ended lease and runs, recorded as a possible
  second execution (the agents' side effects still happen once, through their idempotency keys).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from scheduler import protocol
from scheduler.core.redis_connection import get_redis, redis_key

# Compare-and-set: take over a claim only if it still names the holder found dead.
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    return 1
end
return 0
"""


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    started: float  # the process's start time (epoch): a pid reused by another process is not it
    node: str  # the Celery worker node, asked from another host whether it runs the task
    # The same start in seconds since the host booted, which no clock change moves; None from a
    # worker before it (whose readers compare `started`, and ignore this).
    booted: float | None = None
    token: str = ""  # this delivery: a holder with another token is another copy (kept last)

    def encode(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def decode(cls, raw: bytes | str) -> Holder | None:
        try:
            fields = json.loads(raw)
            return cls(
                host=str(fields["host"]),
                pid=int(fields["pid"]),
                started=float(fields["started"]),
                node=str(fields["node"]),
                booted=None if fields.get("booted") is None else float(fields["booted"]),
                token=str(fields.get("token", "")),
            )
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True)
class Claim:
    acquired: bool
    took_over: bool = False
    holder: Holder | None = None  # who runs it, when not acquired
    # Seconds the claim of a holder on another host still lasts: the copy runs after them.
    lease_left: float = 0.0


def claim_key(task_id: str, retries: int, turn: int = 0) -> str:
    return redis_key(protocol.claim_key(task_id, retries, turn))


# pid -> that process's start time (epoch, since boot); a forked pool child looks its own up.
_start_times: dict[int, tuple[float, float]] = {}


def this_holder(node: str, token: str = "") -> Holder:
    pid = os.getpid()
    times = _start_times.get(pid)
    if times is None:
        process = psutil.Process(pid)
        times = _start_times[pid] = (process.create_time(), _since_boot(process))
    return Holder(
        host=socket.gethostname(),
        pid=pid,
        started=times[0],
        node=node,
        booted=times[1],
        token=token,
    )


# (pid, node) -> the encoded claim of this process up to its token: encoded once, since every
# run of a worker claims its attempt with it. `Holder.encode` puts the token last.
_encoded_holders: dict[tuple[int, str], str] = {}
_EMPTY_LAST_FIELD = '""}'


def _encoded_holder(node: str, token: str) -> str:
    """`this_holder(node, token).encode()`, without encoding the rest again."""
    key = (os.getpid(), node)
    head = _encoded_holders.get(key)
    if head is None:
        encoded = this_holder(node, "").encode()
        head = _encoded_holders[key] = encoded.removesuffix(_EMPTY_LAST_FIELD)
    return head + json.dumps(token) + "}"


def holder_alive(holder: Holder) -> bool:
    """Whether the process on this host that claimed a run is still alive (same pid, same
    process). A holder on another host is not asked (module docstring): its lease decides."""
    try:
        process = psutil.Process(holder.pid)
        if holder.booted is None:  # a holder from a worker before boot-relative times
            same = abs(process.create_time() - holder.started) < 1.0
        else:
            same = abs(_since_boot(process) - holder.booted) < 1.0
        return same and process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _since_boot(process: psutil.Process) -> float:
    """When `process` started, in seconds since the host booted.

    psutil's epoch time of it is the boot time plus the ticks since boot, and the boot time is
    worked out from the wall clock each time it is read, so it moves whenever the clock is
    stepped, and by a whole second whenever its rounding flips (a live holder was taken for a
    dead one: tests/scheduler/worker/test_deduplication.py). The ticks do not move.
    """
    return process.create_time() - psutil.boot_time()


def claim_run(*, task_id: str, retries: int, node: str, ttl_seconds: float, turn: int = 0) -> Claim:
    """Claim one attempt of a task for this delivery (module docstring); `turn`: the delivery
    of a buffered run published again when its turn came (scheduler/worker/overlap.py)."""
    redis: Any = get_redis()
    key = claim_key(task_id, retries, turn)
    me = _encoded_holder(node, uuid.uuid4().hex)
    ttl_ms = int(ttl_seconds * 1000)
    if redis.set(key, me, nx=True, px=ttl_ms):
        return Claim(acquired=True)
    raw = redis.get(key)
    if raw is None:  # expired between the two calls
        return Claim(acquired=bool(redis.set(key, me, nx=True, px=ttl_ms)))
    holder = Holder.decode(raw)
    if holder is not None and holder.host != socket.gethostname():
        left_ms = int(redis.pttl(key))
        if left_ms == -2:  # expired since it was read
            return Claim(acquired=bool(redis.set(key, me, nx=True, px=ttl_ms)))
        # -1: a claim without an expiry (never written so): a whole lease from now.
        left = left_ms / 1000 if left_ms > 0 else ttl_seconds
        return Claim(acquired=False, holder=holder, lease_left=left)
    if holder is not None and holder_alive(holder):
        return Claim(acquired=False, holder=holder)
    if redis.eval(_TAKE_OVER, 1, key, raw, me, ttl_ms):
        return Claim(acquired=True, took_over=True, holder=holder)
    return Claim(acquired=False, holder=Holder.decode(redis.get(key) or b""))
