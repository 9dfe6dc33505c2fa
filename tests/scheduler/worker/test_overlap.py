"""The overlap policy's decisions, made by Lua scripts in the real Redis: what happens to a second
and a third overlapping run under each policy, the hand-over of the lock, and stale locks."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.protocol import (
    OVERLAP_BUFFERED_KEY,
    OVERLAP_TURN_HEADER,
    overlap_buffer_key,
    overlap_waiter_key,
    running_key,
)
from scheduler.worker import overlap, receivers
from scheduler.worker.overlap import (
    overlap_buffered,
    overlap_decide,
    overlap_hand_over,
    overlap_holder,
    overlap_rescue,
    overlap_take_over,
)
from tests.processes import wait_for

TTL = 70.0  # seconds: a hard limit of 10 and the margin


def redis() -> Any:
    return get_redis()


@pytest.fixture
def name() -> str:
    return f"overlapping {uuid.uuid4().hex[:8]}"


def decide(name: str, run_id: str, policy: str, *, cap: int = 1000, ttl: float = TTL) -> Any:
    message = {"id": run_id, "task": "scheduler.sleep", "kwargs": {"seconds": 1}}
    return overlap_decide(
        periodic_task_name=name, run_id=run_id, policy=policy, ttl_seconds=ttl, run=message, cap=cap
    )


def summary(decision: Any) -> tuple[str, str, int]:
    return (decision.outcome, decision.holder, decision.queued)


# policy -> what the 1st, 2nd and 3rd run started while the 1st runs are told, and who holds the
# lock after the three (outcome, the run overlapped, its place in the buffer or how many are).
DECISIONS = [
    ("skip", [("run", "", 0), ("skip", "r1", 0), ("skip", "r1", 0)], "r1"),
    ("buffer_one", [("run", "", 0), ("buffer", "r1", 1), ("skip", "r1", 1)], "r1"),
    ("buffer_all", [("run", "", 0), ("buffer", "r1", 1), ("buffer", "r1", 2)], "r1"),
    ("cancel_other", [("run", "", 0), ("cancel", "r1", 0), ("cancel", "r1", 0)], "r1"),
    ("terminate_other", [("run", "", 0), ("terminate", "r1", 0), ("terminate", "r2", 0)], "r3"),
]


@pytest.mark.parametrize(("policy", "expected", "holder"), DECISIONS, ids=[d[0] for d in DECISIONS])
def test_it_decides_the_second_and_third_overlapping_run(name, policy, expected, holder):
    decisions = [decide(name, run_id, policy) for run_id in ("r1", "r2", "r3")]

    assert [summary(decision) for decision in decisions] == expected
    assert overlap_holder(name) == holder
    buffered = [run["id"] for run in overlap_buffered(name)]
    assert buffered == {"buffer_one": ["r2"], "buffer_all": ["r2", "r3"]}.get(policy, [])


def test_the_lock_expires_after_the_runs_hard_limit_and_a_margin(name):
    decide(name, "r1", "skip", ttl=12.5)

    left = redis().pttl(redis_key(running_key(name)))
    assert 12_000 < left <= 12_500


def test_buffer_all_keeps_at_most_its_cap(name):
    outcomes = [summary(decide(name, f"r{n}", "buffer_all", cap=2)) for n in range(1, 5)]

    assert outcomes[3] == ("skip", "r1", 2)
    assert [run["id"] for run in overlap_buffered(name)] == ["r2", "r3"]


def test_a_buffer_expires_no_later_than_the_runs_ahead_of_it_may_take(name):
    for run_id in ("r1", "r2", "r3"):
        decide(name, run_id, "buffer_all")

    left = redis().pttl(redis_key(overlap_buffer_key(name)))
    # The holder's lock (70 s) and the two buffered runs' hard limits and margins.
    assert 140_000 < left <= 210_000


def test_buffered_runs_get_the_lock_in_order_as_each_run_ends(name):
    for run_id in ("r1", "r2", "r3"):
        decide(name, run_id, "buffer_all")

    handed = []
    for holder in ("r1", "r2", "r3"):
        run = overlap_hand_over(periodic_task_name=name, holder=holder)
        handed.append(run and run["id"])
        assert overlap_holder(name) == (run and run["id"])

    assert handed == ["r2", "r3", None]
    assert not redis().sismember(redis_key(OVERLAP_BUFFERED_KEY), name)
    # The message kept is what publishing it again takes, and its lock lives as long.
    decide(name, "r4", "buffer_all")
    decide(name, "r5", "buffer_all")
    run = overlap_hand_over(periodic_task_name=name, holder="r4")
    assert run == {"id": "r5", "task": "scheduler.sleep", "kwargs": {"seconds": 1}, "ttl": 70_000}


def test_only_the_holder_hands_the_lock_over(name):
    decide(name, "r1", "buffer_one")
    decide(name, "r2", "buffer_one")

    assert overlap_hand_over(periodic_task_name=name, holder="r9") is None
    assert overlap_hand_over(periodic_task_name=name, holder="") is None  # the lock is there

    assert overlap_holder(name) == "r1"
    assert [run["id"] for run in overlap_buffered(name)] == ["r2"]


def test_a_run_handed_the_lock_runs_when_it_arrives(name):
    decide(name, "r1", "buffer_one")
    decide(name, "r2", "buffer_one")
    overlap_hand_over(periodic_task_name=name, holder="r1")

    # Its turn: the same decision script finds the lock its own, under any policy.
    assert summary(decide(name, "r2", "buffer_one")) == ("run", "", 0)
    # A run arriving meanwhile is buffered behind it.
    assert summary(decide(name, "r3", "buffer_one")) == ("buffer", "r2", 1)


def test_a_stale_lock_expires_and_a_worker_hands_the_buffered_run_its_turn(name, monkeypatch):
    published: list[str] = []
    monkeypatch.setattr(overlap, "overlap_publish", lambda run: published.append(run["id"]))
    first, second = f"{name} r1", f"{name} r2"  # the rescue looks at every periodic task
    decide(name, first, "buffer_all", ttl=0.2)  # its worker dies: nobody hands over
    decide(name, second, "buffer_all")

    overlap_rescue()
    assert second not in published  # the lock still stands
    wait_for(lambda: overlap_holder(name) is None, timeout=5, what="the stale lock to expire")
    overlap_rescue()

    assert published.count(second) == 1
    assert overlap_holder(name) == second
    overlap_rescue()
    assert published.count(second) == 1


def test_a_run_that_finds_a_stale_lock_hands_the_buffered_run_its_turn_first(name):
    decide(name, "r1", "buffer_all", ttl=0.2)
    decide(name, "r2", "buffer_all")
    wait_for(lambda: overlap_holder(name) is None, timeout=5, what="the stale lock to expire")

    decision = decide(name, "r3", "buffer_all")

    # r2 was buffered first: it gets the lock (the caller publishes it), r3 waits behind it.
    assert summary(decision) == ("buffer", "r2", 1)
    assert decision.handed is not None
    assert decision.handed["id"] == "r2"
    assert overlap_holder(name) == "r2"


def test_buffer_one_drops_a_run_that_finds_a_stale_buffered_run_ahead_of_it(name):
    decide(name, "r1", "buffer_one", ttl=0.2)
    decide(name, "r2", "buffer_one")
    wait_for(lambda: overlap_holder(name) is None, timeout=5, what="the stale lock to expire")

    decision = decide(name, "r3", "buffer_one")

    assert summary(decision) == ("buffer", "r2", 1)  # r2 runs now, r3 is the one kept
    assert decide(name, "r4", "buffer_one").outcome == "skip"


def test_cancel_other_waiters_wait_for_the_holder_and_the_newest_replaces_the_older(name):
    decide(name, "r1", "cancel_other")
    second = decide(name, "r2", "cancel_other")
    decide(name, "r3", "cancel_other")

    assert 0 < second.holder_ttl_ms <= 70_000
    take: dict[str, Any] = {"periodic_task_name": name, "ttl_seconds": TTL}
    assert overlap_take_over(run_id="r2", **take) == overlap.TakeOver("replaced", "r3")
    assert overlap_take_over(run_id="r3", **take) == overlap.TakeOver("wait", "r1")

    overlap_hand_over(periodic_task_name=name, holder="r1")  # r1 stopped and let go

    assert overlap_take_over(run_id="r3", **take) == overlap.TakeOver("run", "")
    assert overlap_holder(name) == "r3"
    assert redis().get(redis_key(overlap_waiter_key(name))) is None


def test_cancel_other_takes_the_lock_of_a_holder_past_its_hard_limit(name):
    decide(name, "r1", "cancel_other")
    decide(name, "r2", "cancel_other")

    turn = overlap_take_over(
        periodic_task_name=name, run_id="r2", ttl_seconds=TTL, dead_holder="r1"
    )

    assert turn == overlap.TakeOver("run", "r1")
    assert overlap_holder(name) == "r2"


def test_a_waiter_is_replaced_by_a_newer_run_that_finds_the_lock_free(name):
    decide(name, "r1", "cancel_other")
    decide(name, "r2", "cancel_other")
    overlap_hand_over(periodic_task_name=name, holder="r1")

    assert decide(name, "r3", "cancel_other").outcome == "run"

    turn = overlap_take_over(periodic_task_name=name, run_id="r2", ttl_seconds=TTL)
    assert turn == overlap.TakeOver("replaced", "r3")
    assert overlap_holder(name) == "r3"


def test_a_buffered_run_that_cannot_be_published_goes_back_to_the_front(name, monkeypatch):
    decide(name, "r1", "buffer_all")
    decide(name, "r2", "buffer_all")
    decide(name, "r3", "buffer_all")
    run = overlap_hand_over(periodic_task_name=name, holder="r1")
    assert run is not None

    def broker_away(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker away")

    monkeypatch.setattr(overlap.app, "send_task", broker_away)
    overlap.overlap_publish({**run, "headers": {"periodic_task_name": name}})

    assert overlap_holder(name) is None
    assert [queued["id"] for queued in overlap_buffered(name)] == ["r2", "r3"]
    assert redis().sismember(redis_key(OVERLAP_BUFFERED_KEY), name)


def test_a_buffered_run_is_published_again_under_its_own_id_with_its_turn(monkeypatch):
    sent: list[tuple[Any, ...]] = []
    monkeypatch.setattr(overlap.app, "send_task", lambda *a, **kw: sent.append((a, kw)))
    run: dict[str, Any] = {
        "id": "r2",
        "task": "scheduler.sleep",
        "args": [],
        "kwargs": {"seconds": 1},
        "headers": {"periodic_task_name": "p", "scheduled_for": "2027-01-01T00:00:00+00:00"},
        "queue": "default",
        "timelimit": [20, 15],
        "ttl": 80_000,
    }

    overlap.overlap_publish(run)
    overlap.overlap_publish({**run, "headers": sent[0][1]["headers"]})

    (args, options), (_, again) = sent
    assert args == ("scheduler.sleep",)
    assert options["task_id"] == "r2"
    assert options["kwargs"] == {"seconds": 1}
    assert options["queue"] == "default"
    assert (options["time_limit"], options["soft_time_limit"]) == (20, 15)
    assert options["headers"] == {**run["headers"], OVERLAP_TURN_HEADER: "1"}
    assert again["headers"][OVERLAP_TURN_HEADER] == "2"


def test_a_workers_heartbeat_looks_for_stranded_buffered_runs(name, monkeypatch):
    published: list[str] = []
    monkeypatch.setattr(overlap, "overlap_publish", lambda run: published.append(run["id"]))
    first, second = f"{name} r1", f"{name} r2"  # the rescue looks at every periodic task
    decide(name, first, "buffer_one", ttl=0.2)
    decide(name, second, "buffer_one")
    wait_for(lambda: overlap_holder(name) is None, timeout=5, what="the stale lock to expire")

    receivers._rescue_buffered_runs()

    assert second in published
    assert overlap_holder(name) == second


@pytest.mark.parametrize("policy", ["cancel_other", "terminate_other"])
def test_a_run_that_stops_others_leaves_a_stranded_buffer_for_later(name, policy):
    decide(name, "r1", "buffer_all", ttl=0.2)
    decide(name, "r2", "buffer_all")
    wait_for(lambda: overlap_holder(name) is None, timeout=5, what="the stale lock to expire")

    decision = decide(name, "r3", policy)

    assert (decision.outcome, decision.handed) == ("run", None)
    assert overlap_holder(name) == "r3"
    # r3's end hands r2 its turn.
    assert overlap_hand_over(periodic_task_name=name, holder="r3") == {
        "id": "r2",
        "task": "scheduler.sleep",
        "kwargs": {"seconds": 1},
        "ttl": 70_000,
    }
