"""A worker's pool read from its `inspect stats` reply, as each kind of pool gives it."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.observability.worker_pools import Autoscale, pool_of

PREFORK = {
    "implementation": "celery.concurrency.prefork:TaskPool",
    "max-concurrency": 2,
    "processes": [101, 102, 103],
}


@pytest.mark.parametrize(
    ("stats", "kind", "processes", "autoscale", "resizable"),
    [
        ({"pool": PREFORK, "pid": 100}, "prefork", 3, None, True),
        (
            {"pool": PREFORK, "autoscaler": {"max": 5, "min": 1, "current": 3, "qty": 0}},
            "prefork",
            3,
            Autoscale(max=5, min=1),
            True,
        ),
        (
            {
                "pool": {
                    "implementation": "celery.concurrency.solo:TaskPool",
                    "max-concurrency": 1,
                    "processes": [100],
                }
            },
            "solo",
            1,
            None,
            False,
        ),
        (
            {
                "pool": {
                    "implementation": "celery.concurrency.thread:TaskPool",
                    "max-concurrency": 8,
                    "threads": 4,
                }
            },
            "thread",
            4,
            None,
            False,
        ),
        ({"pool": "N/A"}, "unknown", 0, None, False),
        ({}, "unknown", 0, None, False),
    ],
)
def test_it_reads_the_kind_size_and_autoscale_of_each_pool(
    stats: dict[str, Any], kind: str, processes: int, autoscale: Autoscale | None, resizable: bool
) -> None:
    pool = pool_of("w@host", stats)

    assert (pool.kind, pool.processes, pool.autoscale, pool.resizable) == (
        kind,
        processes,
        autoscale,
        resizable,
    )
