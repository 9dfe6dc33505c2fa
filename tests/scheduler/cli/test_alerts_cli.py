"""`manage.py scheduler alerts | channels`: rules and channels added, updated and removed
through the services (audited with source cli), listed as tables and JSON, a channel's test
notification, the engine's checks run from the command line; bad input as one line naming the
option, a non-zero exit and nothing saved.
"""

from __future__ import annotations

from datetime import time

import pytest
from django.core.management.base import CommandError

from scheduler.management.commands import scheduler as scheduler_command
from scheduler.models import AlertChannel, AlertRule, AuditEntry, NotificationDelivery, Source
from tests.alert_setup import alerting, open_incident
from tests.factories import make_channel, make_rule, make_schedule
from tests.processes import child_env, run_manage
from tests.scheduler.cli.helpers import scheduler, scheduler_json

pytestmark = pytest.mark.usefixtures("alerting")
__all__ = ["alerting"]


def saved_counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (AlertRule, AlertChannel, AuditEntry, NotificationDelivery)
    }


# --- alerts: rules -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_alerts_add_saves_every_option_through_the_service():
    make_schedule(name="nightly")
    make_channel("ops")
    make_channel("pager")

    printed = scheduler(
        *("alerts", "add", "streaks", "--trigger", "consecutive_failures"),
        *("--target-type", "schedule", "--target", "nightly", "--threshold", "3"),
        *("--channel", "ops", "--channel", "pager", "--repeat", "2h"),
        *("--quiet", "22:00-07:00", "--quiet-tz", "Europe/Paris"),
        *("--description", "three in a row", "--disabled"),
    )

    assert printed.strip() == (
        "Added rule 'streaks' (consecutive_failures, schedule nightly, notifying ops, pager, "
        "disabled)."
    )
    rule = AlertRule.objects.get()
    assert (rule.target_key, rule.threshold, rule.repeat_interval, rule.enabled) == (
        "nightly",
        3,
        7200,
        False,
    )
    assert (rule.quiet_start, rule.quiet_end, rule.quiet_timezone) == (
        time(22),
        time(7),
        "Europe/Paris",
    )
    assert rule.description == "three in a row"
    created = AuditEntry.objects.get(periodic_task_name="rule streaks")
    assert (created.action, created.source, created.actor) == ("created", Source.CLI, None)


@pytest.mark.django_db
def test_alerts_lists_rules_as_a_table_and_as_json():
    make_channel("ops")
    rule = make_rule("failures", repeat_interval=0)
    make_rule("slow", "long_run", duration=600, channels=())
    open_incident(rule)

    table = scheduler("alerts").splitlines()
    rows = scheduler_json("alerts", "--json")

    assert table[0].split() == [
        *("NAME", "ON", "TRIGGER", "TARGET", "N", "DURATION", "CHANNELS", "REPEAT", "QUIET"),
        "OPEN",
    ]
    assert table[1].split() == [
        *("failures", "yes", "failed", "everything", "-", "-", "ops", "never", "-", "1"),
    ]
    assert table[2].split()[:6] == ["slow", "yes", "long_run", "everything", "-", "10m"]
    assert [(row["name"], row["open_incidents"], row["channels"]) for row in rows] == [
        ("failures", 1, ["ops"]),
        ("slow", 0, []),
    ]
    assert rows[1]["duration"] == 600
    assert rows[0]["id"] == rule.pk


@pytest.mark.django_db
def test_alerts_update_changes_only_the_options_given():
    make_channel("ops")
    make_channel("pager")
    make_rule("failures", quiet_start=time(22), quiet_end=time(7), description="keep me")

    printed = scheduler(
        "alerts", "update", "failures", "--repeat", "0", "--disabled", "--channel", "pager"
    )

    assert printed.strip() == "Updated rule 'failures': enabled, channels, repeat_interval."
    rule = AlertRule.objects.get()
    assert (rule.repeat_interval, rule.enabled, rule.description) == (0, False, "keep me")
    assert (rule.quiet_start, rule.trigger) == (time(22), "failed")
    assert list(rule.channels.values_list("name", flat=True)) == ["pager"]
    updated = AuditEntry.objects.get(periodic_task_name="rule failures", action="updated")
    assert updated.source == Source.CLI
    assert scheduler("alerts", "update", "failures").strip() == "Rule 'failures' is unchanged."


