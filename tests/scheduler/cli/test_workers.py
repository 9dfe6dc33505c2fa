"""`manage.py scheduler worker list | grow | shrink | autoscale | shutdown` with real workers:
the pool each answers `inspect stats` with, resized there; autoscale refused, saying so, for a
worker started without `--autoscale`; a warm shutdown that stops that worker's process; each
control audited with source cli and the OS user; bad input one line and a non-zero exit.

The module shares one worker (`celery_worker`, two prefork processes) and leaves its pool as it
found it; the shutdown test starts a worker of its own.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from scheduler.models import AuditEntry
from scheduler.observability import worker_pools
from scheduler.observability.worker_pools import worker_pool
from tests.processes import RunningProcess, run_manage, start_worker, wait_for
from tests.scheduler.cli.helpers import scheduler, scheduler_json

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _wait_processes(worker: RunningProcess, count: int) -> None:
    wait_for(
        lambda: (pool := worker_pool(worker.hostname)) is not None and pool.processes == count,
        timeout=30,
        what=f"{worker.hostname} to run {count} pool processes\n{worker.log()}",
    )


def test_list_shows_each_worker_with_its_pool(celery_worker: RunningProcess) -> None:
    rows = {row["hostname"]: row for row in scheduler_json("worker", "list", "--json")}
    table = scheduler("worker", "list", "--tz", "Europe/Paris")

    assert rows[celery_worker.hostname]["pool"]["processes"] == 2
    assert rows[celery_worker.hostname]["pool"]["kind"] == "prefork"
    line = next(line for line in table.splitlines() if celery_worker.hostname in line)
    assert line.split()[1:4] == ["yes", "prefork", "2"]


def test_grow_then_shrink_show_in_inspect_stats_and_are_audited_with_the_os_user(
    celery_worker: RunningProcess,
) -> None:
    grown = scheduler("worker", "grow", celery_worker.hostname, "2")

    assert grown.strip() == f"{celery_worker.hostname}: pool will grow (processes 2 -> 4)."
    _wait_processes(celery_worker, 4)

    shrunk = scheduler_json("worker", "shrink", celery_worker.hostname, "2", "--json")

    assert shrunk["changes"] == {"processes": [4, 2]}
    _wait_processes(celery_worker, 2)
    trail = AuditEntry.objects.order_by("id")
    assert [
        (entry.periodic_task_name, entry.action, entry.source, entry.actor, entry.actor_name)
        for entry in trail
    ] == [
        (f"worker:{celery_worker.hostname}", action, "cli", None, getpass.getuser())
        for action in ("pool_grown", "pool_shrunk")
    ]


def test_autoscale_of_a_worker_started_without_it_says_so(celery_worker: RunningProcess) -> None:
    with pytest.raises(CommandError) as refused:
        scheduler("worker", "autoscale", celery_worker.hostname, "4", "1")

    assert f"worker {celery_worker.hostname} was not started with --autoscale" in str(refused.value)
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("grow", "{host}", "0"), "grow: must be a whole number from 1 to 64, not 0"),
        (("grow", "{host}", "63"), "grow: 2 + 63 processes is more than 64"),
        (("shrink", "{host}", "2"), "shrink: worker {host} has 2 process(es): shrink by at most 1"),
        (("grow", "{host}", "many"), "argument n: invalid int value: 'many'"),
        (("autoscale", "{host}", "2", "3"), "min: must not be more than max (2), not 3"),
        (("autoscale", "{host}"), "the following arguments are required: max"),
        (("grow", "not a host!", "1"), "hostname: 'not a host!' is not a worker hostname"),
        (("restart", "{host}"), "invalid choice: 'restart'"),
    ],
)
def test_bad_input_is_refused_in_one_line_and_changes_nothing(
    celery_worker: RunningProcess, args: tuple[str, ...], message: str
) -> None:
    host = celery_worker.hostname

    with pytest.raises(CommandError) as refused:
        scheduler("worker", *(arg.format(host=host) for arg in args))

    assert message.format(host=host) in str(refused.value)
    assert not AuditEntry.objects.exists()
    assert worker_pool(host).processes == 2  # type: ignore[union-attr]


def test_a_hostname_no_worker_answers_for_exits_1_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_pools, "REPLY_TIMEOUT", 0.5)

    with pytest.raises(CommandError) as refused:
        scheduler("worker", "shutdown", "nobody@nowhere")

    assert str(refused.value) == (
        "no worker named nobody@nowhere answered within 0.5 s "
        "(`manage.py scheduler worker list` lists the workers online)"
    )


def test_from_a_shell_bad_numbers_exit_non_zero_with_one_line() -> None:
    result = run_manage("scheduler", "worker", "grow", "w@host", "0")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: grow: must be a whole number from 1 to 64, not 0"
    ]


@pytest.fixture
def spare_worker(run_dir: Path) -> Iterator[RunningProcess]:
    running = start_worker(log_dir=run_dir, queues=["default"], concurrency=1)
    try:
        yield running
    finally:
        running.stop()


def test_shutdown_stops_that_worker_alone_warm(
    spare_worker: RunningProcess, celery_worker: RunningProcess
) -> None:
    said = scheduler("worker", "shutdown", spare_worker.hostname)

    assert said.strip() == (
        f"{spare_worker.hostname}: warm shutdown requested: it finishes the tasks it runs, then "
        "exits (state running -> shutting down)."
    )
    wait_for(
        lambda: spare_worker.process.poll() is not None,
        timeout=30,
        what=f"{spare_worker.hostname} to exit\n{spare_worker.log()}",
    )
    assert spare_worker.process.poll() == 0
    assert celery_worker.process.poll() is None
    entry = AuditEntry.objects.get()
    assert (entry.periodic_task_name, entry.action, entry.actor_name) == (
        f"worker:{spare_worker.hostname}",
        "shut_down",
        getpass.getuser(),
    )
