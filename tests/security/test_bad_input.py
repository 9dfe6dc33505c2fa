"""Bad input at every door (API, admin forms, `manage.py scheduler`, `manage.py tournament`):
malformed and deeply nested JSON, huge values, unknown names, zones that are not zones, times at
the ends of the calendar. Each gets a message naming what is wrong, a non-zero exit from the CLI,
and nothing saved (rows counted before and after).

tests/scheduler/admin/, tests/scheduler/cli/ and tests/tournaments/test_cli.py cover the ordinary
mistakes (a misspelt task, a bad cron field, malformed JSON); these are the cases beyond them,
most of them a bug this suite found (a 500, a traceback, a wait without end, or a row saved that
should not be).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
)
from rest_framework.test import APIClient

from agents.models import Agent, Mention, Session
from agents.services import agent_create
from agents.signatures import HEADER, sign
from scheduler.catalog import CatalogEntry, ParameterError, Params, load_catalog
from scheduler.models import AuditEntry, ScheduleOptions, TaskEvent
from scheduler.schedules.parsing import ScheduleParseError, crontab_sets, parse_schedule
from tests.clients import response_json
from tests.factories import make_schedule, user_with
from tests.forms import agent_form, periodic_task_form, tournament_form
from tests.processes import child_env, run_manage
from tournaments.models import Entry, Tournament

pytestmark = [pytest.mark.security, pytest.mark.django_db]

NOW = datetime(2026, 1, 14, 9, 0, tzinfo=UTC)  # a Wednesday
DEEP_JSON = "[" * 100_000 + "]" * 100_000
HUGE_NUMBER_JSON = '{"days": ' + "1" * 5000 + "}"


def rows() -> dict[str, int]:
    """Every table a bad write could leave something in."""
    models: list[Any] = [
        PeriodicTask,
        ScheduleOptions,
        IntervalSchedule,
        CrontabSchedule,
        ClockedSchedule,
        AuditEntry,
        TaskEvent,
        Tournament,
        Entry,
        Agent,
        Session,
        Mention,
    ]
    return {model.__name__: model.objects.count() for model in models}


# --- The parser and the catalog: what the doors share ----------------------------------------


@pytest.mark.parametrize(
    ("text", "tz", "says"),
    [
        ("every day", "America", "unknown time zone 'America'"),  # a directory, not a zone
        ("every day", "a" * 300, "unknown time zone"),  # too long a file name
        ("in 99999999999 days", "UTC", "at most 36525 days (100 years)"),
        ("every 99999999999 days", "UTC", "at most 3650 days (10 years)"),
        (f"every {2**63} seconds", "UTC", "at most 3650 days"),
        ("9999-12-31T23:59:59-05:00", "UTC", "outside the calendar"),
        ("0001-01-01 00:00", "Asia/Tokyo", "outside the calendar"),
        ("*/999999999999999999999 * * * *", "UTC", "a step of 999999999999999999999 is more"),
        ("0 " + ",".join(["1"] * 60) + " * * *", "UTC", "longer than 96 characters"),
    ],
)
def test_it_refuses_schedules_no_row_or_clock_can_hold_with_a_parse_error(text, tz, says):
    with pytest.raises(ScheduleParseError) as error:
        parse_schedule(text, tz=tz, now=NOW)

    assert says in str(error.value)


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("5-7/2", {5, 0}),  # Sunday written as 7 was dropped from a stepped range
        ("1-7/3", {1, 4, 0}),
        ("7-7", {0}),  # was refused as "7-6,0"
        ("0-7", set(range(7))),
        ("mon-7/2", {1, 3, 5, 0}),
    ],
)
def test_it_reads_a_sunday_written_as_7_in_any_range(field, days):
    parsed = parse_schedule(f"0 9 * * {field}", now=NOW)

    assert parsed.crontab is not None
    assert set(crontab_sets(parsed.crontab).days_of_week) == days


def test_it_describes_a_cron_its_describer_cannot_put_in_words():
    parsed = parse_schedule("0 0 * * */2,1", now=NOW)  # cron-descriptor raised here

    assert parsed.description == "cron 0 0 * * */2,1"


def test_it_has_no_runs_past_the_end_of_the_calendar():
    end = datetime(9999, 12, 31, 12, 0, tzinfo=UTC)

    for text in ("every 3650 days", "every day at 9am", "0 0 * * *"):
        assert parse_schedule(text, now=end).next_runs(5, now=end) == []


@pytest.mark.parametrize(
    ("task", "params", "path", "says"),
    [
        ("scheduler.cleanup_results", {"days": "x" * 100_000}, "params", "at most 65536"),
        ("scheduler.cleanup_results", {"days": 2**70}, "days", "less than or equal to 36500"),
        ("tournaments.run_agent_decision", {"entry_id": 2**70}, "entry_id", "must fit in 64 bits"),
        ("tournaments.run_live_tournament_agents", {"tournament_id": 2**64}, "tournament_id", "64"),
        ("scheduler.ping", {str(n): n for n in range(20_000)}, "params", "characters as JSON"),
    ],
)
def test_it_refuses_parameters_no_message_or_column_should_carry(task, params, path, says):
    with pytest.raises(ParameterError) as error:
        load_catalog().get(task).validate(params)

    assert says in " ".join(error.value.errors[path])


class Ratio(Params):
    ratio: float = 1.0  # no bounds: NaN and infinities pass pydantic


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_it_refuses_numbers_json_cannot_carry(value):
    entry = CatalogEntry(name="tests.ratio", description="A ratio (tests).", params=Ratio)

    with pytest.raises(ParameterError) as error:
        entry.validate({"ratio": value})  # the JSON dump would have written null

    assert error.value.errors == {"ratio": ["must be a finite number"]}


def test_it_refuses_parameters_that_cannot_be_written_as_json():
    circular: dict[str, Any] = {}
    circular["self"] = circular

    with pytest.raises(ParameterError) as error:
        load_catalog().get("scheduler.ping").validate(circular)

    assert error.value.errors == {"params": ["cannot be written as JSON"]}


# --- The API ---------------------------------------------------------------------------------


@pytest.fixture
def api() -> APIClient:
    client = APIClient()
    client.force_authenticate(user_with(superuser=True))
    return client


def post_json(client: APIClient, url: str, body: str, **extra: Any) -> Any:
    return client.generic("POST", url, body, content_type="application/json", **extra)


SCHEDULE = {"name": "bad", "task": "scheduler.cleanup_results", "schedule": "every 5 minutes"}


@pytest.mark.parametrize(
    ("overrides", "field", "says"),
    [
        ({"timezone": "America"}, "timezone", "unknown time zone 'America'"),
        ({"timezone": "a" * 300}, "timezone", "unknown time zone"),
        ({"schedule": "in 99999999999 days"}, "schedule", "too far ahead"),
        ({"schedule": "every 99999999999 days"}, "schedule", "at most 3650 days"),
        ({"schedule": "9999-12-31T23:59:59-05:00"}, "schedule", "outside the calendar"),
        ({"params": {"days": 2**70}}, "params", "days: Input should be less than or equal"),
        ({"params": {"days": "x" * 1_000_000}}, "params", "characters as JSON: at most 65536"),
        ({"name": "n" * 10_000}, "name", "longer than 200 characters"),
    ],
)
def test_the_api_names_the_field_of_a_schedule_it_cannot_hold(api, overrides, field, says):
    before = rows()

    response = post_json(api, "/api/schedules/", json.dumps({**SCHEDULE, **overrides}))

    assert response.status_code == 400, response.content[:300]
    assert says in " ".join(response_json(response)[field])
    assert rows() == before


@pytest.mark.parametrize("url", ["/api/schedules/", "/api/tasks/"])
def test_the_api_answers_json_nested_too_deeply_with_a_400(api, url):
    before = rows()

    response = post_json(api, url, '{"task": "scheduler.ping", "params": ' + DEEP_JSON + "}")

    assert response.status_code == 400
    assert response_json(response) == {"body": ["JSON parse error - nested too deeply"]}
    assert rows() == before


def test_the_api_answers_a_body_over_the_upload_limit_with_a_json_413(api):
    body = json.dumps({"task": "scheduler.ping", "params": {"x": "a" * 3_000_000}})
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    response = post_json(api, "/api/tasks/", body)

    assert response.status_code == 413
    assert "larger than" in response_json(response)["detail"]


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_the_api_refuses_a_since_that_utc_cannot_hold(api, since):
    response = api.get("/api/tasks/", {"since": since})

    assert response.status_code == 400
    assert "outside the calendar" in response_json(response)["since"][0]


def test_the_api_answers_an_inbound_body_nested_too_deeply_with_a_400(api):
    agent = agent_create(name="Hooked", slug="hooked")
    body = '{"type": "message", "text": ' + DEEP_JSON + "}"
    before = rows()

    response = post_json(
        APIClient(),
        f"/api/inbound/{agent.slug}/",
        body,
        headers={HEADER: sign(agent.webhook_secret, body.encode())},
    )

    assert response.status_code == 400
    assert "nested too deeply" in response_json(response)["body"][0]
    assert rows() == before


def test_the_schema_bounds_how_long_a_request_may_wait(api):
    schema = json.loads(api.get("/api/schema/?format=json").content)

    (wait,) = [
        parameter
        for parameter in schema["paths"]["/api/tasks/{task_id}/"]["get"]["parameters"]
        if parameter["name"] == "wait"
    ]
    assert wait["schema"]["maximum"] == 30
    assert (wait["schema"]["minimum"], wait["schema"]["exclusiveMinimum"]) == (0, True)


# --- The admin forms -------------------------------------------------------------------------


def form_errors(response: Any) -> dict[str, str]:
    assert response.status_code == 200, response.status_code
    form = response.context["adminform"].form
    return {field: " ".join(errors) for field, errors in form.errors.items()}


@pytest.mark.parametrize(
    ("overrides", "field", "says"),
    [
        ({"timezone": "America"}, "timezone", "unknown time zone 'America'"),
        ({"kwargs": DEEP_JSON}, "kwargs", "malformed JSON: nested too deeply"),
        ({"kwargs": HUGE_NUMBER_JSON}, "kwargs", "malformed JSON: a number has too many digits"),
        ({"kwargs": json.dumps({"days": "x" * 1_000_000})}, "kwargs", "at most 65536"),
        ({"kwargs": json.dumps({"days": 2**70})}, "kwargs", "days: Input should be less than"),
        ({"name": "n" * 10_000}, "name", "at most 200 characters"),
        ({"schedule": "in 99999999999 days"}, "schedule", "too far ahead"),
        ({"schedule": "every 99999999999 days"}, "schedule", "at most 3650 days"),
        ({"headers": DEEP_JSON}, "headers", "malformed JSON: nested too deeply"),
        ({"headers": HUGE_NUMBER_JSON}, "headers", "a number has too many digits"),
    ],
)
def test_the_periodic_task_form_names_the_field_and_saves_nothing(admin, overrides, field, says):
    before = rows()
    data = periodic_task_form(
        **{"task": "scheduler.cleanup_results", "kwargs": '{"days": 3}', **overrides}
    )

    response = admin.post(reverse("admin:django_celery_beat_periodictask_add"), data)

    assert says in form_errors(response).get(field, ""), form_errors(response)
    assert rows() == before


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("brain_config", DEEP_JSON),
        ("brain_config", HUGE_NUMBER_JSON),
        ("state", DEEP_JSON),
        ("state", HUGE_NUMBER_JSON),
    ],
)
def test_the_agent_form_refuses_json_python_cannot_read_and_saves_nothing(admin, field, text):
    before = rows()

    response = admin.post(reverse("admin:agents_agent_add"), agent_form(**{field: text}))

    assert form_errors(response)[field] == "Enter a valid JSON."
    assert rows() == before


@pytest.mark.parametrize(
    ("symbols", "says"),
    [
        ("A" * 1_000_000, "a symbol is at most 20 characters"),
        (" ".join(f"S{n}" for n in range(10_000)), "at most 100 symbols, not 10000"),
    ],
)
def test_the_tournament_form_refuses_a_pasted_flood_of_symbols(admin, symbols, says):
    before = rows()

    response = admin.post(
        reverse("admin:tournaments_tournament_add"), tournament_form(symbols=symbols)
    )

    assert form_errors(response)["symbols"] == says
    assert rows() == before


# --- manage.py scheduler and manage.py tournament --------------------------------------------


def manage(*argv: str) -> str:
    stdout, stderr = StringIO(), StringIO()
    call_command(*argv, stdout=stdout, stderr=stderr)
    return stdout.getvalue()


CREATE = ("scheduler", "create", "bad", "every 5 minutes", "--task", "scheduler.cleanup_results")
CUP = ("tournament", "create", "Cup", "--symbols", "ACME")
CLI_ERRORS = [
    # (argv, what the one line says)
    ((*CREATE, "--tz", "America"), "timezone: unknown time zone 'America'"),
    ((*CREATE, "--tz", "a" * 300), "timezone: unknown time zone"),
    ((*CREATE, "--params", DEEP_JSON), "params: malformed JSON: nested too deeply"),
    ((*CREATE, "--params", HUGE_NUMBER_JSON), "params: malformed JSON: a number has too many"),
    ((*CREATE, "--params", json.dumps({"days": "x" * 1_000_000})), "at most 65536 are allowed"),
    ((*CREATE, "--params", json.dumps({"days": 2**70})), "days: Input should be less than"),
    ((*CREATE, "--description", "d" * 100_000), "description: is longer than 2000"),
    (("scheduler", "create", "n" * 10_000, "every day", "--task", "scheduler.ping"), "name: is"),
    (("scheduler", "create", "bad", "in 99999999999 days", "--task", "scheduler.ping"), "100 y"),
    (("scheduler", "create", "bad", "every 99999999999 days", "--task", "scheduler.ping"), "10 "),
    (("scheduler", "history", "--since", "9999-12-31T23:59:59-05:00"), "--since '9999-12-31T"),
    (("scheduler", "history", "--since", "0001-01-01T00:00+05:00"), "outside the calendar"),
    (("scheduler", "clear-history", "--confirm", "--older-than", "1000000000"), "--older-than"),
    (("scheduler", "logs", "--filter", "x" * 100_000), "--filter is longer than 1000"),
    (("scheduler", "run", "existing", "--wait", "--timeout", "inf"), "--timeout must be a finite"),
    ((*CUP, "--starts", "+99999999999d", "--duration", "1h"), "--starts: '99999999999d' is"),
    ((*CUP, "--starts", "now", "--duration", "999999d"), "--duration: '999999d' is longer"),
    ((*CUP, "--starts", "0001-01-01T00:00+05:00", "--duration", "1h"), "--starts: '0001-01-01"),
    ((*CUP, "--starts", "9999-12-31T23:00", "--duration", "2h"), "--duration: '2h' from --starts"),
    ((*CUP, "--starts", "now", "--duration", "1h", "--cash", "1e400"), "--cash: Ensure that"),
    ((*CUP, "--starts", "now", "--duration", "1h", "--cash", "0.001"), "--cash: Ensure that"),
    ((*CUP, "--starts", "now", "--duration", "1h", "--seed", str(2**70)), "--seed: Ensure"),
    ((*CUP, "--starts", "now", "--ends", "+1h", "--symbols", "A" * 10_000), "--symbols: a symbol"),
    (
        (
            "tournament",
            "create",
            "n" * 10_000,
            "--symbols",
            "A",
            "--starts",
            "now",
            "--ends",
            "+1h",
        ),
        "NAME: Ensure this value has at most 200 characters",
    ),
]


@pytest.mark.parametrize(
    ("argv", "says"), CLI_ERRORS, ids=[" ".join(argv)[:60] for argv, _ in CLI_ERRORS]
)
def test_the_cli_names_what_is_wrong_in_one_line_and_saves_nothing(argv, says):
    make_schedule(name="existing", task="scheduler.ping")
    before = rows()

    with pytest.raises(CommandError) as error:
        manage(*argv)

    assert says in str(error.value)
    assert "\n" not in str(error.value)
    assert len(str(error.value)) < 1000  # the input is not echoed back whole
    assert rows() == before


def test_the_cli_parses_a_schedule_counted_from_the_end_of_the_calendar():
    output = manage("scheduler", "parse", "every day", "--now", "9999-12-31T23:59")

    assert "No runs ahead." in output


SHELL_ERRORS = {
    "zone": (*CREATE, "--tz", "America"),
    "deep JSON": (*CREATE, "--params", "[" * 50_000),
    "huge span": (*CUP, "--starts", "now", "--duration", "9" * 20 + "d"),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("argv", list(SHELL_ERRORS.values()), ids=list(SHELL_ERRORS))
def test_the_cli_exits_non_zero_with_one_line_and_no_traceback(argv):
    finished = run_manage(*argv, env=child_env())

    assert finished.returncode == 1, finished.stderr[-500:]
    assert "Traceback" not in finished.stderr
    assert len(finished.stderr.strip().splitlines()) == 1, finished.stderr[-500:]
    assert PeriodicTask.objects.count() == 0
    assert Tournament.objects.count() == 0
