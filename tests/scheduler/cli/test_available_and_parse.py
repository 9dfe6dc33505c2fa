"""`manage.py scheduler available` lists the catalog, and `scheduler parse` reads a schedule phrase
to exactly the documented JSON and its next runs, for scripts and for people.
"""

from __future__ import annotations

import pytest
import time_machine
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from tests.scheduler.cli.helpers import NOW, scheduler, scheduler_json

# --- available and parse -------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_lists_the_catalog_with_queues_and_parameters():
    output = scheduler("available")

    assert "scheduler.ping  (queue default" in output
    assert "Answer pong" in output
    assert "parameters: none" in output


@pytest.mark.django_db
def test_it_lists_the_catalog_as_json_with_each_schema():
    entries = scheduler_json("available", "--json")

    ping = next(entry for entry in entries if entry["name"] == "scheduler.ping")
    assert ping["queue"] == "default"
    assert ping["params_schema"]["type"] == "object"
    assert {"name", "description", "queue", "overlap", "params_schema"} == set(ping)


PARSE_JSON = [
    # (argv after the phrase, expected kind/interval/crontab/clocked, first two next runs)
    (
        ["every 5 minutes"],
        {"kind": "interval", "interval": {"every": 5, "period": "minutes"}},
        ["2025-01-15T08:05:00+00:00", "2025-01-15T08:10:00+00:00"],
    ),
    (
        ["every monday at 8am", "--tz", "America/New_York"],
        {
            "kind": "crontab",
            "crontab": {
                "minute": "0",
                "hour": "8",
                "day_of_week": "1",
                "day_of_month": "*",
                "month_of_year": "*",
            },
        },
        ["2025-01-20T08:00:00-05:00", "2025-01-27T08:00:00-05:00"],
    ),
    (
        ["0 9 * * 7"],
        {"kind": "crontab", "crontab": {"day_of_week": "0", "hour": "9", "minute": "0"}},
        ["2025-01-19T09:00:00+00:00", "2025-01-26T09:00:00+00:00"],
    ),
    (
        ["tomorrow at 9am", "--tz", "Europe/London"],
        {"kind": "clocked", "clocked": "2025-01-16T09:00:00+00:00"},
        ["2025-01-16T09:00:00+00:00"],
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("argv", "expected", "first_runs"), PARSE_JSON)
def test_it_parses_a_phrase_to_exactly_the_documented_json(argv, expected, first_runs):
    document = scheduler_json("parse", *argv, "--now", NOW.isoformat(), "--json")

    assert set(document) == {
        "kind",
        "interval",
        "crontab",
        "clocked",
        "timezone",
        "description",
        "next_runs",
        "warnings",
        "effects",
        "cutoff",
        "notes",
    }
    for key, value in expected.items():
        if isinstance(value, dict) and key == "crontab" and len(value) < 5:
            assert {k: document[key][k] for k in value} == value
        else:
            assert document[key] == value
    for other in {"interval", "crontab", "clocked"} - {expected["kind"]}:
        assert document[other] is None
    assert document["next_runs"][:2] == first_runs
    assert isinstance(document["description"], str)
    assert document["description"]


@pytest.mark.django_db
def test_it_lists_as_many_next_runs_as_asked():
    document = scheduler_json(
        "parse", "every hour", "--now", NOW.isoformat(), "--count", "3", "--json"
    )

    assert document["next_runs"] == [
        "2025-01-15T09:00:00+00:00",
        "2025-01-15T10:00:00+00:00",
        "2025-01-15T11:00:00+00:00",
    ]


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_it_counts_from_the_clock_without_now_and_reads_a_naive_now_in_the_zone():
    from_clock = scheduler_json("parse", "every day at 2pm", "--json")
    naive_now = scheduler_json(
        "parse", "every day at 2pm", "--tz", "Asia/Tokyo", "--now", "2025-01-15T13:00", "--json"
    )

    assert from_clock["next_runs"][0] == "2025-01-15T14:00:00+00:00"
    assert naive_now["next_runs"][0] == "2025-01-15T14:00:00+09:00"


@pytest.mark.django_db
def test_it_parses_for_people_too():
    output = scheduler("parse", "every", "weekday", "at", "9:30", "--now", NOW.isoformat())

    assert "Cron:       30 9 * * 1-5" in output
    assert "2025-01-15 09:30:00 UTC  (Wed)" in output
    assert "2025-01-16 09:30:00 UTC  (Thu)" in output


def test_parse_warns_of_a_run_the_spring_gap_moves():
    argv = ("parse", "30 2 * * *", "--tz", "America/New_York", "--now", "2027-03-12T12:00:00Z")
    lines = scheduler(*argv).splitlines()
    warning = (
        "DST: on Sun 2027-03-14 clocks in America/New_York go forward 1 hour, so 02:30 does "
        "not exist that day: the run happens at 03:30 EDT instead."
    )
    assert "  2027-03-14 03:30:00 EDT  (Sun)" in lines
    assert lines[-1] == f"Warning:    {warning}"
    assert scheduler_json(*argv, "--json")["warnings"] == [warning]


def test_parse_says_nothing_more_on_an_ordinary_week():
    output = scheduler("parse", "30 2 * * *", "--now", "2027-06-01T00:00:00Z")
    assert "Warning" not in output
    assert scheduler_json("parse", "every minute", "--json")["warnings"] == []


# --- parse previews the policies, as the admin's form and the API do -----------------------------

HOURLY = ("parse", "every hour", "--tz", "UTC", "--now", NOW.isoformat())


@pytest.mark.django_db
def test_parse_with_max_runs_lists_that_many_runs_and_says_the_cut_off():
    lines = scheduler(*HOURLY, "--max-runs", "3", "--count", "5").splitlines()
    document = scheduler_json(*HOURLY, "--max-runs", "3", "--count", "5", "--json")

    runs = [line for line in lines if line.startswith("  2025-")]
    assert runs == [
        "  2025-01-15 09:00:00 UTC  (Wed)",
        "  2025-01-15 10:00:00 UTC  (Wed)",
        "  2025-01-15 11:00:00 UTC  (Wed)",
    ]
    cutoff = "The list stops after 3 runs (max runs): beat disables the schedule then."
    # After the runs: the cut-off, then the policies in words.
    assert lines[lines.index(runs[-1]) + 1] == f"Cut-off:    {cutoff}"
    assert "            ends after 3 runs (max runs)" in lines
    assert document["next_runs"] == [
        "2025-01-15T09:00:00+00:00",
        "2025-01-15T10:00:00+00:00",
        "2025-01-15T11:00:00+00:00",
    ]
    assert document["cutoff"] == cutoff
    assert "ends after 3 runs (max runs)" in document["effects"]


@pytest.mark.django_db
def test_parse_with_an_end_time_cuts_the_list_there():
    document = scheduler_json(*HOURLY, "--end", "2025-01-15T10:30", "--json")

    assert document["next_runs"] == ["2025-01-15T09:00:00+00:00", "2025-01-15T10:00:00+00:00"]
    assert document["cutoff"].startswith("The list stops at the end time, Wed 2025-01-15 10:30")
    assert document["effects"][-1] == "ends on Wed 2025-01-15 10:30 UTC (UTC+00:00) (end time)"


@pytest.mark.django_db
def test_parse_with_jitter_shifts_the_runs_and_says_so():
    plain = scheduler_json(*HOURLY, "--json")["next_runs"]
    jittered = scheduler_json(*HOURLY, "--jitter", "5m", "--json")
    text = scheduler(*HOURLY, "--jitter", "5m")

    pairs = list(zip(plain, jittered["next_runs"], strict=True))
    assert all(due <= sent < due[:14] + "05:01+00:00" for due, sent in pairs)
    assert any(due != sent for due, sent in pairs)
    worded = "jitter up to 5 minutes: each run goes out up to 5 minutes after its due time"
    assert any(worded in effect for effect in jittered["effects"])
    assert worded in text


@pytest.mark.django_db
def test_parse_puts_the_catch_up_and_the_tasks_overlap_in_words():
    lines = scheduler(
        *HOURLY, "--catchup", "all", "--catchup-window", "1h", "--task", "scheduler.backup_database"
    ).splitlines()

    assert (
        "Policies:   overlap skip (the task's default): a run due while the previous one still "
        "runs is skipped"
    ) in lines
    assert (
        "            catch-up all within 1 hour: after beat was down, every missed run within "
        "the last hour is made, in order"
    ) in lines


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--catchup-window", "-1"), "--catchup-window: -1 is less than 1"),
        (("--catchup", "sometimes"), "--catchup: 'sometimes' is not one of none, latest, all"),
        (("--overlap", "queue"), "--overlap: 'queue' is not one of allow, skip"),
        (("--jitter", "2h"), "--jitter: 7200 seconds is more than the limit, 3600 seconds"),
        (("--max-runs", "0"), "--max-runs: 0 would never let it run"),
        (
            ("--start", "2025-03-01T00:00Z", "--end", "2025-02-01T00:00Z"),
            "--end: 2025-02-01T00:00:00+00:00 is not after start_time",
        ),
        (("--end", "2025-01-01"), "--end: 2025-01-01T00:00:00+00:00 is in the past"),
        (("--task", "nope"), "--task: unknown task 'nope'"),
    ],
)
def test_parse_refuses_a_bad_policy_naming_the_option(flags, says):
    with pytest.raises(CommandError) as caught:
        scheduler(*HOURLY, *flags)

    assert says in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not PeriodicTask.objects.exists()
