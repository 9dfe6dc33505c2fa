"""`manage.py tournament <verb>`: through call_command, and a few real subprocesses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from agents.models import Agent
from agents.services import agent_create
from scheduler.models import AuditEntry
from scheduler.services import schedule_pause
from tests.processes import child_env, run_manage
from tournaments import services
from tournaments.models import Entry, EquitySnapshot, Tournament
from tournaments.upkeep import SCHEDULES as TOURNAMENT_UPKEEP

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def tournament(*args: str) -> str:
    stdout, stderr = StringIO(), StringIO()
    call_command("tournament", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue()


def tournament_json(*args: str) -> Any:
    return json.loads(tournament(*args))  # the whole output is one document


def traders(*slugs: str) -> list[Agent]:
    return [agent_create(name=slug, slug=slug, kind=Agent.Kind.TRADER) for slug in slugs]


def create(name: str = "Spring cup", *extra: str) -> Tournament:
    tournament("create", name, "--starts", "now", "--ends", "+4h", "--symbols", "ACME,BOLT", *extra)
    return Tournament.objects.get(name=name)


def db_counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Tournament, Entry, PeriodicTask, AuditEntry, EquitySnapshot)
    }


# --- create --------------------------------------------------------------------------------------


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_it_creates_a_scheduled_tournament_with_every_field():
    output = tournament(
        *("create", "Spring cup", "--starts", "2026-06-02T09:00:00+00:00"),
        *("--ends", "2026-06-02T17:00:00+00:00", "--symbols", "acme, bolt,CRUX"),
        *("--cash", "5000", "--interval", "60", "--seed", "42"),
    )

    created = Tournament.objects.get()
    assert (created.name, created.status) == ("Spring cup", Tournament.Status.SCHEDULED)
    assert (created.starts_at, created.ends_at) == (
        datetime(2026, 6, 2, 9, 0, tzinfo=UTC),
        datetime(2026, 6, 2, 17, 0, tzinfo=UTC),
    )
    assert created.symbols == ["ACME", "BOLT", "CRUX"]
    assert (created.initial_cash, created.decision_interval, created.market_seed) == (
        Decimal("5000.00"),
        60,
        42,
    )
    assert created.periodic_task is None  # made when it goes live
    assert f"Created tournament {created.pk} 'Spring cup' (scheduled)" in output
    assert f"tournament start {created.pk}" in output


TIMES = [
    # (--starts, --ends or --duration, starts_at, ends_at), with the clock at NOW
    (("now",), ("--ends", "+2h"), NOW, NOW + timedelta(hours=2)),
    (("+30m",), ("--ends", "+1h30m"), NOW + timedelta(minutes=30), NOW + timedelta(minutes=90)),
    (("in 2 hours",), ("--ends", "in 1 day"), NOW + timedelta(hours=2), NOW + timedelta(days=1)),
    (("+1h",), ("--duration", "6h"), NOW + timedelta(hours=1), NOW + timedelta(hours=7)),
    (("now",), ("--duration", "90 minutes"), NOW, NOW + timedelta(minutes=90)),
    (
        ("+10s",),
        ("--duration", "1w"),
        NOW + timedelta(seconds=10),
        NOW + timedelta(weeks=1, seconds=10),
    ),
]


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(("starts", "ends", "starts_at", "ends_at"), TIMES)
def test_it_reads_iso_times_now_and_offsets(starts, ends, starts_at, ends_at):
    tournament("create", "Cup", "--starts", *starts, *ends, "--symbols", "ACME")

    created = Tournament.objects.get()
    assert (created.starts_at, created.ends_at) == (starts_at, ends_at)


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_naive_time_is_read_in_the_time_zone_and_an_offset_is_kept():
    tournament(
        *("create", "Cup", "--starts", "2026-06-01T12:00"),
        *("--ends", "2026-06-01T16:00:00+02:00", "--symbols", "ACME"),
    )

    created = Tournament.objects.get()
    assert created.starts_at == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert created.ends_at == datetime(2026, 6, 1, 14, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_it_enters_agents_given_at_creation_with_their_strategies():
    traders("ann", "bob")

    create("Cup", "--agents", "ann:random,bob")

    entries = dict(Entry.objects.values_list("agent__slug", "strategy"))
    assert entries == {"ann": "random", "bob": "momentum"}  # bob: his rules brain's default


# --- errors: named, non-zero, nothing saved ------------------------------------------------------

BAD_INPUTS = [
    # (argv after `create Cup`, what the message says)
    (["--starts", "soon", "--ends", "+1h", "--symbols", "A"], "--starts: 'soon' is not a time"),
    (["--starts", "now", "--ends", "+2x", "--symbols", "A"], "--ends: '2x' is not a span"),
    (["--starts", "now", "--ends", "+0m", "--symbols", "A"], "--ends: '0m' is not a span"),
    (["--starts", "now", "--duration", "forever", "--symbols", "A"], "--duration: 'forever'"),
    (["--starts", "now", "--ends", "2026-13-01", "--symbols", "A"], "--ends: '2026-13-01'"),
    (["--starts", "+2h", "--ends", "+1h", "--symbols", "A"], "--ends: must be after"),
    (["--starts", "now", "--ends", "+1h", "--symbols", ","], "--symbols: name at least one"),
    (["--starts", "now", "--ends", "+1h", "--symbols", "A,a"], "--symbols: a symbol is named"),
    (["--starts", "now", "--ends", "+1h", "--symbols", "A", "--cash", "0"], "--cash: must be"),
    (["--starts", "now", "--ends", "+1h", "--symbols", "A", "--cash", "lots"], "--cash: 'lots'"),
    (["--starts", "now", "--ends", "+1h", "--symbols", "A", "--cash", "NaN"], "--cash: 'NaN'"),
    (["--starts", "now", "--ends", "+1h", "--symbols", "A", "--interval", "0"], "--interval:"),
    (
        ["--starts", "now", "--ends", "+1h", "--symbols", "A", "--agents", "ann,nobody"],
        "agents: no agent with the slug 'nobody'",
    ),
    (
        ["--starts", "now", "--ends", "+1h", "--symbols", "A", "--agents", "ann:yolo"],
        "strategy: unknown strategy 'yolo' for ann",
    ),
    (["--starts", "now", "--symbols", "A"], "one of the arguments --ends --duration is required"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS)
def test_bad_input_names_the_field_and_saves_nothing(argv, message):
    traders("ann")
    before = db_counts()

    with pytest.raises(CommandError) as error:
        tournament("create", "Cup", *argv)

    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert db_counts() == before


@pytest.mark.django_db
def test_every_bad_field_is_named_at_once():
    with pytest.raises(CommandError) as error:
        tournament(
            *("create", "Cup", "--starts", "now", "--ends", "now"),
            *("--symbols", "A,A", "--cash", "-1", "--interval", "0"),
        )

    for flag in ("--ends", "--symbols", "--cash", "--interval"):
        assert f"{flag}: " in str(error.value)


@pytest.mark.django_db
def test_a_name_taken_is_refused():
    create("Cup")

    with pytest.raises(CommandError, match="NAME: a tournament named 'Cup' exists"):
        create("Cup")

    assert Tournament.objects.count() == 1


SUBPROCESS_ERRORS = [
    (["create", "Cup", "--starts", "now", "--ends", "+1h", "--symbols", "A,a"], "--symbols:"),
    (["create", "Cup", "--starts", "never", "--ends", "+1h", "--symbols", "A"], "--starts:"),
    (["start", "nope"], "tournament: no tournament named or numbered 'nope'"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("argv", "message"), SUBPROCESS_ERRORS)
def test_it_exits_non_zero_with_one_line_on_stderr_from_the_shell(argv, message):
    finished = run_manage("tournament", *argv, env=child_env())

    assert finished.returncode != 0
    assert finished.stdout == ""
    assert "Traceback" not in finished.stderr
    assert len(finished.stderr.strip().splitlines()) == 1, finished.stderr
    assert message in finished.stderr
    assert Tournament.objects.count() == 0


# --- enter, start, end ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_enter_adds_agents_once_with_their_strategies():
    cup = create("Cup")
    traders("ann", "bob", "cy")

    first = tournament("enter", "Cup", "ann:buy_and_hold", "bob:mean_reversion")
    again = tournament("enter", str(cup.pk), "ann", "cy:random")

    assert "Entered 2 agent(s) into 'Cup'" in first
    assert "Entered 1 agent(s) into 'Cup': cy (random) (1 already in it)." in again
    entries = dict(cup.entries.values_list("agent__slug", "strategy"))
    assert entries == {"ann": "buy_and_hold", "bob": "mean_reversion", "cy": "random"}
    assert {entry.cash for entry in cup.entries.all()} == {Decimal("10000.00")}


@pytest.mark.django_db
def test_enter_with_an_unknown_agent_enters_nobody():
    create("Cup")
    traders("ann")

    with pytest.raises(CommandError, match="agents: no agent with the slug 'ghost'"):
        tournament("enter", "Cup", "ann", "ghost")

    assert not Entry.objects.exists()


@pytest.mark.django_db
def test_enter_into_a_finished_tournament_is_refused():
    cup = create("Cup")
    services.tournament_end(tournament=cup)
    traders("ann")

    with pytest.raises(CommandError, match="tournament: Cup is finished"):
        tournament("enter", "Cup", "ann")


@pytest.mark.django_db
def test_start_and_end_by_name_or_id_pair_it_with_its_periodic_task():
    cup = create("Cup", "--interval", "30")
    traders("ann")
    tournament("enter", "Cup", "ann:buy_and_hold")

    started = tournament("start", str(cup.pk))
    cup.refresh_from_db()
    task = PeriodicTask.objects.get(tournament=cup)

    assert cup.status == Tournament.Status.LIVE
    assert task.task == "tournaments.run_live_tournament_agents"
    assert task.enabled
    assert "'Cup' is live until" in started
    assert "runs its 1 entries (every 30 seconds)" in started
    with pytest.raises(CommandError, match="status: only a scheduled tournament starts"):
        tournament("start", "Cup")

    ended = tournament("end", "Cup")
    cup.refresh_from_db()
    task.refresh_from_db()

    assert cup.status == Tournament.Status.FINISHED
    assert not task.enabled
    assert "'Cup' is finished; its periodic task is disabled. Winner: ann" in ended
    with pytest.raises(CommandError, match="status: Cup is finished already"):
        tournament("end", str(cup.pk))


@pytest.mark.django_db
def test_end_with_cancel_cancels_it():
    cup = create("Cup")

    tournament("end", "Cup", "--cancel")

    cup.refresh_from_db()
    assert cup.status == Tournament.Status.CANCELLED


@pytest.mark.django_db
def test_a_name_is_found_before_an_id():
    numbered = create("Cup")
    named = create(str(numbered.pk))

    tournament("start", str(numbered.pk))

    named.refresh_from_db()
    numbered.refresh_from_db()
    assert (named.status, numbered.status) == ("live", "scheduled")


# --- list, status, leaderboard -------------------------------------------------------------------


@pytest.mark.django_db
def test_list_shows_every_tournament_newest_first():
    assert tournament("list").strip() == "No tournaments."
    create("Old")
    traders("ann")
    tournament("create", "New", "--starts", "+1h", "--ends", "+2h", "--symbols", "A")
    tournament("enter", "New", "ann")

    lines = tournament("list").splitlines()
    rows = tournament_json("list", "--json")
    live = tournament_json("list", "--status", "live", "--json")

    assert lines[0].split() == ["ID", "NAME", "STATUS", "STARTS", "ENDS", "EVERY", "ENTRIES"]
    assert [line.split()[1] for line in lines[1:]] == ["New", "Old"]
    assert [(row["name"], row["entries"]) for row in rows] == [("New", 1), ("Old", 0)]
    assert live == []


@pytest.mark.django_db
def test_status_shows_times_entries_and_the_periodic_task():
    cup = create("Cup", "--interval", "60")
    traders("ann", "bob")
    tournament("enter", "Cup", "ann", "bob")
    before = tournament("status", "Cup")
    tournament("start", "Cup")
    Entry.objects.filter(agent__slug="bob").update(status=Entry.Status.STALE)

    after = tournament("status")
    report = tournament_json("status", str(cup.pk), "--json")

    assert "Cup (id" in before
    assert "periodic task  none yet (made when it goes live)" in before
    assert "entries        2 (1 active, 1 stale)" in after
    assert "every 60 seconds" in after
    assert report["status"] == "live"
    assert report["entries"] == 2
    assert report["entries_by_status"] == {"active": 1, "stale": 1}
    assert report["periodic_task"]["name"] == PeriodicTask.objects.get(tournament=cup).name
    assert report["periodic_task"]["enabled"] is True
    assert (report["decisions"], report["trades"], report["tick"]) == (0, 0, 0)


@pytest.mark.django_db
def test_status_shows_who_paused_its_periodic_task_and_why():
    cup = create("Cup", "--interval", "60")
    tournament("start", "Cup")
    name = PeriodicTask.objects.get(tournament=cup).name
    schedule_pause(name=name, note="market data late")

    text = tournament("status", "Cup")
    report = tournament_json("status", str(cup.pk), "--json")

    assert f"periodic task  {name!r}: paused until resumed: market data late, " in text
    assert report["periodic_task"]["pause"]["note"] == "market data late"


@pytest.mark.django_db
def test_status_of_nothing_says_so():
    assert tournament("status").strip() == "No tournaments."
    assert tournament_json("status", "--json") == []


def _ranked_cup() -> Tournament:
    with time_machine.travel(NOW, tick=False):
        cup = create("Cup", "--interval", "60", "--seed", "7")
        traders("holder", "idle")
        tournament("enter", "Cup", "holder:buy_and_hold", "idle:momentum")
        tournament("start", "Cup")
        for entry in cup.entries.all():
            services.decision_make(entry=entry, tick=0)
    with time_machine.travel(NOW + timedelta(minutes=30), tick=False):
        services.rankings_update(tournament=cup)
    return cup


@pytest.mark.django_db
def test_leaderboard_prints_the_ranked_entries():
    cup = _ranked_cup()

    lines = tournament("leaderboard", "Cup").splitlines()

    assert lines[0] == "Cup (live), initial cash 10000.00"
    assert lines[1].split()[:5] == ["RANK", "AGENT", "STRATEGY", "EQUITY", "RETURN"]
    ranked = [line.split() for line in lines[2:]]
    assert [row[0] for row in ranked] == ["1", "2"]
    holder = cup.entries.get(agent__slug="holder")
    assert ranked[[row[1] for row in ranked].index("holder")][3] == str(holder.equity)
    assert "idle" in {row[1] for row in ranked}


@pytest.mark.django_db
def test_leaderboard_as_json():
    cup = _ranked_cup()

    board = tournament_json("leaderboard", str(cup.pk), "--json", "--limit", "1")

    assert (board["tournament"], board["status"]) == (cup.pk, "live")
    [first] = board["leaderboard"]
    entry = cup.entries.get(rank=1)
    assert first["rank"] == 1
    assert first["agent"] == entry.agent.slug
    assert first["equity"] == str(entry.equity)
    change = (entry.equity - Decimal(10000)) / 100
    assert first["return"] == f"{change:+.2f}%"


@pytest.mark.django_db
def test_leaderboard_refresh_ranks_a_live_tournament_first():
    cup = create("Cup")
    traders("ann")
    tournament("enter", "Cup", "ann")

    with pytest.raises(CommandError, match="--refresh: only a live tournament is ranked"):
        tournament("leaderboard", "Cup", "--refresh")
    assert tournament_json("leaderboard", "Cup", "--json")["leaderboard"][0]["rank"] is None

    tournament("start", "Cup")
    board = tournament_json("leaderboard", "Cup", "--refresh", "--json")

    assert board["leaderboard"][0]["rank"] == 1
    assert EquitySnapshot.objects.filter(entry__tournament=cup).count() == 1


@pytest.mark.django_db
def test_leaderboard_limit_is_bounded():
    create("Cup")

    with pytest.raises(CommandError, match="--limit: 0 is out of range"):
        tournament("leaderboard", "Cup", "--limit", "0")


@pytest.mark.django_db(transaction=True)
def test_leaderboard_from_the_shell_is_one_json_document():
    _ranked_cup()

    finished = run_manage("tournament", "leaderboard", "Cup", "--json", env=child_env())

    assert finished.returncode == 0, finished.stderr
    board = json.loads(finished.stdout)
    assert [row["rank"] for row in board["leaderboard"]] == [1, 2]


# --- setup ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_setup_creates_the_periodic_tasks_once():
    first = tournament("setup")
    second = tournament("setup")

    tasks = dict(
        PeriodicTask.objects.filter(name__in=[d.name for d in TOURNAMENT_UPKEEP]).values_list(
            "task", "enabled"
        )
    )
    assert tasks == {
        "tournaments.check_transitions": True,
        "tournaments.recover_crashed_agents": True,
        "tournaments.update_rankings": True,
    }
    assert first.count("Created periodic task") == 3
    assert second.strip().endswith("nothing to do.")


# --- start before the start time (issue 15, item 1) ----------------------------------------------


def _spring_cup() -> Tournament:
    traders("demo-trader-momentum", "demo-trader-random")
    tournament(
        "create",
        "Spring cup",
        "--starts",
        "+10m",
        "--duration",
        "1h",
        "--symbols",
        "AAPL,MSFT,NVDA",
        "--interval",
        "60",
        "--agents",
        "demo-trader-momentum,demo-trader-random:random",
    )
    return Tournament.objects.get(name="Spring cup")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("flags", "ends_at"),
    [
        ((), NOW + timedelta(hours=1)),
        (("--ends", "+2h"), NOW + timedelta(hours=2)),
        (("--duration", "30m"), NOW + timedelta(minutes=30)),
    ],
)
def test_started_before_its_start_it_trades_from_now(flags, ends_at):
    with time_machine.travel(NOW, tick=False):
        cup = _spring_cup()
        started = tournament("start", "Spring cup", *flags)
    with time_machine.travel(NOW + timedelta(minutes=2, seconds=5), tick=False):
        status = tournament_json("status", "Spring cup", "--json")
    cup.refresh_from_db()

    assert (cup.status, cup.starts_at, cup.ends_at) == ("live", NOW, ends_at)
    assert PeriodicTask.objects.get(tournament=cup).expires == ends_at
    assert "'Spring cup' is live until" in started
    assert status["tick"] == 2


@pytest.mark.django_db
def test_start_refuses_an_end_that_has_passed():
    with time_machine.travel(NOW, tick=False):
        _spring_cup()
        with pytest.raises(CommandError, match="--ends: must be in the future"):
            tournament("start", "Spring cup", "--ends", "2026-06-01T08:00:00+00:00")
        with pytest.raises(CommandError, match="--duration"):
            tournament("start", "Spring cup", "--duration", "soon")

    assert Tournament.objects.get().status == "scheduled"


# --- time zones ----------------------------------------------------------------------------------


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_it_shows_and_reads_times_in_tz_then_the_environments_zone(monkeypatch):
    monkeypatch.delenv("TZ", raising=False)
    tournament(
        "create", "Cup", "--starts", "2026-06-02T09:00", "--duration", "2h", "--symbols", "ACME"
    )
    cup = Tournament.objects.get(name="Cup")
    assert cup.starts_at == datetime(2026, 6, 2, 9, 0, tzinfo=UTC)  # naive: TIME_ZONE, UTC here

    assert "starts         2026-06-02 18:00:00 JST" in tournament(
        "status", "Cup", "--tz", "Asia/Tokyo"
    )
    monkeypatch.setenv("TZ", "America/New_York")
    assert "starts         2026-06-02 05:00:00 EDT" in tournament("status", "Cup")
    # --tz wins over TZ, and a naive time is read in the command's zone.
    tournament(
        "create", "Late cup", "--starts", "2026-06-02T09:00", "--duration", "2h",
        "--symbols", "ACME", "--tz", "Europe/Paris",
    )  # fmt: skip
    late = Tournament.objects.get(name="Late cup")
    assert late.starts_at == datetime(2026, 6, 2, 7, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_it_refuses_an_unknown_tz_by_name_and_warns_about_an_unusable_environment(monkeypatch):
    with pytest.raises(CommandError, match="--tz: unknown time zone 'Mars/Olympus'"):
        tournament("list", "--tz", "Mars/Olympus")

    monkeypatch.setenv("TZ", "EST5EDT,M3.2.0,M11.1.0")
    stdout, stderr = StringIO(), StringIO()
    call_command("tournament", "list", stdout=stdout, stderr=stderr)
    assert "is not an IANA zone name: times are in UTC" in stderr.getvalue()
