"""What each worker says of its pool when asked (`inspect stats`, a broadcast over the broker):
its kind, its size, its autoscale range. Every ask waits a bounded time for the answers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from config.celery import app
from scheduler.observability.worker_heartbeats import worker_queues, workers_seen_within

# Seconds a broadcast waits for replies; it returns sooner once every worker asked answered, so
# the wait is this long only for a worker that is gone. A busy worker can take seconds to answer
# (2 s was missed on a loaded machine). Read at each call (`reply_timeout`): tests that expect no
# answer shorten it.
REPLY_TIMEOUT = 5.0


def reply_timeout(timeout: float | None = None) -> float:
    return REPLY_TIMEOUT if timeout is None else timeout


@dataclass(frozen=True)
class Autoscale:
    max: int
    min: int


@dataclass(frozen=True)
class WorkerPool:
    """One worker's answer to `inspect stats`."""

    hostname: str
    # "prefork", "threads", "solo", "gevent", "eventlet" (the module of the pool's class).
    kind: str
    # Pool processes (threads, greenlets) running now, and the size the pool was started with.
    processes: int
    max_concurrency: int
    autoscale: Autoscale | None
    pid: int | None
    uptime: int | None
    prefetch_count: int | None

    @property
    def resizable(self) -> bool:
        return self.kind in RESIZABLE_POOLS

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# The pools Celery's pool_grow/pool_shrink can resize (the others have no grow/shrink).
RESIZABLE_POOLS = frozenset({"prefork", "gevent", "eventlet"})


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def pool_of(hostname: str, stats: Mapping[str, Any]) -> WorkerPool:
    """A worker's pool read from its `inspect stats` reply."""
    raw_pool = stats.get("pool")
    pool: dict[str, Any] = raw_pool if isinstance(raw_pool, dict) else {}
    implementation = str(pool.get("implementation", ""))
    # "celery.concurrency.prefork:TaskPool" -> "prefork".
    kind = implementation.partition(":")[0].rpartition(".")[2] or "unknown"
    limit = _int(pool.get("max-concurrency")) or 0
    processes = pool.get("processes")
    if isinstance(processes, list) and kind != "solo":
        size = len(processes)
    elif _int(pool.get("threads")) is not None:
        size = int(pool["threads"])
    else:
        size = limit
    scaler = stats.get("autoscaler")
    autoscale = None
    if isinstance(scaler, dict) and _int(scaler.get("max")) is not None:
        autoscale = Autoscale(max=int(scaler["max"]), min=_int(scaler.get("min")) or 0)
    return WorkerPool(
        hostname=hostname,
        kind=kind,
        processes=size,
        max_concurrency=limit,
        autoscale=autoscale,
        pid=_int(stats.get("pid")),
        uptime=_int(stats.get("uptime")),
        prefetch_count=_int(stats.get("prefetch_count")),
    )


@contextmanager
def own_connection() -> Iterator[Any]:
    """A broker connection of this broadcast's own, closed after it.

    Not one of the app's pooled connections: a broadcast that fails half-way (Redis gone while
    it waits for replies) would hand its connection back to the pool in a state the next
    `send_task` of the process fails on (an AttributeError inside kombu, a 500 where the API
    says 503). The dashboard's workers panel asks every few seconds, outage or not.
    """
    with app.connection_for_write() as connection:
        yield connection


def worker_pool(hostname: str, *, timeout: float | None = None) -> WorkerPool | None:
    """`hostname`'s pool, or None when it did not answer within `timeout` seconds."""
    wait = reply_timeout(timeout)
    with own_connection() as connection:
        inspect = app.control.inspect(
            destination=[hostname], timeout=wait, limit=1, connection=connection
        )
        replies = inspect.stats() or {}
    stats = replies.get(hostname)
    return pool_of(hostname, stats) if isinstance(stats, dict) else None


@dataclass(frozen=True)
class WorkerRow:
    """A worker as the workers list shows it: its pool when it answered, else None."""

    hostname: str
    last_seen: float | None
    queues: list[str]
    pool: WorkerPool | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "answered": self.pool is not None,
            "last_seen": (
                datetime.fromtimestamp(self.last_seen, UTC).isoformat()
                if self.last_seen is not None
                else None
            ),
            "queues": self.queues,
            "pool": self.pool.as_dict() if self.pool is not None else None,
        }


def worker_rows(*, window: float, timeout: float | None = None) -> list[WorkerRow]:
    """Every worker that answers `inspect stats`, and those heard from in the last `window`
    seconds that did not answer (busy, stopping, or gone since), by hostname."""
    seen = workers_seen_within(window)
    # Known workers bound the wait: it ends when all of them answered, else at `timeout`.
    wait = reply_timeout(timeout)
    with own_connection() as connection:
        inspect = app.control.inspect(timeout=wait, limit=len(seen) or None, connection=connection)
        replies = inspect.stats() or {}
    queues = worker_queues()
    return [
        WorkerRow(
            hostname=hostname,
            last_seen=seen.get(hostname),
            queues=sorted(queues.get(hostname, ())),
            pool=pool_of(hostname, replies[hostname])
            if isinstance(replies.get(hostname), dict)
            else None,
        )
        for hostname in sorted(set(seen) | set(replies))
    ]


def worker_answers(hostname: str, *, timeout: float | None = None) -> bool:
    """Whether `hostname` answers a ping within `timeout` seconds."""
    wait = reply_timeout(timeout)
    with own_connection() as connection:
        replies = (
            app.control.ping(destination=[hostname], timeout=wait, limit=1, connection=connection)
            or []
        )
    return any(hostname in reply for reply in replies)
