"""`manage.py scheduler retry ID` and `run-task TASK --params JSON`: a stored run queued again
and a catalog task run now without a schedule, through the services the API uses (audited as
`retried` and `task_run`, as the OS user or `--as` USER); and waiting for a run's result, which
`run --wait` and `test` do too.

A bad task, parameters or queue is one line naming the option (`--params: ...`) with exit code
1, and nothing is queued.
"""

from __future__ import annotations

import math
import time
from typing import Any

from celery import states
from celery.result import AsyncResult
from django.core.management.base import CommandError

from config.celery import app
from config.queues import QUEUES
from scheduler import selectors
from scheduler.catalog import UnknownTaskError, load_catalog
from scheduler.cli import output as out
from scheduler.cli.actor import ActorCommand
from scheduler.cli.alert_parsing import said_with_flags
from scheduler.cli.commands import Verbs
from scheduler.models import Source
from scheduler.services import ScheduleError, params_from_json, task_result_retry, task_run
from scheduler.worker.task_base import SKIPPED

# How often waits poll the result backend.
POLL_SECONDS = 0.2
# `run-task`'s arguments by the services' names.
RUN_TASK_FLAGS = {"task": "TASK", "params": "--params", "queue": "--queue"}


def add_run_verbs(verbs: Verbs) -> None:
    """`retry` and `run-task`."""
    retry = verbs.add_parser(
        "retry", help="run a stored run's task again with the same arguments, as a new task"
    )
    retry.add_argument("id", help="the task id of the stored run (see `history`)")

    run_task = verbs.add_parser(
        "run-task", help="run a catalog task now with the parameters given (no schedule)"
    )
    run_task.add_argument("task", help="catalog task (see `available`)")
    run_task.add_argument("--params", help="parameters as a JSON object (default: none)")
    run_task.add_argument("--queue", help=f"one of: {', '.join(QUEUES)} (default: the task's)")
    run_task.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="wait this long for the result and print it (exit 1 if it fails or is late)",
    )


def positive_seconds(value: float, *, flag: str) -> float:
    if not value > 0:
        raise CommandError(f"{flag} must be more than 0 seconds, not {value:g}")
    if not math.isfinite(value):
        raise CommandError(f"{flag} must be a finite number of seconds, not {value:g}")
    return value


def _catalog_queue(task: str) -> str:
    try:
        return load_catalog().get(task).queue
    except UnknownTaskError:
        return "default"


class RunVerbs(ActorCommand):
    """The verbs' handlers, and waiting for a run, for the command to inherit."""

    # Waits sleep through this, so that tests can drive the clock.
    sleep = staticmethod(time.sleep)

    def _retry(self, options: dict[str, Any]) -> None:
        task_id = options["id"]
        result = selectors.task_result(task_id)
        if result is None:
            raise CommandError(f"no stored result for task {task_id} (see `scheduler history`)")
        new_id = task_result_retry(
            result=result, actor=self.actor.user, actor_name=self.actor.name, source=Source.CLI
        )
        periodic_task_name = out.extended(result).periodic_task_name
        from_schedule = f" of {periodic_task_name!r}" if periodic_task_name else ""
        self._done(
            options,
            f"Queued {result.task_name}{from_schedule} again as task {new_id} (retry of "
            f"{task_id}, {result.status}).",
            {
                "task_id": new_id,
                "retry_of": task_id,
                "status_was": result.status,
                "task": result.task_name,
                "periodic_task": periodic_task_name or None,
            },
        )

    def _run_task(self, options: dict[str, Any]) -> None:
        wait = options["wait"]
        if wait is not None:
            positive_seconds(wait, flag="--wait")
        task = options["task"]
        try:
            task_id = task_run(
                task=task,
                params=params_from_json(options["params"]),
                queue=options["queue"],
                actor=self.actor.user,
                actor_name=self.actor.name,
                source=Source.CLI,
            )
        except ScheduleError as exc:
            raise CommandError(said_with_flags(exc, RUN_TASK_FLAGS)) from None
        queue = options["queue"] or _catalog_queue(task)
        queued = {"task_id": task_id, "task": task, "queue": queue}
        if not options["json"]:
            self._print(f"Queued {task} on queue {queue} as task {task_id}.")
        if wait is None:
            if options["json"]:
                self._json(queued)
            return
        self._show_result(options, queued, self._wait(task_id, timeout=wait, queue=queue))

    def _show_result(
        self, options: dict[str, Any], queued: dict[str, Any], result: AsyncResult[Any]
    ) -> None:
        """A run waited for, finished: its state, time, worker and result."""
        row = selectors.task_result(result.id)
        took = out.result_duration(row) if row is not None else None
        worker = out.extended(row).worker if row is not None else None
        if options["json"]:
            self._json(
                {
                    **queued,
                    "state": result.state,
                    "duration_seconds": took,
                    "worker": worker,
                    "result": result.result,
                }
            )
            return
        self._print(f"{result.state} in {out.seconds(took)} on {worker or 'a worker'}:")
        self._json(result.result)

    def _wait(self, task_id: str, *, timeout: float, queue: str) -> AsyncResult[Any]:
        """The finished result of `task_id`; CommandError if it failed, was skipped or is late."""
        result: AsyncResult[Any] = AsyncResult(task_id, app=app)
        deadline = time.monotonic() + timeout
        while True:
            state = result.state
            if state in states.READY_STATES or state == SKIPPED:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CommandError(
                    f"timed out after {timeout:g} s waiting for task {task_id} (state {state}): "
                    f"is a worker consuming queue {queue!r}? See `manage.py scheduler status`."
                )
            self.sleep(min(POLL_SECONDS, remaining))
        if state == states.SUCCESS:
            return result
        if state == SKIPPED:
            info = result.info if isinstance(result.info, dict) else {}
            raise CommandError(out.one_line(f"task {task_id} {info.get('reason', 'was skipped')}"))
        error = result.result
        why = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else state
        raise CommandError(out.one_line(f"task {task_id} ended in {state}: {why}"))
