"""The worker's event loop helper: async task bodies on one loop per process, within their soft
time limit (scheduler/worker/event_loop.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from scheduler.worker.event_loop import loop_run, worker_loop


async def _answer(value: int) -> tuple[int, int]:
    await asyncio.sleep(0)
    return value, id(asyncio.get_running_loop())


def test_it_runs_coroutines_on_one_loop_kept_between_runs():
    first = loop_run(_answer(1))
    second = loop_run(_answer(2))

    assert (first[0], second[0]) == (1, 2)
    assert first[1] == second[1] == id(worker_loop())
    assert not worker_loop().is_closed()


def test_each_thread_has_its_own_loop():
    here = loop_run(_answer(1))[1]
    there: list[int] = []
    thread = threading.Thread(target=lambda: there.append(loop_run(_answer(2))[1]))
    thread.start()
    thread.join(timeout=5)

    assert len(there) == 1
    assert there[0] != here


def test_past_its_soft_limit_the_body_is_cancelled_and_cleans_up():
    cleaned: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("finally")

    with pytest.raises(SoftTimeLimitExceeded, match=r"soft time limit \(0.05 s\) exceeded"):
        loop_run(slow(), soft_limit=0.05)

    assert cleaned == ["finally"]
    assert loop_run(_answer(3))[0] == 3  # the loop is fine for the next run


def test_the_bodys_own_timeout_is_its_own_error():
    async def waits_for_something() -> None:
        await asyncio.wait_for(asyncio.sleep(10), timeout=0.01)

    with pytest.raises(TimeoutError):
        loop_run(waits_for_something(), soft_limit=5)


def test_the_pools_soft_limit_signal_cancels_a_body_waiting_on_the_loop():
    """The prefork pool raises SoftTimeLimitExceeded from its signal handler, wherever the
    process is: here, while the loop waits in its selector."""
    cleaned: list[str] = []

    def soft_limit_signal(signum: int, frame: object) -> None:
        raise SoftTimeLimitExceeded("the pool's soft limit")

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("finally")

    previous = signal.signal(signal.SIGUSR1, soft_limit_signal)
    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.start()
    try:
        with pytest.raises(SoftTimeLimitExceeded, match="the pool's soft limit"):
            loop_run(slow())
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)

    assert cleaned == ["finally"]
    assert loop_run(_answer(4))[0] == 4


def test_it_refuses_to_run_inside_a_running_loop():
    async def caller() -> None:
        loop_run(_answer(5))

    with pytest.raises(RuntimeError, match="inside a running event loop"):
        asyncio.run(caller())
