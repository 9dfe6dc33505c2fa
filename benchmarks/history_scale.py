"""History at scale (issue 14): every daily page stays fast with millions of results and events.

Data (benchmarks/_history_data.py, loaded in bulk inside the database): --periodic-tasks
django-celery-beat periodic tasks (sched-0 ..., interval and crontab schedules, catalog tasks, a
ScheduleOptions row each), --results TaskResult rows over 30 days (80 % sent by sched-0 ..
sched-299, 40 task names, 3 % FAILURE with a traceback, the rest SUCCESS), three TaskEvent rows
per result (queued, started, succeeded or failed), a few thousand events of domain objects, a
superuser, chat agents with sessions of 50 messages and a live tournament. Then ANALYZE (VACUUM
ANALYZE on PostgreSQL) and `schedule_states_rebuild()`: a bulk load bypasses the result backend
that keeps ScheduleState up to date.

Pages: each requested in this process with Django's test client as the superuser (DEBUG off),
one warm call, then the median of --rounds. A page whose warm call takes longer than
--page-timeout is recorded as that one sample (a later slow call ends its rounds too) and marked
OVER. Any answer but 200 is a failure: its error is printed and the run exits 1 after reporting
the rest.

Baseline, in the same run on the same data: the stock django-celery-beat PeriodicTaskAdmin and
django-celery-results TaskResultAdmin on an AdminSite of their own; each of our four admin pages
that has a stock counterpart is timed right before it. Budgets: every page's median within
200 ms on PostgreSQL and 400 ms on SQLite up to 1.5M results (300 ms on PostgreSQL above), and
our admin pages within 1.5x the stock ones.

--with-cleanup: the pages again while a retention cleanup deletes the oldest half of the
history (`scheduler.services.retention.retention_run(older_than_days=15)` when it is there, else
`scheduler.services.history_clear` day by day) in a process of its own, as a worker would
(--cleanup-in thread: in a thread of this process, whose Python work then competes with the
pages' for the GIL).

    .venv/bin/python benchmarks/history_scale.py --results 20000
    .venv/bin/python benchmarks/history_scale.py --results 1000000 --database postgres
    .venv/bin/python benchmarks/history_scale.py --results 1000000 --database sqlite --with-cleanup
    .venv/bin/python benchmarks/history_scale.py --results 20000 --database postgres --keep

Writes benchmarks/results/history_scale-<database>-<results>.json.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import io
import json
import logging
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from _harness import _postgres_create, database_vendor, environment, write_result
from _history_data import DAYS, Loaded, load

DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432"
LARGE = 1_500_000
BUDGET_MS = {
    ("postgresql", False): 200.0,
    ("sqlite", False): 400.0,
    ("postgresql", True): 300.0,
    # The issue sets no budget for SQLite above 1.5M results: its 1.5M one still applies.
    ("sqlite", True): 400.0,
}
RATIO_BUDGET = 1.5
STOCK_SITE = "stockadmin"
STOCK_URLCONF = "history_scale_stock_urls"
CLEANUP_OLDER_THAN_DAYS = 15
CLEANUP_BATCH = 1000  # history_clear's, when there is no retention_run
CLEANUP_SLICE_SECONDS = 5.0
HISTORY_TABLES = ("task results", "task events")
# Bounds of the cleanup: how long it may take to start, and to stop after the pages (it stops
# between two slices of CLEANUP_SLICE_SECONDS, or two days' rows with history_clear).
CLEANUP_START_TIMEOUT = 60.0
CLEANUP_STOP_TIMEOUT = 600.0


class PageFailed(Exception):
    pass


@dataclass(frozen=True)
class Page:
    key: str
    label: str
    fetch: Callable[[], None]
    # The stock admin's page measured as the baseline of this one.
    stock: Page | None = None


@dataclass
class Measured:
    samples_ms: list[float] = field(default_factory=list)
    warm_ms: float | None = None
    median_ms: float | None = None
    timed_out: bool = False
    error: str | None = None
    cleanup_running: bool | None = None


# --- Pages ---------------------------------------------------------------------------------------


def _get(client: Any, url: str) -> Callable[[], None]:
    def fetch() -> None:
        response = client.get(url)
        # The API's task detail may stream: reading its body is part of the page's work.
        body = b"".join(response.streaming_content) if response.streaming else response.content
        if response.status_code != 200:
            shown = body.decode(errors="replace")[:800]
            raise PageFailed(f"GET {url}: HTTP {response.status_code}: {shown}")

    return fetch


def _command(*argv: str) -> Callable[[], None]:
    def fetch() -> None:
        from django.core.management import call_command

        out, err = io.StringIO(), io.StringIO()
        try:
            call_command("scheduler", *argv, stdout=out, stderr=err)
        except SystemExit as exc:
            if exc.code:
                command = " ".join(argv)
                raise PageFailed(
                    f"scheduler {command} exited {exc.code}: {err.getvalue()}"
                ) from exc
        if not out.getvalue():
            raise PageFailed(f"scheduler {' '.join(argv)} printed nothing: {err.getvalue()}")

    return fetch


def stock_urlconf() -> str:
    """A URL conf with the stock admins of periodic tasks and results under /stock-admin/."""
    from django.contrib.admin import AdminSite
    from django.urls import include, path
    from django_celery_beat.admin import PeriodicTaskAdmin
    from django_celery_beat.models import PeriodicTask
    from django_celery_results.admin import TaskResultAdmin
    from django_celery_results.models import TaskResult

    site = AdminSite(name=STOCK_SITE)
    site.register(PeriodicTask, PeriodicTaskAdmin)
    site.register(TaskResult, TaskResultAdmin)
    module = types.ModuleType(STOCK_URLCONF)
    module.__dict__["urlpatterns"] = [
        path("stock-admin/", site.urls),
        path("", include("config.urls")),
    ]
    sys.modules[STOCK_URLCONF] = module
    return STOCK_URLCONF


def pages(client: Any, loaded: Loaded) -> list[Page]:
    from django.test import override_settings
    from django.urls import reverse

    urlconf = stock_urlconf()
    tasks = reverse("admin:django_celery_beat_periodictask_changelist")
    results = reverse("admin:django_celery_results_taskresult_changelist")
    with override_settings(ROOT_URLCONF=urlconf):
        stock_tasks = reverse(f"{STOCK_SITE}:django_celery_beat_periodictask_changelist")
        stock_results = reverse(f"{STOCK_SITE}:django_celery_results_taskresult_changelist")

    def stock(key: str, label: str, url: str) -> Page:
        get = _get(client, url)

        def fetch() -> None:
            with override_settings(ROOT_URLCONF=urlconf):
                get()

        return Page(f"stock-{key}", f"stock {label}", fetch)

    def admin(key: str, label: str, url: str, stock_url: str | None = None) -> Page:
        baseline = stock(key, label, stock_url) if stock_url else None
        return Page(key, label, _get(client, url), baseline)

    api_tasks = reverse("api-tasks")
    return [
        admin("admin-periodic-tasks", "admin periodic tasks", tasks, stock_tasks),
        admin("admin-results", "admin results", results, stock_results),
        admin(
            "admin-results-search",
            "admin results ?q=sched-17",
            f"{results}?q=sched-17",
            f"{stock_results}?q=sched-17",
        ),
        admin(
            "admin-results-failures",
            "admin results ?status__exact=FAILURE",
            f"{results}?status__exact=FAILURE",
            f"{stock_results}?status__exact=FAILURE",
        ),
        admin(
            "admin-results-periodic-task",
            "admin results ?periodic_task_name=sched-17",
            f"{results}?periodic_task_name=sched-17",
        ),
        admin(
            "admin-periodic-task-change",
            "admin periodic task sched-17",
            reverse("admin:django_celery_beat_periodictask_change", args=[loaded.periodic_task_id]),
        ),
        admin("dashboard", "/dashboard/", reverse("dashboard")),
        admin("dashboard-summary", "dashboard summary JSON", reverse("dashboard-summary")),
        admin("metrics", "/metrics", reverse("metrics")),
        admin("api-tasks", "/api/tasks/", api_tasks),
        admin("api-tasks-failed", "/api/tasks/?status=failed", f"{api_tasks}?status=failed"),
        admin(
            "api-task-detail",
            "/api/tasks/<id>/",
            reverse("api-task-detail", args=[loaded.result_task_id]),
        ),
        Page("cli-history", "scheduler history --limit 50", _command("history", "--limit", "50")),
        Page("cli-status", "scheduler status", _command("status")),
        admin("admin-agents", "admin agents", reverse("admin:agents_agent_changelist")),
        admin(
            "admin-tournaments",
            "admin tournaments",
            reverse("admin:tournaments_tournament_changelist"),
        ),
        admin("chat", "chat page", reverse("agents-chat", args=[loaded.session_id])),
        admin(
            "tournament",
            "tournament page",
            reverse("tournaments-page", args=[loaded.tournament_id]),
        ),
    ]


# --- Measuring -----------------------------------------------------------------------------------


def measure(page: Page, rounds: int, timeout: float) -> Measured:
    """One warm call, then `rounds` timed ones; a call slower than `timeout` ends the page."""
    measured = Measured()
    try:
        started = time.perf_counter()
        page.fetch()
        measured.warm_ms = round((time.perf_counter() - started) * 1000, 1)
        if measured.warm_ms > timeout * 1000:
            measured.samples_ms = [measured.warm_ms]
            measured.timed_out = True
        else:
            for _ in range(rounds):
                started = time.perf_counter()
                page.fetch()
                measured.samples_ms.append(round((time.perf_counter() - started) * 1000, 1))
                if measured.samples_ms[-1] > timeout * 1000:
                    measured.timed_out = True
                    break
    except Exception as exc:
        measured.error = f"{type(exc).__name__}: {exc}"[:2000]
        print(f"\n{page.label} FAILED:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        return measured
    measured.median_ms = round(statistics.median(measured.samples_ms), 1)
    return measured


def measure_all(
    page_list: list[Page], args: argparse.Namespace, during: Callable[[], bool] | None = None
) -> dict[str, Measured]:
    """Every page, each stock baseline right before its page (so both meet the same caches)."""
    from django.conf import settings
    from django.test import override_settings

    measured: dict[str, Measured] = {}
    hosts = [*settings.ALLOWED_HOSTS, "testserver"]
    # Production settings: no query log kept in memory, the test client's host allowed.
    with override_settings(DEBUG=False, ALLOWED_HOSTS=hosts):
        for page in page_list:
            for each in (page.stock, page):
                if each is None:
                    continue
                print(f"  {each.label} ...", end="", flush=True)
                result = measure(each, args.rounds, args.page_timeout)
                if during is not None:
                    result.cleanup_running = during()
                measured[each.key] = result
                shown = "FAILED" if result.error else f"{result.median_ms} ms"
                print(f" {shown}", flush=True)
    return measured


def budget_ms(vendor: str, results: int) -> float:
    return BUDGET_MS[(vendor, results > LARGE)]


def rows(
    page_list: list[Page], measured: dict[str, Measured], budget: float
) -> list[dict[str, Any]]:
    table = []
    for page in page_list:
        ours = measured[page.key]
        stock = measured[page.stock.key] if page.stock else None
        ratio = None
        if stock and ours.median_ms is not None and stock.median_ms:
            ratio = round(ours.median_ms / stock.median_ms, 2)
        slow = ours.timed_out or (ours.median_ms or 0) > budget
        if ours.error or (stock is not None and stock.error):
            verdict = "FAILED"
        elif slow or (ratio is not None and ratio > RATIO_BUDGET):
            verdict = "OVER"
        else:
            verdict = "ok"
        table.append(
            {
                "key": page.key,
                "page": page.label,
                "ours": asdict(ours),
                "stock": asdict(stock) if stock else None,
                "ratio": ratio,
                "budget_ms": budget,
                "ratio_budget": RATIO_BUDGET if stock else None,
                "verdict": verdict,
            }
        )
    return table


def report(title: str, table: list[dict[str, Any]]) -> None:
    def ms(figures: dict[str, Any] | None) -> str:
        if figures is None:
            return "-"
        if figures["error"]:
            return "error"
        mark = " (>timeout)" if figures["timed_out"] else ""
        return f"{figures['median_ms']:.1f}{mark}"

    print()
    print(title)
    header = (
        f"{'page':<44} | {'ours ms':>16} | {'stock ms':>16} | {'ratio':>6} | "
        f"{'budget':>15} | verdict"
    )
    print(header)
    print("-" * len(header))
    for row in table:
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
        budget = f"{row['budget_ms']:.0f} ms"
        if row["ratio_budget"]:
            budget += f", {row['ratio_budget']:g}x"
        running = row["ours"]["cleanup_running"]
        note = "" if running is None or running else "  (cleanup had finished)"
        print(
            f"{row['page']:<44} | {ms(row['ours']):>16} | {ms(row['stock']):>16} | "
            f"{ratio:>6} | {budget:>15} | {row['verdict']}{note}"
        )


# --- Cleanup while the pages are read ------------------------------------------------------------


def cleanup_history(stopping: Callable[[], bool]) -> dict[str, Any]:
    """Delete the history older than CLEANUP_OLDER_THAN_DAYS days (half of it), in batches,
    until done or `stopping()`; how, and what went."""
    retention: Any = None
    # Where a checkout keeps it: scheduler/services/ now, scheduler/system/ or scheduler/ before.
    for path in (
        "scheduler.services.retention",
        "scheduler.system.retention",
        "scheduler.retention",
    ):
        try:
            retention = importlib.import_module(path)
            break
        except ImportError:
            continue
    run = getattr(retention, "retention_run", None)
    parameters = set(inspect.signature(run).parameters) if callable(run) else set()
    deleted: dict[str, int] = {}
    if run is not None and "older_than_days" in parameters:
        # Its own batch size (the RETENTION_BATCH_SIZE setting), as production runs it; only the
        # history tables.
        options: dict[str, Any] = {"older_than_days": CLEANUP_OLDER_THAN_DAYS}
        if "tables" in parameters:
            options["tables"] = list(getattr(retention, "HISTORY_TABLES", HISTORY_TABLES))
        # In slices of its time budget, so that a stop request is heard between two of them
        # (each slice that runs out logs a warning meant for production: not wanted here).
        sliced = "time_budget" in parameters
        if sliced:
            options["time_budget"] = CLEANUP_SLICE_SECONDS
            logging.getLogger(run.__module__).setLevel(logging.ERROR)
        shown = ", ".join(f"{name}={value!r}" for name, value in options.items())
        how = f"retention_run({shown}){' repeated' if sliced else ''}"
        while not stopping():
            answer = run(**options)
            for label, count in answer.items():
                deleted[label] = deleted.get(label, 0) + count
            if not sliced or getattr(answer, "complete", True):
                break
        return {"how": how, "deleted": deleted}
    from scheduler.services import history_clear

    # A day at a time, oldest first, so that a stop request is heard within a day's rows.
    how = (
        f"history_clear(older_than_days={DAYS - 1}..{CLEANUP_OLDER_THAN_DAYS}, "
        f"batch_size={CLEANUP_BATCH})"
    )
    total = 0
    for days in range(DAYS - 1, CLEANUP_OLDER_THAN_DAYS - 1, -1):
        if stopping():
            break
        total += history_clear(older_than_days=days, batch_size=CLEANUP_BATCH)
    return {"how": how, "deleted": {"results and events": total}}


class CleanupThread(threading.Thread):
    """The cleanup in a thread of this process (Django gives it a connection of its own)."""

    def __init__(self) -> None:
        super().__init__(name="history-cleanup", daemon=True)
        self.stopping = threading.Event()
        self.figures: dict[str, Any] = {"error": None}

    def run(self) -> None:
        from django.db import connections

        started = time.perf_counter()
        try:
            self.figures.update(cleanup_history(self.stopping.is_set))
        except Exception:
            self.figures["error"] = traceback.format_exc()
        finally:
            self.figures["seconds"] = round(time.perf_counter() - started, 1)
            connections.close_all()  # this thread's connections only

    def stop(self) -> dict[str, Any]:
        self.stopping.set()
        self.join(CLEANUP_STOP_TIMEOUT)
        return {**self.figures, "stopped": not self.is_alive()}


class CleanupProcess:
    """The cleanup in a process of its own, as a worker runs it in production: its Python
    work does not compete with the pages' for this process's GIL."""

    def __init__(self) -> None:
        argv = [sys.executable, os.path.abspath(__file__), "--cleanup-child"]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.stdout = self.process.stdout
        ready, _, _ = select.select([self.stdout], [], [], CLEANUP_START_TIMEOUT)
        if not ready or self.stdout.readline().strip() != "started":
            self.process.kill()
            self.process.wait(CLEANUP_STOP_TIMEOUT)
            raise SystemExit("the cleanup process did not start")

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> dict[str, Any]:
        if self.is_alive():
            self.process.send_signal(signal.SIGTERM)  # heard between two slices
        try:
            output, _ = self.process.communicate(timeout=CLEANUP_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate(timeout=CLEANUP_STOP_TIMEOUT)
            return {"error": "did not stop in time: killed", "stopped": False}
        lines = output.strip().splitlines()
        if self.process.returncode or not lines:
            return {"error": f"exited {self.process.returncode}", "stopped": True}
        return {**json.loads(lines[-1]), "stopped": True}


def cleanup_child() -> None:
    """--cleanup-child: Django set up from the environment the parent's harness made."""
    import django

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    django.setup()
    print("started", flush=True)
    started = time.perf_counter()
    figures: dict[str, Any] = {"error": None}
    try:
        figures.update(cleanup_history(stopping.is_set))
    except Exception:
        figures["error"] = traceback.format_exc()
    figures["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(figures), flush=True)


@contextmanager
def cleanup_running(where: str) -> Iterator[tuple[Callable[[], bool], dict[str, Any]]]:
    """The cleanup running meanwhile: (is it still running, its figures once stopped)."""
    cleanup: CleanupThread | CleanupProcess
    if where == "thread":
        cleanup = CleanupThread()
        cleanup.start()
    else:
        cleanup = CleanupProcess()
    figures: dict[str, Any] = {"where": where}
    started = time.perf_counter()
    try:
        yield cleanup.is_alive, figures
    finally:
        # Whether it had finished by itself before it was asked to stop.
        figures["finished_during_pages"] = not cleanup.is_alive()
        figures["pages_seconds"] = round(time.perf_counter() - started, 1)
        figures.update(cleanup.stop())
        if not figures["stopped"]:
            print(
                f"the cleanup did not stop within {CLEANUP_STOP_TIMEOUT:.0f} s",
                file=sys.stderr,
            )


# --- Main ----------------------------------------------------------------------------------------


def choose_database(args: argparse.Namespace) -> str | None:
    """Point the harness at the database asked for; what to tell about a kept one."""
    for name in ("BENCH_POSTGRES", "BENCH_DATABASE_URL"):
        os.environ.pop(name, None)
    if args.database == "postgres":
        if not args.keep:
            os.environ["BENCH_POSTGRES"] = args.postgres_server  # created and dropped
            return None
        url = _postgres_create(args.postgres_server, f"as_bench_history_{os.getpid()}")
        os.environ["BENCH_DATABASE_URL"] = url
        return url
    if not args.keep:
        return None  # the harness's SQLite file in its temporary directory
    path = os.path.join(tempfile.gettempdir(), f"history_scale-{os.getpid()}.sqlite3")
    os.environ["BENCH_DATABASE_URL"] = f"sqlite:///{path}"
    return os.environ["BENCH_DATABASE_URL"]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--results", type=int, default=1_000_000, help="task results (events: 3x)")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--postgres-server",
        default=os.environ.get("BENCH_POSTGRES") or DEFAULT_SERVER,
        help=f"PostgreSQL server for --database postgres (default {DEFAULT_SERVER})",
    )
    parser.add_argument("--rounds", type=int, default=5, help="timed calls per page, after one")
    parser.add_argument("--periodic-tasks", type=int, default=1000)
    parser.add_argument(
        "--page-timeout",
        type=float,
        default=20.0,
        help="seconds: a call slower than this ends the page's measurement (marked OVER)",
    )
    parser.add_argument(
        "--with-cleanup", action="store_true", help="the pages again while a cleanup deletes"
    )
    parser.add_argument(
        "--cleanup-in",
        choices=["process", "thread"],
        default="process",
        help="where the cleanup runs (default: a process, as a worker in production)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database for inspection")
    parser.add_argument("--cleanup-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cleanup_child:
        cleanup_child()
        return
    if args.results < 1000 or args.rounds < 1:
        raise SystemExit("--results at least 1000, --rounds at least 1")
    kept = choose_database(args)
    # As in production: with DEBUG on every query would be kept in memory, at the pages' cost.
    os.environ["DEBUG"] = "false"
    # The throwaway VAR_DIR has no collected static files; pages render without them.
    warnings.filterwarnings("ignore", message="No directory at: ")
    figures: dict[str, Any] = {}
    with environment():
        from django.contrib.auth import get_user_model
        from django.test import Client

        from scheduler.live.publisher import publisher

        vendor = database_vendor()
        budget = budget_ms(vendor, args.results)
        try:
            print(
                f"loading {args.results:,} results, {3 * args.results:,} events and "
                f"{args.periodic_tasks:,} periodic tasks into {vendor}...",
                flush=True,
            )
            loaded = load(results=args.results, periodic_tasks=args.periodic_tasks)
            print(f"loaded in {loaded.seconds['total']:.1f} s: {loaded.seconds}")
            print(f"rows: {loaded.counts}", flush=True)
            client = Client()
            client.force_login(get_user_model().objects.get(pk=loaded.superuser_id))
            page_list = pages(client, loaded)
            # Other processes on the machine weigh on every figure: recorded beside them.
            load_average = {"before_pages": os.getloadavg()}
            print(f"pages (load average {load_average['before_pages'][0]:.1f}):", flush=True)
            table = rows(page_list, measure_all(page_list, args), budget)
            cleanup_table = None
            cleanup_figures = None
            if args.with_cleanup:
                print(f"pages while a cleanup runs (in a {args.cleanup_in}):", flush=True)
                with cleanup_running(args.cleanup_in) as (running, cleanup_figures):
                    measured = measure_all(page_list, args, during=running)
                cleanup_table = rows(page_list, measured, budget)
            load_average["after_pages"] = os.getloadavg()
        finally:
            publisher().stop()
    title = (
        f"history_scale on {vendor}: {loaded.counts['results']:,} results, "
        f"{loaded.counts['events']:,} events, {loaded.counts['periodic_tasks']:,} periodic "
        f"tasks (loaded in {loaded.seconds['total']:.1f} s); median of {args.rounds} after "
        f"one warm call\n(load average of the machine: {load_average['before_pages'][0]:.1f} "
        f"before the pages, {load_average['after_pages'][0]:.1f} after)"
    )
    report(title, table)
    over = sum(row["verdict"] == "OVER" for row in table)
    failed = sum(row["verdict"] == "FAILED" for row in table)
    summary = f"{over} pages over budget" + (f", {failed} FAILED" if failed else "")
    if cleanup_table is not None and cleanup_figures is not None:
        how = cleanup_figures.get("how", "the cleanup")
        report(f"the same pages while {how} runs in a {args.cleanup_in}", cleanup_table)
        print(f"cleanup: {cleanup_figures}")
        if cleanup_figures.get("error"):
            print(cleanup_figures["error"], file=sys.stderr)
        cleanup_over = sum(row["verdict"] == "OVER" for row in cleanup_table)
        cleanup_failed = sum(row["verdict"] == "FAILED" for row in cleanup_table)
        summary += f"; while the cleanup ran: {cleanup_over} pages over budget" + (
            f", {cleanup_failed} FAILED" if cleanup_failed else ""
        )
        failed += cleanup_failed
    print()
    print(summary)
    figures.update(
        {
            "database": vendor,
            "settings": {
                "results": args.results,
                "periodic_tasks": args.periodic_tasks,
                "rounds": args.rounds,
                "page_timeout_s": args.page_timeout,
                "with_cleanup": args.with_cleanup,
                "cleanup_in": args.cleanup_in if args.with_cleanup else None,
            },
            "budgets": {"page_ms": budget, "ours_over_stock": RATIO_BUDGET},
            "sizes": loaded.counts,
            "load_seconds": loaded.seconds,
            "load_average": load_average,
            "pages": table,
            "cleanup": {**cleanup_figures, "pages": cleanup_table} if cleanup_figures else None,
            "summary": summary,
        }
    )
    path = write_result(f"history_scale-{vendor}-{args.results}", figures)
    print(f"written: {path}")
    if kept:
        print(f"database kept: {kept}")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
