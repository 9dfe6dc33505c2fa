"""`manage.py stack`: the whole product as real processes, started and stopped like a user does."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from agents.models import Agent
from scheduler.devstack.supervisor import ProcessSpec
from scheduler.schedules import declared_schedules
from tests.processes import MANAGE, child_env, run_manage, wait_for
from tournaments.models import Tournament

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "stack-test-password"
BASE_DIR = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def var_dir() -> Iterator[Path]:
    # Short: the embedded Redis socket lives in it, and socket paths are limited to 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="as-stack-"))
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


@pytest.fixture
def stack_env(var_dir: Path) -> dict[str, str]:
    """The newcomer's configuration: production settings, embedded Redis, the test database."""
    return child_env(
        DJANGO_SETTINGS_MODULE="config.settings.base",
        VAR_DIR=str(var_dir),
        REDIS_URL=None,
        TEST_EMBEDDED_REDIS=None,
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        ENV_FILE=str(var_dir / "none.env"),
    )


def _state(var_dir: Path) -> dict:
    return json.loads((var_dir / "run" / "stack.json").read_text())


def _running(var_dir: Path) -> bool:
    try:
        return _state(var_dir)["status"] == "running"
    except (OSError, ValueError, KeyError):
        return False


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _descendants(pid: int) -> list[int]:
    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310  (our own server)
        return response.status, response.read().decode()


def test_it_serves_the_admin_and_exits_nonzero_naming_a_worker_that_died(stack_env, var_dir):
    port = _free_port()
    log = var_dir / "foreground.log"
    with open(log, "wb") as out:
        stack = subprocess.Popen(
            [sys.executable, MANAGE, "stack", "up", "--seed-demo", "--port", str(port)],
            env=stack_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: _running(var_dir) or stack.poll() is not None,
            timeout=90,
            what="the stack to come up",
        )
        assert stack.poll() is None, log.read_text()
        wait_for(lambda: "press Ctrl-C to stop" in log.read_text(), timeout=10, what="the banner")
        lines = log.read_text().splitlines()
        # The demo is loaded once Redis answers and before what reads it starts, so nothing
        # says it cannot go live; the banner waits for the worker to consume its queues.
        assert not [line for line in lines if "Redis is not running" in line]
        seeded = _index(lines, "seed   | Created tournament 'Demo cup'")
        assert _index(lines, "redis  | ") < seeded < _index(lines, "web    | ")
        # The upkeep every app declares is synced first (issue 17), demo or not.
        synced = _index(lines, "sync   | + created 'tournaments: check transitions'")
        assert _index(lines, "redis  | ") < synced < seeded
        assert PeriodicTask.objects.filter(name="tournaments: check transitions").exists()
        assert _index(lines, f"worker@{socket.gethostname()} ready.") < _index(
            lines, "stack  | all processes are up"
        )
        assert Tournament.objects.filter(name="Demo cup").exists()
        status, body = _get(f"http://127.0.0.1:{port}/admin/login/")
        assert status == 200
        assert "<title>Log in" in body
        healthz_status, healthz = _get(f"http://127.0.0.1:{port}/healthz")
        assert healthz_status == 200, healthz

        shown = run_manage("stack", "status", env=stack_env)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        for name in ("redis", "web", "worker", "beat"):
            assert f"  {name:<8}up" in shown.stdout
        family = _descendants(stack.pid)
        worker_pid = next(p["pid"] for p in _state(var_dir)["processes"] if p["name"] == "worker")

        os.kill(worker_pid, signal.SIGKILL)
        code = stack.wait(timeout=90)

        output = log.read_text()
        assert code != 0
        assert f"worker (pid {worker_pid}) was killed by SIGKILL" in output
        assert output.rstrip().splitlines()[-1].startswith("CommandError: worker (pid")
        wait_for(lambda: not _alive(family), timeout=30, what="every child to exit")
        assert not (var_dir / "run" / "stack.json").exists()
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)
            stack.wait(10)


def _index(lines: list[str], text: str) -> int:
    """The number of the first line that contains `text`."""
    found = next((number for number, line in enumerate(lines) if text in line), None)
    assert found is not None, f"no line with {text!r} in:\n" + "\n".join(lines)
    return found