@pytest.mark.django_db
def test_alerts_update_clears_the_quiet_window_and_the_channels():
    make_channel("ops")
    make_rule("failures", quiet_start=time(22), quiet_end=time(7))

    scheduler("alerts", "update", "failures", "--quiet", "off", "--channel", "")

    rule = AlertRule.objects.get()
    assert (rule.quiet_start, rule.quiet_end) == (None, None)
    assert not rule.channels.exists()


@pytest.mark.django_db
def test_alerts_remove_deletes_the_rule_and_its_incidents():
    make_channel("ops")
    open_incident(make_rule("failures"))

    printed = scheduler("alerts", "remove", "failures")

    assert printed.strip() == "Removed rule 'failures' and its incidents."
    assert not AlertRule.objects.exists()
    deleted = AuditEntry.objects.get(periodic_task_name="rule failures", action="deleted")
    assert deleted.source == Source.CLI


@pytest.mark.django_db
def test_alerts_watch_once_runs_the_checks_and_prints_the_report():
    line = scheduler("alerts", "watch", "--once")
    report = scheduler_json("alerts", "watch", "--once", "--json")

    assert line.strip().endswith("opened 0, recovered 0, notified 0")
    assert report == {"opened": 0, "recovered": 0, "notified": 0}


@pytest.mark.django_db
def test_alerts_watch_loops_until_stopped(settings, monkeypatch):
    settings.ALERTS_WATCH_INTERVAL = 30
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the second wait

    monkeypatch.setattr(scheduler_command.Command, "sleep", staticmethod(sleep))

    printed = scheduler("alerts", "watch").splitlines()

    assert printed[0] == "Checking the alert rules every 30 s (Ctrl-C stops)."
    assert len(printed) == 3
    assert all(line.endswith("opened 0, recovered 0, notified 0") for line in printed[1:])
    assert slept == [30, 30]
    bounded = scheduler("alerts", "watch", "--max-seconds", "0").splitlines()
    assert len(bounded) == 2


# --- channels ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_channels_add_update_list_and_remove():
    added = scheduler("channels", "add", "ops", "--kind", "record", "--config", '{"tag": "a"}')
    updated = scheduler("channels", "update", "ops", "--disabled", "--config", '{"tag": "b"}')
    table = scheduler("channels").splitlines()
    rows = scheduler_json("channels", "--json")
    removed = scheduler("channels", "remove", "ops")

    assert added.strip() == "Added channel 'ops' (record)."
    assert updated.strip() == "Updated channel 'ops' (record)."
    assert table[0].split() == ["NAME", "KIND", "ON", "SETTINGS", "LAST", "DELIVERY"]
    assert table[1].split() == ["ops", "record", "no", '{"tag":', '"b"}', "-"]
    assert rows == [
        {
            "id": rows[0]["id"],
            "name": "ops",
            "kind": "record",
            "enabled": False,
            "config": {"tag": "b"},
            "last_delivery": None,
        }
    ]
    assert removed.strip() == "Removed channel 'ops'."
    assert not AlertChannel.objects.exists()
    assert list(
        AuditEntry.objects.filter(periodic_task_name="channel ops")
        .order_by("id")
        .values_list("action", "source")
    ) == [("created", "cli"), ("updated", "cli"), ("deleted", "cli")]


@pytest.mark.django_db(transaction=True)
def test_channels_test_sends_an_audited_test_and_says_how_it_went(alerting):
    channel = make_channel("ops")

    printed = scheduler("channels", "test", "ops").splitlines()

    delivery = NotificationDelivery.objects.get()
    assert printed == [
        f"Queued a test notification to 'ops': delivery {delivery.pk}.",
        "Sent (response 200).",
    ]
    assert [notification.kind for _, notification in alerting] == ["test"]
    tested = AuditEntry.objects.get(action="tested")
    assert (tested.periodic_task_name, tested.source) == (f"channel {channel.name}", "cli")
    assert scheduler_json("channels", "--json")[0]["last_delivery"]["status"] == "sent"


@pytest.mark.django_db(transaction=True)
def test_channels_test_exits_non_zero_when_the_test_failed():
    make_channel("ops", fail="refuse")

    with pytest.raises(CommandError) as error:
        scheduler("channels", "test", "ops")

    delivery = NotificationDelivery.objects.get()
    assert str(error.value) == (
        f"delivery {delivery.pk} failed after 1 attempt(s), response 404: receiver answered 404"
    )


