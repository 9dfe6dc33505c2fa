"""The deploy files are not run here (no Docker engine, no systemd); they are checked against
the code instead, so a renamed module or a new queue cannot leave them behind."""

from __future__ import annotations

import re
import sqlite3

import pytest
import yaml

from config.queues import QUEUES
from scheduler.schedules import declared_schedules
from tests.processes import BASE_DIR

DEPLOY = BASE_DIR / "deploy"
ALL_QUEUES = ",".join(QUEUES)


def _procfile() -> dict[str, str]:
    lines = (DEPLOY / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_the_procfile_runs_web_worker_and_beat_on_our_entry_points():
    processes = _procfile()

    assert "config.asgi:application" in processes["web"]
    assert processes["worker"].startswith("celery -A config worker -E ")
    assert f"-Q {ALL_QUEUES}" in processes["worker"]
    assert processes["beat"].startswith("celery -A config beat")
    assert "--scheduler scheduler.beat:DatabaseScheduler" in processes["beat"]
    assert "migrate" in processes["release"]
    # The declared upkeep, after the schema and before the processes start (issue 17).
    assert processes["release"].index("migrate") < processes["release"].index("scheduler sync")


def test_the_systemd_units_start_our_entry_points():
    units = {path.name: path.read_text() for path in (DEPLOY / "systemd").glob("*.service")}
    exec_starts = {
        name: re.search(r"^ExecStart=(.+)$", text, re.M).group(1)  # type: ignore[union-attr]
        for name, text in units.items()
    }

    assert "config.asgi:application" in exec_starts["agent-scheduler-web.service"]
    assert "-A config worker -E" in exec_starts["agent-scheduler-worker@.service"]
    assert "-A config beat" in exec_starts["agent-scheduler-beat.service"]
    assert (
        "--scheduler scheduler.beat:DatabaseScheduler"
        in exec_starts["agent-scheduler-beat.service"]
    )
    beat = units["agent-scheduler-beat.service"]
    assert re.search(r"^ExecStartPre=\S+python manage.py scheduler sync$", beat, re.M)
    assert "agent-scheduler-web.service" in re.search(r"^After=(.+)$", beat, re.M).group(1)  # type: ignore[union-attr]


def test_the_compose_file_has_every_service_and_one_image_for_the_app():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]

    assert set(services) == {"redis", "postgres", "migrate", "web", "worker", "beat", "flower"}
    assert services["migrate"]["command"] == (
        'sh -c "python manage.py migrate --noinput && python manage.py scheduler sync"'
    )
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }
    assert f"-Q {ALL_QUEUES}" in services["worker"]["command"]
    for name in ("web", "worker", "beat"):
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert "--scheduler scheduler.beat:DatabaseScheduler" in services["beat"]["command"]
    assert (DEPLOY / "Dockerfile").exists()


def test_the_image_has_the_postgresql_client_of_the_compose_server():
    # scheduler.backup_database runs pg_dump and pg_restore; pg_dump refuses a newer server.
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    server = compose["services"]["postgres"]["image"]

    major = re.search(r"^ARG PG_MAJOR=(\d+)$", dockerfile, re.M)
    assert major is not None
    assert server == f"postgres:{major.group(1)}"
    assert "postgresql-client-${PG_MAJOR}" in dockerfile
    assert "sh -c" not in compose["services"]["web"]["command"]  # no migrate race: see migrate


def _manage_commands(line: str) -> list[list[str]]:
    """The `python manage.py ...` parts of a shell line (`a && b && c`), as argument lists."""
    commands = []
    for part in line.split("&&"):
        words = part.strip().strip('"').split()
        if "manage.py" in words:
            commands.append(words[words.index("manage.py") + 1 :])
    return commands


@pytest.mark.integration
def test_the_release_commands_bring_a_fresh_database_up_with_every_declared_schedule(tmp_path):
    """The Procfile's release step, compose's migrate service and beat's ExecStartPre run the
    same management commands: run on an empty database, they leave every upkeep schedule."""
    from tests.processes import child_env, run_manage

    release = _manage_commands(_procfile()["release"])
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert _manage_commands(compose["services"]["migrate"]["command"]) == release[:2]
    beat = (DEPLOY / "systemd" / "agent-scheduler-beat.service").read_text()
    before_beat = re.findall(r"^ExecStartPre=(.+)$", beat, re.M)
    assert [c for line in before_beat for c in _manage_commands(line)] == [["scheduler", "sync"]]

    database = tmp_path / "fresh.sqlite3"
    env = child_env(DATABASE_URL=f"sqlite:///{database}", VAR_DIR=str(tmp_path))
    for command in release:
        done = run_manage(*command, env=env, timeout=180)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"

    with sqlite3.connect(database) as connection:
        rows = dict(connection.execute("SELECT name, task FROM django_celery_beat_periodictask"))
    assert {item.name: item.task for item in declared_schedules(beat_schedule={})} == rows
    again = run_manage("scheduler", "sync", "--dry-run", env=env)
    assert again.returncode == 0, again.stdout + again.stderr  # in sync: nothing to do