def test_detach_status_and_down(stack_env, var_dir):
    port = _free_port()

    up = run_manage("stack", "up", "--detach", "--port", str(port), env=stack_env, timeout=150)

    assert up.returncode == 0, up.stdout + up.stderr
    assert "running in the background" in up.stdout
    supervisor = int((var_dir / "run" / "stack.pid").read_text())
    try:
        family = [supervisor, *_descendants(supervisor)]
        status = run_manage("stack", "status", env=stack_env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert _get(f"http://127.0.0.1:{port}/admin/login/")[0] == 200
        # No seed_demo: the upkeep every app declares is there all the same (issue 17), and
        # beat runs it (the rankings every 30 seconds come first).
        declared = {item.name for item in declared_schedules(beat_schedule={})}
        assert declared <= set(PeriodicTask.objects.values_list("name", flat=True))
        wait_for(
            lambda: TaskResult.objects.filter(task_name="tournaments.update_rankings").exists(),
            timeout=75,
            what="beat to run the declared rankings and a worker to store the result",
        )
        # The transitions and the results cleanup are there to run too (beat runs them every
        # minute and daily); staff can run them at once.
        for name in ("tournaments: check transitions", "system: clean up results"):
            ran = run_manage("scheduler", "run", name, "--wait", env=stack_env, timeout=60)
            assert ran.returncode == 0, ran.stdout + ran.stderr
            assert "SUCCESS" in ran.stdout, ran.stdout

        again = run_manage("stack", "up", "--detach", "--port", str(_free_port()), env=stack_env)
        assert again.returncode != 0
        assert f"a stack is already running (pid {supervisor})" in again.stderr

        down = run_manage("stack", "down", env=stack_env, timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        assert down.stdout.strip() == "stack: stopped"
        wait_for(lambda: not _alive(family), timeout=30, what="every process to exit")

        after = run_manage("stack", "status", env=stack_env)
        assert after.returncode != 0
        assert after.stderr.strip() == "CommandError: stack: not running"
        assert "SIGTERM" in (var_dir / "log" / "stack.log").read_text()
    finally:
        if psutil.pid_exists(supervisor):
            os.kill(supervisor, signal.SIGKILL)


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_port_in_use_is_one_clear_line_saying_how_to_choose_another(stack_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        line = _one_line_error(run_manage("stack", "up", "--port", str(port), env=stack_env))

    assert f"cannot listen on 127.0.0.1:{port}" in line
    suggested = re.search(r"choose another with --port (\d+) \(`make run PORT=(\d+)`\)", line)
    assert suggested is not None, line
    assert suggested.group(1) == suggested.group(2)
    assert int(suggested.group(1)) > port


def test_a_refused_start_loads_no_demo_data(stack_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        line = _one_line_error(
            run_manage("stack", "up", "--seed-demo", "--port", str(port), env=stack_env)
        )

    assert f"cannot listen on 127.0.0.1:{port}" in line
    # No six-hour clock started for a stack that never ran.
    assert not Tournament.objects.exists()
    assert not Agent.objects.exists()


def test_an_embedded_redis_that_could_not_start_is_refused_before_any_demo_data(stack_env, var_dir):
    # Unix socket paths are limited to 107 bytes: redis-server would fail after the seeding.
    stack_env["VAR_DIR"] = str(var_dir / ("v" * 120))

    line = _one_line_error(
        run_manage("stack", "up", "--seed-demo", "--port", str(_free_port()), env=stack_env)
    )

    assert "the embedded Redis cannot listen on" in line
    assert not Tournament.objects.exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ([], "stack up --seed-demo --host 127.0.0.1 --port 8000"),
        (["PORT=8001"], "stack up --seed-demo --host 127.0.0.1 --port 8001"),
        (["PORT=8001", "HOST=0.0.0.0"], "stack up --seed-demo --host 0.0.0.0 --port 8001"),
    ],
)
def test_make_run_passes_host_and_port_to_stack_up(variables, expected):
    # The environment's HOST or PORT (tcsh exports HOST) is not meant for the web server.
    env = {**os.environ, "HOST": "example.invalid", "PORT": "1"}
    result = subprocess.run(
        ["make", "-n", "-C", str(BASE_DIR), "run", *variables],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    commands = result.stdout.splitlines()
    assert any(command.endswith(f"manage.py {expected}") for command in commands), result.stdout
    assert not any("seed_demo" in command for command in commands)


def test_an_unreachable_redis_url_is_one_clear_line(stack_env):
    stack_env["REDIS_URL"] = "redis://:secret@127.0.0.1:1/0"

    line = _one_line_error(run_manage("stack", "up", "--port", str(_free_port()), env=stack_env))

    assert "Redis at redis://:***@127.0.0.1:1/0 is unreachable" in line
    assert "secret" not in line


def test_a_malformed_database_url_is_one_clear_line(stack_env):
    stack_env["DATABASE_URL"] = "postgres//nope"

    line = _one_line_error(run_manage("stack", "up", env=stack_env))

    assert line.startswith("Configuration error: DATABASE_URL is not a URL")


def test_an_unknown_process_name_is_one_clear_line(stack_env):
    line = _one_line_error(run_manage("stack", "up", "--only", "web,flower", env=stack_env))

    assert "unknown process 'flower' in --only" in line
    assert "add flower with --with flower" in line


def test_flower_without_its_basic_auth_is_one_clear_line(stack_env):
    stack_env.pop("FLOWER_BASIC_AUTH", None)

    line = _one_line_error(
        run_manage("stack", "up", "--only", "worker", "--with", "flower", env=stack_env)
    )

    assert "FLOWER_BASIC_AUTH is not set: Flower runs behind basic auth only" in line


def test_a_flower_port_that_is_not_a_port_is_one_clear_line(stack_env):
    stack_env["FLOWER_BASIC_AUTH"] = "admin:secret"

    line = _one_line_error(
        run_manage("stack", "up", "--with", "flower", "--flower-port", "http", env=stack_env)
    )

    assert "Flower's port 'http' is not a port number (1-65535)" in line


def test_unapplied_migrations_are_one_clear_line(stack_env, var_dir):
    stack_env["DATABASE_URL"] = f"sqlite:///{var_dir / 'empty.sqlite3'}"

    line = _one_line_error(run_manage("stack", "up", "--port", str(_free_port()), env=stack_env))

    assert "migration(s) are not applied: run `python manage.py migrate` first" in line


def test_a_worker_is_ready_when_it_answers_not_at_its_first_heartbeat(var_dir):
    from scheduler.devstack.stack import StackOptions, StackPaths, build_specs, worker_hostname
    from scheduler.observability.worker_heartbeats import forget_worker, record_worker_seen

    options = StackOptions(host="127.0.0.1", port=_free_port(), only=frozenset({"worker"}))
    paths = StackPaths(run_dir=var_dir, log_dir=var_dir, redis_dir=var_dir)
    # The declared upkeep is synced before the worker (issue 17), then the worker starts.
    sync, worker = build_specs(options, paths)
    assert sync.name == "sync"
    assert isinstance(worker, ProcessSpec)
    assert worker.ready is not None
    # What a starting worker does before it consumes anything: its first heartbeat.
    record_worker_seen(worker_hostname())
    try:
        assert worker.ready() is False
    finally:
        forget_worker(worker_hostname())


def test_down_without_a_stack_says_so(stack_env):
    result = run_manage("stack", "down", env=stack_env)

    assert result.returncode == 0
    assert result.stdout.strip() == "stack: not running"


def test_an_embedded_redis_from_before_keeps_its_data_when_the_append_only_file_comes_on():
    import shutil

    from scheduler.devstack.stack import append_only_on, embedded_redis_argv
    from tests.processes import RedisServer

    root = Path(tempfile.mkdtemp(prefix="rdb-"))  # a short path: unix sockets are limited
    try:
        data = root / "redis"
        data.mkdir()
        server = RedisServer(url=f"unix://{root / 'r.sock'}", run_dir=root)
        # A Redis of before: RDB only.
        argv = embedded_redis_argv(socket_path=server.socket, data_dir=data)
        rdb_argv = [*argv[: argv.index("--appendonly")], "--appendonly", "no"]
        server.start(argv=rdb_argv)
        client: Any = redis.Redis.from_url(server.url)
        client.set("queued", "a run")
        client.save()
        client.close()
        server.stop()
        assert (data / "dump.rdb").exists()
        now = embedded_redis_argv(socket_path=server.socket, data_dir=data)
        assert now[now.index("--appendonly") + 1] == "no"

        server.start()  # the argv of now: RDB loaded, then the append-only file switched on
        assert append_only_on(server.url)
        assert (data / "appendonly.aof").exists()
        server.restart()
        client = redis.Redis.from_url(server.url)
        assert client.get("queued") == b"a run"
        assert client.config_get("appendonly")["appendonly"] == "yes"
        client.close()
        server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
