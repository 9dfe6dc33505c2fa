"""Flower alongside (`stack up --with flower`): started as the stack starts it, on this run's
broker, it lists our worker and our tasks by name and state through its HTTP API, and refuses a
request without the basic auth FLOWER_BASIC_AUTH gives."""

from __future__ import annotations

import base64
import json
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler.devstack.stack import (
    flower_answers,
    flower_argv,
)
from scheduler.services import task_enqueue
from tests.processes import RunningProcess, child_env, start_process, start_worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CREDENTIALS = "watcher:a flower password"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def worker(django_db_setup: None, django_db_blocker: object, run_dir: Path) -> Iterator[Any]:
    running = start_worker(log_dir=run_dir, queues=["default"], concurrency=1)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def flower(worker: RunningProcess, run_dir: Path) -> Iterator[tuple[str, RunningProcess]]:
    port = _free_port()
    argv = flower_argv(python=sys.executable, host="127.0.0.1", port=port)
    running = start_process(
        "flower", argv, env=child_env(FLOWER_BASIC_AUTH=CREDENTIALS), log_dir=run_dir
    )
    try:
        wait_for(
            lambda: flower_answers("127.0.0.1", port) or running.process.poll() is not None,
            timeout=60,
            what="Flower to serve HTTP",
        )
        assert running.process.poll() is None, f"Flower exited:\n{running.log()}"
        yield f"http://127.0.0.1:{port}", running
    finally:
        running.stop()


def _get(url: str, *, auth: str | None = CREDENTIALS) -> tuple[int, Any]:
    request = urllib.request.Request(url)  # noqa: S310  (our own child, http)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  (our child)
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def test_flower_lists_our_worker_and_our_tasks_by_name_and_state(flower, worker) -> None:
    base, running = flower

    def worker_listed() -> bool:
        status, body = _get(f"{base}/api/workers?refresh=1")
        return status == 200 and worker.hostname in (body or {})

    wait_for(worker_listed, timeout=30, what=f"Flower to list the worker\n{running.log()}")
    succeeded = task_enqueue(task="scheduler.ping")
    failed = task_enqueue(task="scheduler.flaky", params={"pattern": "F", "key": succeeded})

    def tasks() -> dict[str, Any]:
        status, body = _get(f"{base}/api/tasks")
        assert status == 200
        return body or {}

    wait_for(
        lambda: (
            tasks().get(succeeded, {}).get("state") == "SUCCESS"
            and tasks().get(failed, {}).get("state") == "FAILURE"
        ),
        timeout=30,
        what=f"Flower to see both runs end\nFlower:\n{running.log()}\nworker:\n{worker.log()}",
    )
    listed = tasks()
    assert listed[succeeded]["name"] == "scheduler.ping"
    assert listed[failed]["name"] == "scheduler.flaky"
    assert listed[succeeded]["worker"] == worker.hostname


@pytest.mark.parametrize("auth", [None, "watcher:wrong password"])
def test_flower_refuses_a_request_without_the_credentials(flower, auth) -> None:
    base, _ = flower

    for path in ("/api/workers", "/api/tasks", "/"):
        status, _body = _get(f"{base}{path}", auth=auth)
        assert status == 401, path
