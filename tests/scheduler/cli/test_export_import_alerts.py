"""`scheduler export` and `scheduler import` with alert channels and rules: written beside the
schedules, read back through the same services and checks, all or nothing with the schedules."""

from __future__ import annotations

import json
from datetime import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from scheduler.models import AlertChannel, AlertRule, AuditEntry, Source
from scheduler.schedules.declared_alerts import channel_row_fields, rule_row_fields
from scheduler.services import schedule_create
from tests import alert_kinds
from tests.factories import make_channel, make_rule

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def record_kind(settings: Any) -> None:
    settings.SCHEDULER_ALERT_CHANNEL_KINDS = {
        **settings.SCHEDULER_ALERT_CHANNEL_KINDS,
        "record": alert_kinds.PATH,
    }


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


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alerts.yaml"
    path.write_text(text)
    return path


def _alerts() -> None:
    """A schedule, two channels and three rules: one on the schedule, with a quiet window."""
    schedule_create(name="nightly nap", task="scheduler.sleep", schedule="every day at 2am")
    make_channel("ops", tag="ops")
    make_channel("pager")
    make_rule(
        "nap failing",
        "consecutive_failures",
        channels=("ops", "pager"),
        target_type="schedule",
        target="nightly nap",
        threshold=2,
        quiet_start=time(22, 0),
        quiet_end=time(6, 30),
        quiet_timezone="Europe/Paris",
        description="Two failed naps in a row.",
    )
    make_rule(
        "default queue deep",
        "queue_depth",
        target_type="queue",
        target="default",
        threshold=100,
        duration=60,
        repeat_interval=0,
    )
    make_rule("beat", "beat_no_leader", channels=(), duration=120, enabled=False)


def _everything() -> dict[str, Any]:
    return {
        "channels": {row.name: channel_row_fields(row) for row in AlertChannel.objects.all()},
        "rules": {row.name: rule_row_fields(row) for row in AlertRule.objects.all()},
    }


def _wipe() -> None:
    AlertRule.objects.all().delete()
    AlertChannel.objects.all().delete()
    PeriodicTask.objects.all().delete()


@pytest.mark.parametrize("format", ["yaml", "json"])
def test_export_then_import_on_an_empty_database_gives_the_same_rules_and_channels(
    tmp_path, format
):
    _alerts()
    before = _everything()
    exported = _export("--format", format)
    path = tmp_path / f"everything.{format}"
    path.write_text(exported)
    _wipe()

    code, said, _ = _import(path)

    assert code == 0, said
    assert "+ created 'nightly nap'" in said
    assert "+ created channel 'ops'" in said
    assert "+ created rule 'nap failing'" in said
    assert _everything() == before
    assert _export("--format", format) == exported
    assert _import(path)[1].endswith("6 unchanged.\n")


def test_export_writes_channels_and_rules_in_the_shape_of_a_declaration():
    _alerts()

    document = json.loads(_export("--format", "json", "--match", "*a*"))

    assert [s["name"] for s in document["schedules"]] == ["nightly nap"]
    assert document["alert_channels"] == [
        {"name": "pager", "kind": "record", "config": {}, "enabled": True}
    ]
    assert document["alert_rules"][1] == {
        "name": "default queue deep",
        "trigger": "queue_depth",
        "target_type": "queue",
        "target": "default",
        "threshold": 100,
        "duration": 60,
        "channels": ["ops"],
        "repeat_interval": 0,
        "quiet_start": None,
        "quiet_end": None,
        "quiet_timezone": "UTC",
        "description": "",
        "enabled": True,
    }
    assert (document["alert_rules"][2]["quiet_start"], document["alert_rules"][2]["quiet_end"]) == (
        "22:00",
        "06:30",
    )


def test_a_database_without_alerts_exports_no_alert_sections():
    schedule_create(name="ping often", task="scheduler.ping", schedule="*/5 * * * *")

    assert list(json.loads(_export("--format", "json"))) == ["schedules"]


