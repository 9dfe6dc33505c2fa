"""The data set of benchmarks/history_scale.py: a month of production history, loaded in bulk.

Results and events are generated inside the database (`generate_series` on PostgreSQL, a
recursive CTE on SQLite) from one row number each, so that a result's three events repeat its
task id, names, worker and times without a join, and a million rows load in seconds, not in the
hours the ORM would take. Every value is a pure function of the row number: the same size gives
the same data on both databases, and no random generator is involved.
"""

# The SQL below is built from this module's constants and integers, never from outside input.
# ruff: noqa: S608

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

RESULTS_TABLE = "django_celery_results_taskresult"
EVENTS_TABLE = "scheduler_taskevent"

DAYS = 30
ACTIVE_PERIODIC_TASKS = 300
PERIODIC_PERCENT = 80  # of results; the others were sent by hand, by the API or by other tasks
FAILURE_PERCENT = 3
TASK_NAMES = 40
WORKERS = 6
# Events of domain objects (chat sessions, tournaments, agents' posts): what the chat and
# tournament pages read back, among the task events.
OBJECT_EVENTS = 6000
SESSION_MESSAGES = 50

# Intervals and crontabs an admin's periodic tasks share, with the phrase our services store.
INTERVALS = [(5, "minutes"), (15, "minutes"), (1, "hours"), (6, "hours"), (1, "days")]
CRONTABS = ["0 * * * *", "*/10 * * * *", "30 2 * * *", "0 9 * * 1", "15 6 * * 1-5"]

FAILURE_RESULT = '{"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}'
FAILURE_MESSAGE = "ValueError: boom"
TRACEBACK = """Traceback (most recent call last):
  File "/app/.venv/lib/python3.12/site-packages/celery/app/trace.py", line 453, in trace_task
    R = retval = fun(*args, **kwargs)
                 ^^^^^^^^^^^^^^^^^^^^
  File "/app/.venv/lib/python3.12/site-packages/celery/app/trace.py", line 736, in __call__
    return self.run(*args, **kwargs)
           ^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/app/scheduler/runs.py", line 212, in run
    return self.body(**params)
           ^^^^^^^^^^^^^^^^^^^
ValueError: boom
"""


