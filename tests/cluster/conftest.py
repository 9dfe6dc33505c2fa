"""The cluster suite's hosts (tests/cluster/run.py made them and named them in CLUSTER_HOSTS),
and processes started on them: each stopped, process group and all, by the fixture that started
it. Outside `make cluster` the suite skips, saying how to run it."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from scheduler.devstack.stack import worker_argv
from tests.cluster.network import Host, Network
from tests.processes import RunningProcess, child_env, start_process

HOSTS_VARIABLE = "CLUSTER_HOSTS"


@dataclass
class Cluster(Network):
    """The hosts of this run (made by tests/cluster/run.py, not by the tests)."""

    # Redis's own address on the data host (run.py's `redis_address`).
    redis_address: str = ""

    def down(self) -> None:  # run.py removes them
        raise AssertionError("the cluster's hosts are removed by tests/cluster/run.py")


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    described = os.environ.get(HOSTS_VARIABLE)
    if not described:
        pytest.skip("the cluster suite runs on hosts of its own: `make cluster` (root)")
    found = json.loads(described)
    hosts = {host["name"]: Host(**host) for host in found["hosts"]}
    return Cluster(
        hosts=hosts,
        client_address=found["client"],
        redis_address=found["redis"],
        _prefix=found["switch"][:-7],
    )


StartOn = Callable[..., RunningProcess]


@pytest.fixture
def start_on(run_dir: Path) -> Iterator[StartOn]:
    """`start_on(host, name, argv, **env)`: a process on `host`, stopped after the test."""
    started: list[RunningProcess] = []

    def start(host: Host, name: str, argv: Sequence[str], **env: str) -> RunningProcess:
        running = start_process(
            f"{name}-{host.name}", host.wrap(argv), env=child_env(**env), log_dir=run_dir
        )
        started.append(running)
        return running

    yield start
    for running in reversed(started):
        running.stop()


def host_worker_argv(*, queues: Sequence[str], concurrency: int = 2) -> list[str]:
    """A worker named after the host it runs on (`worker@<hostname>`)."""
    return worker_argv(
        python=sys.executable,
        hostname="worker@%h",
        queues=queues,
        extra=("-c", str(concurrency), "--without-mingle", "--without-gossip"),
    )


FIGURES_VARIABLE = "CLUSTER_FIGURES"
RecordFigures = Callable[..., None]


@pytest.fixture(scope="session")
def record_figures() -> RecordFigures:
    """`record_figures(name, **figures)`: a test's measured figures, printed, and kept in the
    JSON file CLUSTER_FIGURES names (`make cluster`: benchmarks/results/cluster.json)."""

    def record(name: str, **figures: object) -> None:
        print(f"\ncluster: {name}: {json.dumps(figures)}")
        target = os.environ.get(FIGURES_VARIABLE)
        if not target:
            return
        path = Path(target)
        kept = json.loads(path.read_text()) if path.exists() else {}
        kept[name] = figures
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n")

    return record
