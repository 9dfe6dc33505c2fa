"""`manage.py tournament <verb>`: create, enter, start, end, list, status, leaderboard, setup.

Reads go through `tournaments.selectors`, writes through `tournaments.services` (and
`tournaments.demo` for `setup`), so the CLI checks what the admin and the API check. Every
error is a CommandError naming the field (the flag, where there is one): one line on stderr,
exit status 1, nothing saved. `--json` prints exactly one JSON document.

Times are shown in `--tz`, else the `TZ` environment variable, else TIME_ZONE; `--starts` and
`--ends` are ISO 8601 (a naive one is read in that zone), `now`, or an
offset from now: `+2h`, `+1h30m`, `+90m`, `in 2 hours`, `in 1 day`. `--duration` takes the
same spans (`6h`, `2 hours`) counted from the start. `start` makes a tournament live now: one
started before its start time starts now and keeps its duration, unless `--ends` or `--duration`
gives a new end (tournaments.services.tournament_start, as the admin and the API start it).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import transaction
from django.db.models import Count, Field
from django.utils import timezone

from agents.models import Agent
from scheduler.cli import VerbCommand, Verbs
from scheduler.cli import output as out
from scheduler.schedules import app_declarations, pause_dict, schedule_describe
from scheduler.services import schedules_sync
from tournaments import selectors, services
from tournaments.models import Decision, Entry, Tournament, Trade
from tournaments.services import TournamentError
from tournaments.strategies import STRATEGIES

# The service's field -> the flag that sets it, for messages that name what to fix.
FLAGS = {
    "name": "NAME",
    "starts_at": "--starts",
    "ends_at": "--ends",
    "symbols": "--symbols",
    "initial_cash": "--cash",
    "decision_interval": "--interval",
    "market_seed": "--seed",
    "strategy": "strategy",
    "duration": "--duration",
}

_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86_400,
    "day": 86_400,
    "days": 86_400,
    "w": 604_800,
    "week": 604_800,
    "weeks": 604_800,
}
# The longest span of time: a century, so that a time it is added to stays in the calendar.
_SPAN_MAX_SECONDS = 36_525 * 86_400
_SPAN_PART = re.compile(r"(\d+)\s*([a-z]+)")
_SPAN = re.compile(r"(?:\d+\s*[a-z]+\s*)+")
_TIME_HELP = "ISO 8601, 'now', or from now: '+2h', '+1h30m', 'in 2 hours'"


class Command(VerbCommand):
    help = "Tournaments: create, enter agents, start, end, list, status, leaderboard, setup."

    def add_verbs(self, verbs: Verbs) -> None:
        _add_create_verb(verbs)
        _add_life_verbs(verbs)
        _add_reading_verbs(verbs)
        verbs.add_parser(
            "setup", help="create the periodic checks, recovery and rankings (idempotent)"
        )

    def refusal(self, exc: Exception) -> str | None:
        return _flagged(exc.errors) if isinstance(exc, TournamentError) else None

    # --- writes ----------------------------------------------------------------------------------

    def _create(self, options: dict[str, Any]) -> None:
        now = timezone.now()
        starts_at = _when(options["starts"], flag="--starts", now=now)
        if options["duration"] is not None:
            try:
                ends_at = starts_at + _span(options["duration"], flag="--duration")
            except OverflowError:
                raise CommandError(
                    f"--duration: {options['duration']!r} from --starts ends after year 9999"
                ) from None
        else:
            ends_at = _when(options["ends"], flag="--ends", now=now)
        cash = _decimal(options["cash"], flag="--cash")
        errors = _field_errors(
            name=options["name"].strip(), initial_cash=cash, market_seed=options["seed"]
        )
        if errors:
            raise CommandError(_flagged(errors))
        picks = _agent_picks(options["agents"].split(",")) if options["agents"] else []
        with transaction.atomic():
            tournament = services.tournament_create(
                name=options["name"],
                starts_at=starts_at,
                ends_at=ends_at,
                symbols=options["symbols"].split(","),
                initial_cash=cash,
                decision_interval=options["interval"],
                market_seed=options["seed"],
            )
            entered = _enter(tournament, picks) if picks else []
        if options["json"]:
            self._json(_tournament_dict(tournament))
            return
        self._print(
            f"Created tournament {tournament.pk} {tournament.name!r} ({tournament.status}): "
            f"{_span_of(tournament)}, every {tournament.decision_interval} s, "
            f"symbols {', '.join(tournament.symbols)}, cash {tournament.initial_cash}."
        )
        if entered:
            self._print(f"Entered {len(entered)} agent(s): {_entries_text(entered)}.")
        self._print(
            "It goes live at its start (tournaments.check_transitions), or now with "
            f"`manage.py tournament start {tournament.pk}`."
        )

    def _enter(self, options: dict[str, Any]) -> None:
        tournament = _tournament(options["tournament"])
        picks = _agent_picks(options["agents"])
        with transaction.atomic():
            entered = _enter(tournament, picks)
        skipped = len(picks) - len(entered)
        self._print(
            f"Entered {len(entered)} agent(s) into {tournament.name!r}"
            + (f": {_entries_text(entered)}" if entered else "")
            + (f" ({skipped} already in it)" if skipped else "")
            + "."
        )

    def _start(self, options: dict[str, Any]) -> None:
        now = timezone.now()
        tournament = _tournament(options["tournament"])
        ends_at = _when(options["ends"], flag="--ends", now=now) if options["ends"] else None
        duration = _span(options["duration"], flag="--duration") if options["duration"] else None
        tournament = services.tournament_start(
            tournament=tournament, ends_at=ends_at, duration=duration, now=now
        )
        task = tournament.periodic_task
        assert task is not None
        self._print(
            f"{tournament.name!r} is live until {out.when(tournament.ends_at)} (trading from "
            f"{out.when(tournament.starts_at)}); periodic task "
            f"{task.name!r} runs its {tournament.entries.count()} entries "
            f"({schedule_describe(task)})."
        )

    def _end(self, options: dict[str, Any]) -> None:
        tournament = services.tournament_end(
            tournament=_tournament(options["tournament"]), cancelled=options["cancel"]
        )
        leader = tournament.entries.select_related("agent").order_by("rank", "id").first()
        self._print(
            f"{tournament.name!r} is {tournament.status}; its periodic task is disabled."
            + (
                f" Winner: {leader.agent.slug} with {leader.equity}."
                if leader is not None and leader.rank is not None
                else ""
            )
        )

    def _setup(self, options: dict[str, Any]) -> None:
        """The tournaments' declared upkeep (tournaments/upkeep.py), synced alone: what
        `scheduler sync` does for every app."""
        report = schedules_sync(app_declarations(only="tournaments"), prune=False)
        if report.in_sync:
            self._print("The tournaments' periodic tasks exist already: nothing to do.")
            return
        for change in report.changes:
            if change.action == "create" and change.applied:
                self._print(f"Created periodic task '{change.name}'")
            else:
                self._print(f"{change.name!r}: {change.action} {change.message}".rstrip())
        if report.errors:
            raise CommandError(f"{len(report.errors)} periodic task(s) failed")

    # --- reads -----------------------------------------------------------------------------------

    def _list(self, options: dict[str, Any]) -> None:
        rows = list(selectors.tournaments_listed(status=options["status"]))
        if options["json"]:
            self._json([_tournament_dict(t, entries=_entry_count(t)) for t in rows])
            return
        if not rows:
            self._print("No tournaments.")
            return
        self._print(
            out.table(
                ("ID", "NAME", "STATUS", "STARTS", "ENDS", "EVERY", "ENTRIES"),
                (
                    (
                        t.pk,
                        t.name,
                        t.status,
                        out.when(t.starts_at),
                        out.when(t.ends_at),
                        f"{t.decision_interval} s",
                        _entry_count(t),
                    )
                    for t in rows
                ),
            )
        )

    def _status(self, options: dict[str, Any]) -> None:
        if options["tournament"]:
            tournaments = [_tournament(options["tournament"])]
        else:
            tournaments = list(selectors.tournaments_listed())
        reports = [_status_of(tournament) for tournament in tournaments]
        if options["json"]:
            self._json(reports if not options["tournament"] else reports[0])
            return
        if not reports:
            self._print("No tournaments.")
            return
        self._print("\n\n".join(_status_text(report) for report in reports))

    def _leaderboard(self, options: dict[str, Any]) -> None:
        tournament = _tournament(options["tournament"])
        limit = options["limit"]
        if not 1 <= limit <= 100_000:
            raise CommandError(f"--limit: {limit} is out of range 1-100000")
        if options["refresh"]:
            if tournament.status != Tournament.Status.LIVE:
                raise CommandError(
                    f"--refresh: only a live tournament is ranked, not a {tournament.status} one"
                )
            services.rankings_update(tournament=tournament)
        entries = list(selectors.tournament_leaderboard(tournament_id=tournament.pk)[:limit])
        rows = [
            {**services.leaderboard_row(entry), "return": _return(entry, tournament)}
            for entry in entries
        ]
        if options["json"]:
            self._json(
                {
                    "tournament": tournament.pk,
                    "name": tournament.name,
                    "status": tournament.status,
                    "initial_cash": str(tournament.initial_cash),
                    "leaderboard": rows,
                }
            )
            return
        self._print(
            f"{tournament.name} ({tournament.status}), initial cash {tournament.initial_cash}"
        )
        if not rows:
            self._print("No entries.")
            return
        self._print(
            out.table(
                ("RANK", "AGENT", "STRATEGY", "EQUITY", "RETURN", "CASH", "POSITIONS", "DECISIONS"),
                (
                    (
                        row["rank"],
                        row["agent"],
                        row["strategy"],
                        row["equity"],
                        row["return"],
                        row["cash"],
                        " ".join(f"{s}:{n}" for s, n in sorted(row["positions"].items())),
                        row["decisions"],
                    )
                    for row in rows
                ),
            )
        )


# --- verbs and their options ---------------------------------------------------------------------


def _add_create_verb(verbs: Verbs) -> None:
    create = verbs.add_parser("create", help="create a scheduled tournament")
    create.add_argument("name")
    create.add_argument("--starts", required=True, metavar="WHEN", help=_TIME_HELP)
    ends = create.add_mutually_exclusive_group(required=True)
    ends.add_argument("--ends", metavar="WHEN", help=_TIME_HELP)
    ends.add_argument("--duration", metavar="SPAN", help="e.g. 6h, 90m, '2 hours'")
    create.add_argument("--symbols", required=True, help="comma-separated, e.g. AAPL,MSFT")
    create.add_argument("--cash", default="10000", help="initial cash of each entry (10000)")
    create.add_argument("--interval", type=int, default=300, help="seconds between decisions (300)")
    create.add_argument("--seed", type=int, default=0, help="market seed (0)")
    create.add_argument(
        "--agents",
        metavar="SLUG[:STRATEGY],...",
        help=f"agents to enter; strategies: {', '.join(STRATEGIES)}",
    )
    create.add_argument("--json", action="store_true", help="print JSON")


def _add_life_verbs(verbs: Verbs) -> None:
    """`enter`, `start` and `end`."""
    enter = verbs.add_parser("enter", help="enter agents into a tournament")
    enter.add_argument("tournament", help="name or id")
    enter.add_argument(
        "agents",
        nargs="+",
        metavar="SLUG[:STRATEGY]",
        help=f"default strategy: from the agent's brain; {', '.join(STRATEGIES)}",
    )

    start = verbs.add_parser(
        "start",
        help="make a scheduled tournament live now (started early, it starts now and keeps "
        "its duration)",
    )
    start.add_argument("tournament", help="name or id")
    new_end = start.add_mutually_exclusive_group()
    new_end.add_argument("--ends", metavar="WHEN", help=f"a new end: {_TIME_HELP}")
    new_end.add_argument(
        "--duration", metavar="SPAN", help="a new duration from its start (now), e.g. 6h"
    )

    end = verbs.add_parser("end", help="finish a tournament now (ranks it a last time)")
    end.add_argument("tournament", help="name or id")
    end.add_argument("--cancel", action="store_true", help="cancelled rather than finished")


def _add_reading_verbs(verbs: Verbs) -> None:
    """`list`, `status` and `leaderboard`."""
    listing = verbs.add_parser("list", help="tournaments, newest first")
    listing.add_argument("--status", choices=Tournament.Status.values)
    listing.add_argument("--json", action="store_true", help="print JSON")

    status = verbs.add_parser("status", help="tournaments with entries and periodic task")
    status.add_argument("tournament", nargs="?", help="name or id (default: all)")
    status.add_argument("--json", action="store_true", help="print JSON")

    board = verbs.add_parser("leaderboard", help="the ranked entries of a tournament")
    board.add_argument("tournament", help="name or id")
    board.add_argument("--limit", type=int, default=50, help="how many rows (50)")
    board.add_argument("--refresh", action="store_true", help="rank at market prices now first")
    board.add_argument("--json", action="store_true", help="print JSON")


# --- helpers -------------------------------------------------------------------------------------


def _flagged(errors: dict[str, str]) -> str:
    return out.one_line(
        "; ".join(f"{FLAGS.get(field, field)}: {message}" for field, message in errors.items())
    )


def _field_errors(**values: Any) -> dict[str, str]:
    """What the model's columns cannot hold (lengths, digits, integer ranges): the admin's form
    checks these before the service does, and so does the CLI."""
    errors: dict[str, str] = {}
    for name, value in values.items():
        field = Tournament._meta.get_field(name)
        assert isinstance(field, Field)
        try:
            field.run_validators(value)
        except ValidationError as exc:
            errors[name] = " ".join(exc.messages)
    return errors


def _tournament(key: str) -> Tournament:
    """By name, or by id."""
    found = Tournament.objects.select_related("periodic_task").filter(name=key.strip()).first()
    if found is None and key.strip().isdigit():
        found = Tournament.objects.select_related("periodic_task").filter(pk=int(key)).first()
    if found is None:
        raise CommandError(f"tournament: no tournament named or numbered {key!r}")
    return found


def _agent_picks(items: list[str]) -> list[tuple[str, str | None]]:
    picks: list[tuple[str, str | None]] = []
    for item in items:
        slug, _, strategy = item.strip().partition(":")
        strategy = strategy.strip()
        if not slug:
            raise CommandError(f"agents: {item!r} names no agent (SLUG or SLUG:STRATEGY)")
        if strategy and strategy not in STRATEGIES:
            raise CommandError(
                f"strategy: unknown strategy {strategy!r} for {slug} "
                f"(one of: {', '.join(STRATEGIES)})"
            )
        picks.append((slug, strategy or None))
    return picks


def _enter(tournament: Tournament, picks: list[tuple[str, str | None]]) -> list[Entry]:
    slugs = [slug for slug, _ in picks]
    agents = {agent.slug: agent for agent in Agent.objects.filter(slug__in=slugs)}
    missing = [slug for slug in slugs if slug not in agents]
    if missing:
        raise CommandError(f"agents: no agent with the slug {', '.join(map(repr, missing))}")
    strategies = {agents[slug].pk: strategy for slug, strategy in picks if strategy}
    return services.tournament_initialize_agents(
        tournament=tournament,
        agents=[agents[slug] for slug in dict.fromkeys(slugs)],
        strategies=strategies,
    )


def _entries_text(entries: list[Entry]) -> str:
    return ", ".join(f"{entry.agent.slug} ({entry.strategy})" for entry in entries)


def _when(text: str, *, flag: str, now: datetime) -> datetime:
    """ISO 8601 (naive: the command's zone, --tz or TZ), `now`, `+2h`, `in 2 hours`."""
    phrase = " ".join(text.strip().lower().split())
    if phrase == "now":
        return now
    for prefix in ("+", "in "):
        if phrase.startswith(prefix):
            return now + _span(phrase.removeprefix(prefix), flag=flag)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"{flag}: {text!r} is not a time ({_TIME_HELP}, e.g. 2026-06-01T09:00:00+00:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.get_current_timezone())
    try:
        moment.astimezone(UTC)  # as the database stores it
    except OverflowError:
        raise CommandError(f"{flag}: {text!r} is outside the calendar once in UTC") from None
    return moment


def _span(text: str, *, flag: str) -> timedelta:
    """`2h`, `1h30m`, `90 minutes`, `2 hours`: more than zero."""
    phrase = " ".join(text.strip().lower().split())
    seconds = 0
    valid = _SPAN.fullmatch(phrase) is not None
    if valid:
        for number, unit in _SPAN_PART.findall(phrase):
            if unit not in _UNITS:
                valid = False
                break
            seconds += int(number) * _UNITS[unit]
    if not valid or seconds <= 0:
        raise CommandError(
            f"{flag}: {text!r} is not a span of time (e.g. 30m, 2h, 1h30m, '2 hours', 1d)"
        )
    if seconds > _SPAN_MAX_SECONDS:
        raise CommandError(f"{flag}: {text!r} is longer than 36525 days (100 years)")
    return timedelta(seconds=seconds)


def _decimal(text: str, *, flag: str) -> Decimal:
    try:
        value = Decimal(text.strip().replace("_", ""))
    except InvalidOperation:
        raise CommandError(f"{flag}: {text!r} is not a number") from None
    if not value.is_finite():
        raise CommandError(f"{flag}: {text!r} is not a number")
    return value


def _entry_count(tournament: Tournament) -> int:
    # Annotated by selectors.tournaments_listed; the stubs do not know it.
    count: int = tournament.entry_count  # type: ignore[attr-defined]
    return count


def _span_of(tournament: Tournament) -> str:
    return f"{out.when(tournament.starts_at)} to {out.when(tournament.ends_at)}"


def _return(entry: Entry, tournament: Tournament) -> str:
    if not tournament.initial_cash:
        return out.NONE
    change = (entry.equity - tournament.initial_cash) / tournament.initial_cash * 100
    return f"{change:+.2f}%"


def _tournament_dict(tournament: Tournament, *, entries: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": tournament.pk,
        "name": tournament.name,
        "status": tournament.status,
        "starts_at": out.iso(tournament.starts_at),
        "ends_at": out.iso(tournament.ends_at),
        "symbols": list(tournament.symbols),
        "initial_cash": str(tournament.initial_cash),
        "decision_interval": tournament.decision_interval,
        "market_seed": tournament.market_seed,
        "periodic_task": tournament.periodic_task.name if tournament.periodic_task else None,
    }
    if entries is not None:
        data["entries"] = entries
    return data


def _status_of(tournament: Tournament) -> dict[str, Any]:
    by_status = Counter(
        dict(
            tournament.entries.values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
    )
    now = timezone.now()
    task = tournament.periodic_task
    data = _tournament_dict(tournament, entries=sum(by_status.values()))
    data["entries_by_status"] = dict(sorted(by_status.items()))
    data["tick"] = services.market_of(tournament).tick_at(min(now, tournament.ends_at))
    data["decisions"] = Decision.objects.filter(entry__tournament=tournament).count()
    data["trades"] = Trade.objects.filter(entry__tournament=tournament).count()
    data["periodic_task"] = task and {
        "name": task.name,
        "enabled": task.enabled,
        "pause": pause_dict(task),
        "schedule": schedule_describe(task),
        "last_run_at": out.iso(task.last_run_at),
        "total_run_count": task.total_run_count,
    }
    return data


def _pause_text(pause: dict[str, Any]) -> str:
    """'paused by alice until 2027-03-01 09:00 CET: deploy freeze' (`pause_dict`'s JSON)."""
    until = pause["until"]
    end = f"until {out.when(datetime.fromisoformat(until))}" if until else "until resumed"
    note = f": {pause['note']}" if pause["note"] else ""
    by = f" by {pause['paused_by']}" if pause["paused_by"] else ""
    return f"paused{by} {end}{note}"


def _status_text(report: dict[str, Any]) -> str:
    task = report["periodic_task"]
    counts = ", ".join(f"{n} {status}" for status, n in report["entries_by_status"].items())
    lines = [
        f"{report['name']} (id {report['id']}): {report['status']}",
        f"  starts         {out.when(datetime.fromisoformat(report['starts_at']))}",
        f"  ends           {out.when(datetime.fromisoformat(report['ends_at']))}",
        f"  decisions      every {report['decision_interval']} s; tick {report['tick']}; "
        f"{report['decisions']} made, {report['trades']} trades",
        f"  symbols        {', '.join(report['symbols'])} (seed {report['market_seed']}); "
        f"cash {report['initial_cash']}",
        f"  entries        {report['entries']}" + (f" ({counts})" if counts else ""),
    ]
    if task is None:
        lines.append("  periodic task  none yet (made when it goes live)")
    else:
        last = datetime.fromisoformat(task["last_run_at"]) if task["last_run_at"] else None
        state = "enabled" if task["enabled"] else "disabled"
        if task["pause"]:
            state = _pause_text(task["pause"])
        lines.append(
            f"  periodic task  {task['name']!r}: {state}, "
            f"{task['schedule']}, {task['total_run_count']} runs, last {out.when(last)}"
        )
    return "\n".join(lines)
