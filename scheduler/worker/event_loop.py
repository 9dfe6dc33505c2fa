"""The worker's event loop helper: task bodies written as `async def` run here.

One loop per pool process (per thread, for a thread pool: a loop runs in one thread at a time),
made on first use and kept for the next runs, so that what an async client caches on its loop
(connection pools, an `AsyncOpenAI` client's transport) lives as long as the process; a forked
child makes its own, since a loop does not survive a fork. `asyncio.run` per task would make and
close a loop every time.

Time limits still apply. The soft limit cancels the body at its next `await` (it sees
`asyncio.CancelledError` and may clean up in `finally`) and the run ends with
`SoftTimeLimitExceeded`, as a synchronous body would; the pool's own soft limit signal, which
may land while the loop waits, is handled the same way, and its hard limit kills the process as
for any task.

Django's ORM refuses to be called synchronously from a coroutine: an async body uses the async
ORM (`await Model.objects.aget(...)`) or `sync_to_async`, which run it in asgiref's one thread
for that purpose; that thread's connections are closed around each run when unusable or past
their age, as Celery does for the worker's own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from celery.exceptions import SoftTimeLimitExceeded
from django.db import close_old_connections

T = TypeVar("T")

# How long a cancelled body gets to run its clean-up before the run gives up waiting for it (the
# hard limit, a few seconds later, kills the process anyway).
CANCEL_GRACE = 2.0


class _PerThread(threading.local):
    loop: asyncio.AbstractEventLoop | None = None
    pid: int = 0


_local = _PerThread()


def worker_loop() -> asyncio.AbstractEventLoop:
    """This process's (and thread's) loop, made on first use."""
    loop = _local.loop
    if loop is None or loop.is_closed() or _local.pid != os.getpid():
        # A loop inherited through fork belongs to the parent: its selector and self-pipe are
        # shared with it. Left unclosed on purpose: closing it would close the parent's too.
        loop = asyncio.new_event_loop()
        _local.loop, _local.pid = loop, os.getpid()
    return loop


def loop_run(
    coroutine: Coroutine[Any, Any, T],
    *,
    soft_limit: float | None = None,
    close_connections: bool = True,
) -> T:
    """Run `coroutine` to its end on the worker's loop and return its result; past `soft_limit`
    seconds it is cancelled and SoftTimeLimitExceeded raised (module docstring).

    `close_connections`: close the async ORM thread's unusable or old connections around the
    run, as a worker does (not in a run in the caller: that process manages its own)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coroutine.close()
        raise RuntimeError(
            "an async task body cannot run from inside a running event loop: queue the task "
            "(delay/apply_async) or await its function directly"
        )
    loop = worker_loop()
    task = loop.create_task(_bounded(coroutine, soft_limit, close_connections))
    try:
        return loop.run_until_complete(task)
    except BaseException:
        # The pool's soft limit signal (or a KeyboardInterrupt) raised out of the loop while it
        # waited: the body is still pending on the loop, cancel it and let it clean up.
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(asyncio.wait({task}, timeout=CANCEL_GRACE))
        raise
    finally:
        if close_connections:
            loop.run_until_complete(_close_old_connections())


async def _bounded(
    coroutine: Coroutine[Any, Any, T], soft_limit: float | None, close_connections: bool
) -> T:
    if close_connections:
        await _close_old_connections()
    if soft_limit is None or soft_limit <= 0:
        return await coroutine
    try:
        async with asyncio.timeout(soft_limit) as window:
            return await coroutine
    except TimeoutError:
        if window.expired():
            raise SoftTimeLimitExceeded(f"soft time limit ({soft_limit:g} s) exceeded") from None
        raise  # the body's own timeout


async def _close_old_connections() -> None:
    # In the thread that async ORM calls run in (asgiref's thread for sync code), not this one.
    await sync_to_async(close_old_connections, thread_sensitive=True)()