@dataclass
class Loaded:
    """What was loaded, how long each part took, and the rows the pages are asked about."""

    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    superuser_id: int = 0
    periodic_task_id: int = 0  # sched-17
    result_task_id: str = ""
    session_id: int = 0
    tournament_id: int = 0

    @contextmanager
    def timed(self, part: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[part] = round(time.perf_counter() - started, 2)


def load(*, results: int, periodic_tasks: int) -> Loaded:
    """Build the whole data set in the default database; see the module docstring."""
    from django.db import connection
    from django.utils import timezone

    if periodic_tasks < ACTIVE_PERIODIC_TASKS:
        raise SystemExit(f"--periodic-tasks: at least {ACTIVE_PERIODIC_TASKS}")
    loaded = Loaded()
    now = timezone.now()
    dialect = Dialect(connection.vendor)
    with loaded.timed("total"):
        with loaded.timed("periodic_tasks"):
            scheduled = _periodic_tasks(periodic_tasks)
        with loaded.timed("agents_and_tournament"):
            _people_and_objects(loaded, now)
        with _bulk_session(dialect):
            names = _task_names(scheduled)
            for table in (RESULTS_TABLE, EVENTS_TABLE):
                sql = _history_sql(dialect, table, results, scheduled, names, now)
                with (
                    _without_secondary_indexes(dialect, table, loaded),
                    loaded.timed(f"insert_{table}"),
                    connection.cursor() as cursor,
                ):
                    # No parameters: the `%` in the SQL are operators, not placeholders.
                    cursor.execute(sql)
            with loaded.timed("object_events"):
                _object_events(loaded, now)
        with loaded.timed("analyze"):
            _analyze(dialect)
        with loaded.timed("schedule_states_rebuild"):
            from scheduler.worker.schedule_state import schedule_states_rebuild

            loaded.counts["schedule_states"] = schedule_states_rebuild()
        with loaded.timed("periodic_task_last_runs"):
            _last_runs()
    _pick_examples(loaded)
    _count(loaded)
    return loaded


# --- SQL of either database ----------------------------------------------------------------------


class Dialect:
    """The few expressions PostgreSQL and SQLite spell differently."""

    def __init__(self, vendor: str) -> None:
        if vendor not in ("postgresql", "sqlite"):
            raise SystemExit(f"history_scale runs on PostgreSQL or SQLite, not {vendor}")
        self.vendor = vendor

    @property
    def postgres(self) -> bool:
        return self.vendor == "postgresql"

    def series(self, count: int) -> tuple[str, str]:
        """A WITH prefix and a FROM item yielding x = 0 .. count - 1."""
        if self.postgres:
            return "", f"generate_series(0, {count - 1}::bigint) AS series(x)"
        prefix = (
            "WITH RECURSIVE series(x) AS "
            f"(SELECT 0 UNION ALL SELECT x + 1 FROM series WHERE x < {count - 1}) "
        )
        return prefix, "series"

    def timestamp(self, micros: str) -> str:
        """A datetime column's value from microseconds since the epoch (UTC)."""
        if self.postgres:
            return f"(TIMESTAMPTZ 'epoch' + ({micros}) * INTERVAL '1 microsecond')"
        # Django's SQLite columns hold UTC as text, to the microsecond.
        return (
            f"(strftime('%Y-%m-%d %H:%M:%S', ({micros}) / 1000000, 'unixepoch')"
            f" || printf('.%06d', ({micros}) % 1000000))"
        )

    def hex(self, value: str, width: int) -> str:
        if self.postgres:
            return f"lpad(to_hex({value}), {width}, '0')"
        return f"printf('%0{width}x', {value})"

    def json(self, value: str) -> str:
        return f"CAST({value} AS jsonb)" if self.postgres else value


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _case(selector: str, values: list[str]) -> str:
    branches = " ".join(f"WHEN {i} THEN {_literal(value)}" for i, value in enumerate(values))
    return f"CASE {selector} {branches} END"


def _history_sql(
    dialect: Dialect,
    table: str,
    results: int,
    periodic_task_tasks: list[str],
    names: list[str],
    now: datetime,
) -> str:
    """INSERT ... SELECT of every result (one per x) or every event (three per result).

    Rows are inserted in the order of the series, so ids grow with time as they do in production.
    """
    end_us = int((now - timedelta(seconds=10)).timestamp() * 1_000_000)
    span_us = DAYS * 86_400 * 1_000_000
    step_us = max(1, span_us // results)
    start_us = end_us - step_us * results
    events = table == EVENTS_TABLE
    prefix, source = dialect.series(3 * results if events else results)
    run = "x / 3" if events else "x"
    step = "x % 3" if events else "0"
    # h: a well-mixed 32-bit number per run (Knuth's multiplicative hash); its high bits pick
    # the run's kind, so that failures are spread over every periodic task and every day.
    base = (
        f"SELECT {run} + 1 AS n, {step} AS step,"
        f" ({run} + 1) * 2654435761 % 4294967296 AS h FROM {source}"
    )
    timed = (
        f"SELECT n, step, h, {start_us} + (n - 1) * {step_us} + h % {step_us} AS created_us,"
        f" CASE WHEN h / 65536 % 100 < {PERIODIC_PERCENT}"
        f" THEN n % {ACTIVE_PERIODIC_TASKS} END AS k,"
        f" CASE WHEN h / 256 % 100 < {FAILURE_PERCENT} THEN 1 ELSE 0 END AS failed"
        f" FROM ({base}) AS base"
    )
    # Waited in the queue 20 ms - 1 s, ran 5 ms - 4 s.
    run_rows = (
        "SELECT n, step, h, k, failed, created_us,"
        " created_us + 20000 + h % 980000 AS started_us,"
        " created_us + 20000 + h % 980000 + 5000 + h / 1024 % 4000000 AS done_us"
        f" FROM ({timed}) AS timed"
    )
    periodic_task_name = "'sched-' || k"
    task_name = (
        f"CASE WHEN k IS NULL THEN {_case(f'h % {len(names)}', names)}"
        f" ELSE {_case(f'k % {len(periodic_task_tasks)}', periodic_task_tasks)} END"
    )
    task_id = " || '-' || ".join(
        [
            dialect.hex("h", 8),
            dialect.hex("n * 40503 % 65536", 4),
            "'4' || " + dialect.hex("n % 4096", 3),
            dialect.hex("32768 + h / 7 % 16384", 4),
            dialect.hex("n", 12),
        ]
    )
    worker = f"'celery@worker-' || (h / 4096 % {WORKERS} + 1)"
    if not events:
        columns = [
            "task_id",
            "periodic_task_name",
            "task_name",
            "task_args",
            "task_kwargs",
            "status",
            "worker",
            "content_type",
            "content_encoding",
            "result",
            "date_created",
            "date_started",
            "date_done",
            "traceback",
            "meta",
        ]
        # As django-celery-results stores them: the repr of args and kwargs, as a JSON string.
        values = [
            task_id,
            f"CASE WHEN k IS NULL THEN NULL ELSE {periodic_task_name} END",
            task_name,
            "'\"()\"'",
            "CASE WHEN k IS NULL THEN '\"{''item'': ' || (h % 100000) || '}\"' ELSE '\"{}\"' END",
            "CASE WHEN failed = 1 THEN 'FAILURE' ELSE 'SUCCESS' END",
            worker,
            "'application/json'",
            "'utf-8'",
            f"CASE WHEN failed = 1 THEN {_literal(FAILURE_RESULT)}"
            " ELSE '{\"ok\": true, \"processed\": ' || (h % 1000) || '}' END",
            dialect.timestamp("created_us"),
            dialect.timestamp("started_us"),
            dialect.timestamp("done_us"),
            f"CASE WHEN failed = 1 THEN {_literal(TRACEBACK)} END",
            "'{\"children\": []}'",
        ]
    else:
        columns = [
            "type",
            "task_id",
            "task_name",
            "periodic_task_name",
            "state",
            "worker",
            "duration",
            "message",
            "payload",
            "object_type",
            "object_id",
            "created_at",
        ]
        end = "CASE WHEN failed = 1 THEN {} ELSE {} END"
        values = [
            "CASE step WHEN 0 THEN 'task.queued' WHEN 1 THEN 'task.started' ELSE "
            + end.format("'task.failed'", "'task.succeeded'")
            + " END",
            task_id,
            task_name,
            f"CASE WHEN k IS NULL THEN '' ELSE {periodic_task_name} END",
            "CASE step WHEN 0 THEN 'PENDING' WHEN 1 THEN 'STARTED' ELSE "
            + end.format("'FAILURE'", "'SUCCESS'")
            + " END",
            f"CASE WHEN step = 0 THEN '' ELSE {worker} END",
            "CASE WHEN step = 2 THEN (done_us - started_us) / 1000000.0 END",
            f"CASE WHEN step = 2 AND failed = 1 THEN {_literal(FAILURE_MESSAGE)} ELSE '' END",
            dialect.json("CASE WHEN step = 0 THEN '{\"queue\": \"default\"}' ELSE '{}' END"),
            "''",
            "''",
            dialect.timestamp(
                "CASE step WHEN 0 THEN created_us WHEN 1 THEN started_us ELSE done_us END"
            ),
        ]
    column_list = ", ".join(f'"{column}"' for column in columns)
    return (
        f'{prefix}INSERT INTO "{table}" ({column_list}) '
        f"SELECT {', '.join(values)} FROM ({run_rows}) AS runs"
    )


@contextmanager
def _bulk_session(dialect: Dialect) -> Iterator[None]:
    """Settings of this connection that make a bulk load fast and are safe on a throwaway."""
    from django.db import connection

    with connection.cursor() as cursor:
        if dialect.postgres:
            cursor.execute("SET synchronous_commit = off")
            cursor.execute("SET maintenance_work_mem = '512MB'")
            cursor.execute("SET work_mem = '256MB'")
        else:
            cursor.execute("PRAGMA synchronous = OFF")
            cursor.execute("PRAGMA cache_size = -1000000")  # KiB: 1 GB while loading
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if dialect.postgres:
                cursor.execute("RESET synchronous_commit")
                cursor.execute("RESET maintenance_work_mem")
                cursor.execute("RESET work_mem")
            else:
                cursor.execute("PRAGMA synchronous = NORMAL")
                cursor.execute("PRAGMA cache_size = -2000")


@contextmanager
def _without_secondary_indexes(dialect: Dialect, table: str, loaded: Loaded) -> Iterator[None]:
    """Drop the table's indexes that back no constraint, and build them again after the load.

    Building an index from sorted rows once is many times faster than keeping a dozen indexes
    up to date through millions of inserts; whatever indexes the migrations created (today's or
    a colleague's new ones) come back exactly as they were.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        if dialect.postgres:
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname"
                " NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
                [table, table],
            )
        else:
            cursor.execute(
                "SELECT name, sql FROM sqlite_master"
                " WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL",
                [table],
            )
        indexes = list(cursor.fetchall())
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
    try:
        yield
    finally:
        with loaded.timed(f"indexes_{table}"), connection.cursor() as cursor:
            for _, definition in indexes:
                cursor.execute(definition)


def _analyze(dialect: Dialect) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        # As autovacuum would have long since: planner statistics, and on PostgreSQL the
        # visibility map that lets an index answer alone.
        cursor.execute("VACUUM ANALYZE" if dialect.postgres else "ANALYZE")


# --- Rows made through Django --------------------------------------------------------------------


def _catalog_tasks_without_parameters() -> list[str]:
    from scheduler.catalog import load_catalog

    names = [
        entry.name
        for entry in load_catalog()
        if not any(field.is_required() for field in entry.params.model_fields.values())
    ]
    if not names:
        raise SystemExit("no catalog task without required parameters to schedule")
    return names


def _task_names(periodic_task_tasks: list[str]) -> list[str]:
    """TASK_NAMES names results carry: every catalog task, then tasks long gone from it."""
    from scheduler.catalog import load_catalog

    names = sorted(set(load_catalog().names()) | set(periodic_task_tasks))
    retired = (f"legacy.job_{number:02d}" for number in range(TASK_NAMES))
    while len(names) < TASK_NAMES:
        names.append(next(retired))
    return names[:TASK_NAMES]


def _periodic_tasks(count: int) -> list[str]:
    """sched-0 .. sched-<count - 1>, half on intervals, half on crontabs, each with its
    ScheduleOptions as the services write them; the catalog tasks they run, by index modulo."""
    from django.db import transaction
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
    from django_celery_beat.models import PeriodicTasks as ChangeMarker

    from scheduler.catalog import load_catalog
    from scheduler.models import ScheduleOptions

    tasks = _catalog_tasks_without_parameters()
    catalog = load_catalog()
    intervals = [
        IntervalSchedule.objects.get_or_create(every=every, period=period)[0]
        for every, period in INTERVALS
    ]
    crontabs = []
    for expression in CRONTABS:
        minute, hour, day_of_month, month_of_year, day_of_week = expression.split()
        crontabs.append(
            CrontabSchedule.objects.get_or_create(
                minute=minute,
                hour=hour,
                day_of_month=day_of_month,
                month_of_year=month_of_year,
                day_of_week=day_of_week,
                timezone="UTC",
            )[0]
        )
    rows: list[PeriodicTask] = []
    phrases: list[str] = []
    for number in range(count):
        task = tasks[number % len(tasks)]
        row = PeriodicTask(
            name=f"sched-{number}",
            task=task,
            args="[]",
            kwargs="{}",
            queue=catalog.get(task).queue,
            # The ones beyond the active 300 never ran; a few of them were switched off.
            enabled=number < ACTIVE_PERIODIC_TASKS or number % 10 != 0,
            description=f"benchmark schedule {number}",
        )
        if number % 2 == 0:
            interval = intervals[(number // 2) % len(intervals)]
            row.interval = interval
            unit = interval.period.rstrip("s") if interval.every == 1 else interval.period
            phrases.append(f"every {interval.every} {unit}")
        else:
            expression = CRONTABS[(number // 2) % len(CRONTABS)]
            row.crontab = crontabs[(number // 2) % len(crontabs)]
            phrases.append(expression)
        rows.append(row)
    with transaction.atomic():
        PeriodicTask.objects.bulk_create(rows, batch_size=2000)
        ScheduleOptions.objects.bulk_create(
            [
                ScheduleOptions(periodic_task=row, phrase=phrase, timezone="UTC")
                for row, phrase in zip(rows, phrases, strict=True)
            ],
            batch_size=2000,
        )
    ChangeMarker.update_changed()  # as django-celery-beat asks after a bulk change
    return tasks


def _people_and_objects(loaded: Loaded, now: datetime) -> None:
    """A superuser, chat agents with sessions and messages, and a live tournament."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from agents.demo import seed_demo_agents
    from agents.models import Agent, Message, Session
    from agents.services import agent_create
    from scheduler.schedules import declared_schedules
    from scheduler.services import schedules_sync
    from tournaments.demo import seed_demo_tournament
    from tournaments.models import Tournament

    user = get_user_model().objects.create_superuser(
        username="history-admin", email="history-admin@example.com", password=None
    )
    loaded.superuser_id = user.pk
    seed_demo_agents()
    schedules_sync(declared_schedules(beat_schedule={}))
    seed_demo_tournament(now=now)
    with transaction.atomic():
        agents = list(Agent.objects.filter(kind=Agent.Kind.CHAT))
        for number in range(1, 4):
            agents.append(agent_create(name=f"Helper {number}", slug=f"helper-{number}"))
        for agent in agents:
            session = Session.objects.filter(agent=agent).first() or Session.objects.create(
                agent=agent, user=user
            )
            first = now - timedelta(minutes=2 * SESSION_MESSAGES)
            messages = [
                Message(
                    session=session,
                    role=Message.Role.USER if number % 2 == 0 else Message.Role.ASSISTANT,
                    content=(
                        f"question {number // 2}: when does the nightly backup run?"
                        if number % 2 == 0
                        else f"answer {number // 2}: every day at 02:30 UTC, see the admin."
                    ),
                    created_at=first + timedelta(minutes=2 * number),
                )
                for number in range(SESSION_MESSAGES)
            ]
            Message.objects.bulk_create(messages)
            Session.objects.filter(pk=session.pk).update(last_message_at=messages[-1].created_at)
        loaded.session_id = (
            Session.objects.filter(agent=agents[0]).order_by("pk").values_list("pk", flat=True)[0]
        )
    tournament = Tournament.objects.filter(status=Tournament.Status.LIVE).order_by("-pk").first()
    if tournament is None:
        raise SystemExit("the demo seed made no live tournament")
    loaded.tournament_id = tournament.pk


def _object_events(loaded: Loaded, now: datetime) -> None:
    """OBJECT_EVENTS events of sessions, tournaments and agents over the month; the session and
    tournament the pages show have the latest of theirs."""
    from scheduler.models import TaskEvent

    kinds = [
        ("session.message", "session", loaded.session_id, "USER"),
        ("tournament.leaderboard", "tournament", loaded.tournament_id, "LIVE"),
        ("agent.post", "agent", 1, "PUBLISHED"),
    ]
    span = timedelta(days=DAYS) / OBJECT_EVENTS
    rows = []
    for number in range(OBJECT_EVENTS):
        event_type, object_type, shown_id, state = kinds[number % len(kinds)]
        # Every fifth is the shown object's, the others spread over 200 others of its kind.
        object_id = shown_id if number % 5 == 0 else 100_000 + number % 200
        payload: dict[str, Any] = (
            {"tick": number, "leaderboard": []}
            if object_type == "tournament"
            else {"message": {"id": number, "content": f"message {number}"}}
        )
        rows.append(
            TaskEvent(
                type=event_type,
                state=state,
                message=f"{object_type} {object_id}: event {number}",
                payload=payload,
                object_type=object_type,
                object_id=str(object_id),
                created_at=now - timedelta(days=DAYS) + span * number,
            )
        )
    TaskEvent.objects.bulk_create(rows, batch_size=2000)
    loaded.counts["object_events"] = len(rows)


def _last_runs() -> None:
    """Each periodic task's last_run_at and run count, as beat would have left them."""
    from django.db.models import Count
    from django_celery_beat.models import PeriodicTask
    from django_celery_results.models import TaskResult

    from scheduler.models import ScheduleState

    last = dict(ScheduleState.objects.values_list("periodic_task_name", "created_at"))
    runs = dict(
        TaskResult.objects.exclude(periodic_task_name=None)
        .values_list("periodic_task_name")
        .annotate(count=Count("id"))
        .values_list("periodic_task_name", "count")
        .order_by()
    )
    rows = list(PeriodicTask.objects.filter(name__in=last))
    for row in rows:
        row.last_run_at = last[row.name]
        row.total_run_count = runs.get(row.name, 0)
    PeriodicTask.objects.bulk_update(rows, ["last_run_at", "total_run_count"], batch_size=500)


def _pick_examples(loaded: Loaded) -> None:
    from django_celery_beat.models import PeriodicTask
    from django_celery_results.models import TaskResult

    loaded.periodic_task_id = PeriodicTask.objects.get(name="sched-17").pk
    # A failed run of sched-17 from the middle of the month: the API's detail of one result.
    middle = TaskResult.objects.filter(periodic_task_name="sched-17", status="FAILURE").order_by(
        "date_done"
    )
    count = middle.count()
    example = middle[count // 2] if count else TaskResult.objects.order_by("id").first()
    if example is None:
        raise SystemExit("no result was loaded")
    loaded.result_task_id = example.task_id


def _count(loaded: Loaded) -> None:
    from django_celery_beat.models import PeriodicTask
    from django_celery_results.models import TaskResult

    from scheduler.models import TaskEvent

    loaded.counts.update(
        {
            "periodic_tasks": PeriodicTask.objects.count(),
            "results": TaskResult.objects.count(),
            "failures": TaskResult.objects.filter(status="FAILURE").count(),
            "events": TaskEvent.objects.count(),
            "results_of_sched_17": TaskResult.objects.filter(periodic_task_name="sched-17").count(),
        }
    )