def test_every_error_of_the_file_is_listed_with_its_line_and_nothing_is_applied(tmp_path):
    path = _file(
        tmp_path,
        "schedules:\n"
        "- name: good one\n"
        "  task: scheduler.ping\n"
        "  schedule: every minute\n"
        "alert_channels:\n"
        "- name: ops\n"
        "  kind: record\n"
        "- name: pigeons\n"
        "  kind: pigeon\n"
        "alert_rules:\n"
        "- name: good rule\n"
        "  trigger: failed\n"
        "  channels: [ops]\n"
        "- name: exploding\n"
        "  trigger: exploded\n"
        "- name: lost\n"
        "  trigger: failed\n"
        "  channels: [nowhere]\n"
        "- name: on a missing schedule\n"
        "  trigger: missed\n"
        "  target_type: schedule\n"
        "  target: no such schedule\n"
        "- name: late\n"
        "  trigger: failed\n"
        "  quiet_start: 22:00\n"
        "  quiet_end: '06:00'\n",
    )

    code, said, errors = _import(path)

    assert code == 2
    assert said == ""
    lines = [line for line in errors.splitlines() if line.startswith(str(path))]
    assert [line.split(": ", 2)[:2] for line in lines] == [
        [f"{path}, line 8", "kind"],
        [f"{path}, line 14", "trigger"],
        [f"{path}, line 16", "channels"],
        [f"{path}, line 19", "target"],
        [f"{path}, line 23", "quiet_start"],
    ]
    assert "write a time in quotes: '22:00'" in lines[-1]
    assert "5 error(s): nothing was applied" in errors
    assert not PeriodicTask.objects.filter(name="good one").exists()
    assert not AlertChannel.objects.exists()
    assert not AlertRule.objects.exists()


def test_import_updates_what_differs_and_prune_disables_what_the_file_leaves_out(tmp_path):
    _alerts()
    text = _export("--match", "n*").replace("threshold: 2", "threshold: 3")
    path = _file(tmp_path, text)

    code, dry, _ = _import(path, "--prune", "--dry-run")
    assert code == 0, dry
    assert "~ would be updated rule 'nap failing': threshold" in dry
    assert "- would be disabled rule 'default queue deep'" in dry
    assert AlertRule.objects.get(name="nap failing").threshold == 2

    code, said, _ = _import(path, "--prune")

    assert code == 0, said
    assert "- disabled rule 'default queue deep'" in said
    assert "beat" not in said  # disabled already
    assert AlertRule.objects.get(name="nap failing").threshold == 3
    assert not AlertRule.objects.get(name="default queue deep").enabled
    assert AlertRule.objects.filter(name="beat").exists()  # never deleted
    # The file has no alert_channels section: the channels are left alone.
    assert set(AlertChannel.objects.filter(enabled=True).values_list("name", flat=True)) == {
        "ops",
        "pager",
    }
    entry = AuditEntry.objects.filter(periodic_task_name="rule default queue deep").first()
    assert entry is not None
    assert (entry.action, entry.source) == (AuditEntry.Action.UPDATED, Source.CLI)


def test_a_file_of_schedules_alone_leaves_the_alerts_alone_even_when_pruning(tmp_path):
    _alerts()
    path = _file(tmp_path, "schedules: []\n")

    code, said, _ = _import(path, "--prune")

    assert code == 0, said
    assert not PeriodicTask.objects.exists()
    assert AlertRule.objects.filter(enabled=True).count() == 2


def test_a_file_of_alerts_alone_leaves_the_schedules_alone_even_when_pruning(tmp_path):
    _alerts()
    path = _file(tmp_path, "alert_channels:\n- {name: ops, kind: record, config: {tag: ops}}\n")

    code, said, _ = _import(path, "--prune")

    assert code == 0, said
    assert said == "- disabled channel 'pager'\n1 unchanged.\n"
    assert PeriodicTask.objects.filter(name="nightly nap").exists()


RULE = "{name: x, trigger: failed"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("alert_rule: []\n", "unknown section 'alert_rule'"),
        ("alert_rules: {name: x}\n", "'alert_rules' must be a list"),
        (f"alert_rules:\n- {RULE}, when: now}}\n", "when: unknown field"),
        (f"alert_rules:\n- {RULE}, threshold: true}}\n", "threshold: bool is not a int"),
        (f"alert_rules:\n- {RULE}, channels: ops}}\n", "channels: str is not a list"),
        (f"alert_rules:\n- {RULE}}}\n- {RULE}}}\n", "is in the file twice"),
        ("alert_rules:\n- {name: x}\n", "trigger: missing"),
        ("alert_channels:\n- {name: x, kind: record, config: {token: abc}}\n", "never declared"),
        ("alert_channels:\n- [x]\n", "a channel is a mapping of its fields"),
    ],
)
def test_a_malformed_alert_section_is_refused_with_what_is_wrong(tmp_path, text, says):
    code, _, errors = _import(_file(tmp_path, text))

    assert code == 2
    assert says in errors
    assert not AlertRule.objects.exists()
    assert not AlertChannel.objects.exists()
