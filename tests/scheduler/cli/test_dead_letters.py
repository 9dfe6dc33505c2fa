"""`manage.py scheduler dead-letters | requeue ID | discard ID`: the letters listed (arguments
masked in JSON), requeued through the catalog, discarded; every refusal one line, exit code 1
(2 for a usage error from the shell), nothing changed."""

from __future__ import annotations

import json

import pytest
from django.core.management.base import CommandError

from scheduler.core.masking import MASK
from scheduler.models import AuditEntry, DeadLetter
from tests.factories import make_dead_letter
from tests.processes import child_env, run_manage
from tests.queues import take_queued
from tests.scheduler.cli.helpers import scheduler, scheduler_json

pytestmark = pytest.mark.django_db


def test_it_lists_the_open_letters_newest_first():
    older = make_dead_letter(periodic_task_name="nightly sleep")
    newer = make_dead_letter(error="ValueError: bad input")
    make_dead_letter(status=DeadLetter.Status.DISCARDED)

    lines = scheduler("dead-letters", "--tz", "UTC").splitlines()

    assert lines[0].split() == [
        *("ID", "FAILED", "STATUS", "TASK", "PERIODIC", "TASK", "ATTEMPTS", "ERROR", "TASK", "ID")
    ]
    assert len(lines) == 3
    assert lines[1].startswith(str(newer.pk))
    assert "ValueError: bad input" in lines[1]
    assert newer.task_id in lines[1]
    assert "nightly sleep" in lines[2]
    assert older.task_id in lines[2]


def test_it_filters_limits_and_prints_json_with_the_arguments_masked():
    make_dead_letter(kwargs={"seconds": 1, "api_key": "k-123"})
    make_dead_letter(task_name="scheduler.ping", kwargs={})
    gone = make_dead_letter(status=DeadLetter.Status.DISCARDED)

    of_sleep = scheduler_json("dead-letters", "--task", "scheduler.sleep", "--json")
    newest = scheduler_json("dead-letters", "--limit", "1", "--json")
    everything = scheduler_json("dead-letters", "--status", "all", "--json")

    assert [row["kwargs"] for row in of_sleep] == [{"seconds": 1, "api_key": MASK}]
    assert [row["task_name"] for row in newest] == ["scheduler.ping"]
    assert len(everything) == 3
    assert everything[0]["id"] == gone.pk
    assert everything[0]["failed_at"].endswith("+00:00")


def test_it_says_when_there_is_none():
    assert scheduler("dead-letters").strip() == "No dead letters (open)."


def test_requeue_queues_a_new_run_audited_as_the_command_line(django_capture_on_commit_callbacks):
    letter = make_dead_letter()

    with django_capture_on_commit_callbacks(execute=True):
        printed = scheduler("requeue", str(letter.pk)).strip()

    letter.refresh_from_db()
    assert printed == (
        f"Requeued dead letter {letter.pk} (scheduler.sleep, task {letter.task_id}) "
        f"as task {letter.requeued_as}."
    )
    assert take_queued("default", letter.requeued_as) is not None
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.source, entry.actor) == ("requeued", "cli", None)


def test_discard_closes_a_letter():
    letter = make_dead_letter()

    printed = scheduler("discard", str(letter.pk)).strip()

    assert printed == f"Discarded dead letter {letter.pk} (scheduler.sleep, task {letter.task_id})."
    assert DeadLetter.objects.get().status == DeadLetter.Status.DISCARDED


REFUSALS = [
    (["requeue", "999999"], "no dead letter with id 999999"),
    (["discard", "999999"], "no dead letter with id 999999"),
    (["requeue", "{resolved}"], "was discarded already"),
    (["discard", "{resolved}"], "was discarded already"),
    (["requeue", "{removed}"], "task: unknown task 'billing.send_invoices'"),
    (["requeue", "{invalid}"], "params: "),
    (["requeue", "seven"], "invalid int value: 'seven'"),
    (["dead-letters", "--status", "lost"], "invalid choice: 'lost'"),
    (["dead-letters", "--limit", "0"], "--limit 0 is out of range 1-10000"),
]


@pytest.mark.parametrize(("argv", "message"), REFUSALS, ids=[" ".join(a) for a, _ in REFUSALS])
def test_it_refuses_with_one_line_and_changes_nothing(argv, message):
    letters = {
        "resolved": make_dead_letter(status=DeadLetter.Status.DISCARDED),
        "removed": make_dead_letter(task_name="billing.send_invoices", kwargs={}),
        "invalid": make_dead_letter(kwargs={"seconds": 99}),
    }
    before = list(DeadLetter.objects.order_by("pk").values_list("status", "requeued_as"))

    with pytest.raises(CommandError) as error:
        scheduler(*(arg.format(**{k: v.pk for k, v in letters.items()}) for arg in argv))

    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert list(DeadLetter.objects.order_by("pk").values_list("status", "requeued_as")) == before
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_from_the_shell_a_refusal_is_one_line_and_exit_code_1():
    resolved = make_dead_letter(status=DeadLetter.Status.REQUEUED)

    finished = run_manage("scheduler", "discard", str(resolved.pk), env=child_env())
    listed = run_manage("scheduler", "dead-letters", "--status", "all", "--json", env=child_env())

    assert finished.returncode == 1
    assert finished.stdout == ""
    assert (
        finished.stderr.strip() == f"CommandError: dead letter {resolved.pk} was requeued already"
    )
    assert listed.returncode == 0, listed.stderr
    assert [row["id"] for row in json.loads(listed.stdout)] == [resolved.pk]