@pytest.mark.django_db
def test_channels_test_says_when_its_delivery_is_still_pending():
    make_channel("ops")  # inside the test's transaction: the delivery goes out at its commit

    printed = scheduler("channels", "test", "ops", "--wait", "0").splitlines()

    assert printed[1].startswith("Still pending after 0 s")
    assert NotificationDelivery.objects.get().status == "pending"


# --- bad input ---------------------------------------------------------------------------------

BAD_INPUTS = [
    # (argv, what the message says)
    (
        ["alerts", "add", "x", "--trigger", "consecutive_failures", "--threshold", "0"],
        "--threshold: must be a positive number up to 1000000, not 0",
    ),
    (
        ["alerts", "add", "x", "--trigger", "failed", "--target-type", "schedule", "--target", "n"],
        "--target: no periodic task named 'n'",
    ),
    (["alerts", "add", "x", "--trigger", "long_run", "--duration", "soon"], "--duration: 'soon'"),
    (["alerts", "add", "x", "--trigger", "failed", "--channel", "ghost"], "--channel: no channel"),
    (["alerts", "add", "x", "--trigger", "failed", "--quiet", "22-7"], "--quiet: '22-7' is not"),
    (["alerts", "add", "x", "--trigger", "failed", "--quiet-tz", "Mars/Base"], "--quiet-tz: "),
    (["alerts", "add", "x", "--trigger", "failed", "--repeat", "often"], "--repeat: 'often'"),
    (["alerts", "add", "x", "--trigger", "sometimes"], "--trigger: unknown trigger 'sometimes'"),
    (["alerts", "add", "existing", "--trigger", "failed"], "NAME: a rule named 'existing' exists"),
    (["alerts", "add", "x", "--trigger", "failed", "--threshold", "many"], "invalid int value"),
    (["alerts", "add", "x"], "required: --trigger"),
    (["alerts", "update", "nope", "--repeat", "1h"], "no rule 'nope'"),
    (["alerts", "update", "existing", "--threshold", "-1", "--trigger", "queue_depth"], "-1"),
    (["alerts", "remove", "nope"], "no rule 'nope'"),
    (["alerts", "watch", "--json"], "--json needs --once"),
    (["alerts", "bogus"], "invalid choice: 'bogus'"),
    (["channels", "add", "x"], "--kind is required"),
    (["channels", "add", "x", "--kind", "pigeon"], "--kind: unknown channel kind 'pigeon'"),
    (["channels", "add", "x", "--kind", "record", "--config", "{"], "--config: malformed JSON"),
    (["channels", "add", "x", "--kind", "record", "--config", "[]"], "must be a JSON object"),
    (["channels", "add", "x", "--kind", "record", "--to", "a@b.c"], "--to: unknown setting"),
    (
        ["channels", "add", "x", "--kind", "record", "--url", "https://a.b", "--config", "{}"],
        "--config: give the settings as JSON or one by one, not both",
    ),
    (["channels", "add", "ops", "--kind", "record"], "NAME: a channel named 'ops' exists"),
    (["channels", "update", "nope", "--disabled"], "no channel 'nope'"),
    (["channels", "update", "ops", "--config", '{"fail": "maybe"}'], "--config: fail: retry or"),
    (["channels", "remove", "nope"], "no channel 'nope'"),
    (["channels", "test", "nope"], "no channel 'nope'"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_it_refuses_bad_input_with_one_line_and_saves_nothing(argv, message):
    make_channel("ops")
    make_rule("existing")
    before = saved_counts()

    with pytest.raises(CommandError) as error:
        scheduler(*argv)

    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert saved_counts() == before


@pytest.mark.django_db(transaction=True)
def test_it_exits_non_zero_with_one_line_on_stderr_from_the_shell():
    finished = run_manage(
        *("scheduler", "alerts", "add", "x", "--trigger", "consecutive_failures"),
        *("--threshold", "0"),
        env=child_env(),
    )

    assert finished.returncode == 1
    assert finished.stdout == ""
    assert finished.stderr.strip().splitlines() == [
        "CommandError: --threshold: must be a positive number up to 1000000, not 0"
    ]
    assert not AlertRule.objects.exists()
