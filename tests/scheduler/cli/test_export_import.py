"""`scheduler export` and `scheduler import`: schedules kept in git and promoted between
deployments, through the same services and validation, all or nothing."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from scheduler.models import AuditEntry, Source
from scheduler.services import schedule_create

pytestmark = pytest.mark.django_db


def _export(*args: str) -> str:
    out = StringIO()
    call_command("scheduler", "export", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def _import(path: Path, *args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("scheduler", "import", str(path), *args, stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), err.getvalue() + str(exc)
    return 0, out.getvalue(), err.getvalue()


def _schedules() -> None:
    schedule_create(
        name="nightly nap",
        task="scheduler.sleep",
        schedule="every day at 2am",
        tz="Europe/Paris",
        params={"seconds": 2},
        description="A nap.",
        overlap="skip",
    )
    schedule_create(name="ping often", task="scheduler.ping", schedule="*/5 * * * *")
    schedule_create(name="paused ping", task="scheduler.ping", schedule="every hour", enabled=False)


@pytest.mark.parametrize("format", ["yaml", "json"])
def test_export_then_import_on_an_empty_database_gives_the_same_file(tmp_path, format):
    _schedules()
    exported = _export("--format", format)
    path = tmp_path / f"schedules.{format}"
    path.write_text(exported)
    PeriodicTask.objects.all().delete()

    code, said, _ = _import(path)

    assert code == 0, said
    assert said.count("+ created") == 3
    assert _export("--format", format) == exported


def test_export_writes_the_shape_of_a_declaration_and_filters_by_name():
    _schedules()

    document = json.loads(_export("--format", "json", "--match", "nightly*"))

    assert document == {
        "schedules": [
            {
                "name": "nightly nap",
                "task": "scheduler.sleep",
                "schedule": "every day at 2am",
                "timezone": "Europe/Paris",
                "params": {"seconds": 2},
                "queue": "default",
                "description": "A nap.",
                "overlap": "skip",
                "catchup": "latest",
                "catchup_window": None,
                "jitter": 0,
                "start_time": None,
                "end_time": None,
                "max_runs": None,
                "pause_after_failures": None,
                "enabled": True,
            }
        ]
    }


def test_a_file_with_three_errors_reports_all_three_with_their_lines_and_applies_nothing(
    tmp_path,
):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "schedules:\n"
        "- name: good one\n"
        "  task: scheduler.ping\n"
        "  schedule: every minute\n"
        "- name: bad cron\n"
        "  task: scheduler.ping\n"
        "  schedule: 0 99 * * *\n"
        "- name: bad params\n"
        "  task: scheduler.sleep\n"
        "  schedule: every hour\n"
        "  params: {seconds: long}\n"
        "- name: unknown task\n"
        "  task: billing.send_invoices\n"
        "  schedule: every hour\n"
    )

    code, said, errors = _import(path)

    assert code == 2
    assert said == ""
    lines = [line for line in errors.splitlines() if line.startswith(str(path))]
    assert [line.split(": ", 2)[:2] for line in lines] == [
        [f"{path}, line 5", "schedule"],
        [f"{path}, line 8", "params"],
        [f"{path}, line 12", "task"],
    ]
    assert "3 error(s): nothing was applied" in errors
    assert not PeriodicTask.objects.filter(name="good one").exists()


def test_import_updates_what_differs_and_prune_deletes_what_the_file_leaves_out(tmp_path):
    _schedules()
    path = tmp_path / "schedules.yaml"
    path.write_text(_export("--match", "nightly*").replace("every day at 2am", "every day at 3am"))

    code, dry, _ = _import(path, "--prune", "--dry-run")
    assert code == 0
    assert "~ would be updated 'nightly nap': schedule" in dry
    assert PeriodicTask.objects.count() == 3

    code, said, _ = _import(path, "--prune")

    assert code == 0, said
    assert "~ updated 'nightly nap': schedule" in said
    assert "- deleted 'paused ping'" in said
    assert list(PeriodicTask.objects.values_list("name", flat=True)) == ["nightly nap"]
    assert (
        AuditEntry.objects.filter(action=AuditEntry.Action.DELETED, source=Source.CLI).count() == 2
    )


PING = "{name: x, task: scheduler.ping, schedule: every hour"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("schedules: [", "not YAML or JSON"),
        ("- name: x\n", "a list under 'schedules'"),
        (f"schedules:\n- {PING}, when: now}}\n", "when: unknown field"),
        (f"schedules:\n- {PING}, enabled: 'yes'}}\n", "enabled: str is not a bool"),
        (f"schedules:\n- {PING}}}\n- {PING}}}\n", "is in the file twice"),
    ],
)
def test_a_malformed_file_is_refused_with_what_is_wrong(tmp_path, text, says):
    path = tmp_path / "bad.yaml"
    path.write_text(text)

    code, _, errors = _import(path)

    assert code == 2
    assert says in errors
    assert not PeriodicTask.objects.filter(name="x").exists()
