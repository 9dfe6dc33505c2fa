"""Only catalog tasks run, and `scheduler.execute_command` runs only listed commands, no shell.

Already covered elsewhere, not repeated here: the API refuses an unknown task to run and to retry
(tests/scheduler/api/test_tasks.py) and to schedule (test_schedules.py); the CLI refuses one to
create (test_cli.py); the admin's form, its "Run now" and its retry refuse one (test_admin.py);
an unlisted command name is refused and shell metacharacters in a listed command reach it as
written (test_commands.py). Here: what was missing.
"""

from __future__ import annotations

import ast
import json
import os
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from scheduler.models import AuditEntry, TaskEvent
from tests.clients import response_json
from tests.processes import BASE_DIR, run_manage

pytestmark = pytest.mark.security

PROJECT_PACKAGES = ("config", "scheduler", "agents", "tournaments")

_REGISTERED_TASKS = """
import json
from config.celery import app
from scheduler.catalog import load_catalog
app.loader.import_default_modules()  # what a worker imports before it consumes
print(json.dumps({"registered": sorted(app.tasks), "catalog": load_catalog().names()}))
"""


def test_every_task_a_worker_would_run_is_a_catalog_entry():
    # In a fresh process: the test session registers tasks of its own.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    process = run_manage("shell", "-c", _REGISTERED_TASKS, env=env)
    assert process.returncode == 0, process.stderr
    found = json.loads(process.stdout.strip().splitlines()[-1])

    ours = {name for name in found["registered"] if not name.startswith("celery.")}

    assert ours - set(found["catalog"]) == set()
    assert set(found["catalog"]) - ours == set()  # scheduler.E001 says the same at startup
    assert "scheduler.execute_command" in ours


def _legacy_schedule() -> PeriodicTask:
    """A periodic task outside the catalog, as a row written behind the services' back."""
    interval = IntervalSchedule.objects.create(every=1, period="days")
    return PeriodicTask.objects.create(name="legacy", task="os.system", interval=interval)


@pytest.mark.django_db
def test_the_api_refuses_to_run_a_schedule_whose_task_is_not_in_the_catalog(
    api_admin, django_capture_on_commit_callbacks
):
    legacy = _legacy_schedule()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_admin.post(f"/api/schedules/{legacy.pk}/run/")

    assert response.status_code == 400
    message = response_json(response)["task"][0]
    assert "'os.system', which is outside the catalog" in message
    assert "not run" in message
    assert "catalog_existing('os.system'" in message
    assert callbacks == []
    assert not AuditEntry.objects.exists()
    assert not TaskEvent.objects.exists()


@pytest.mark.django_db
def test_the_cli_refuses_to_run_a_schedule_whose_task_is_not_in_the_catalog(
    django_capture_on_commit_callbacks,
):
    _legacy_schedule()

    with (
        django_capture_on_commit_callbacks(execute=False) as callbacks,
        pytest.raises(CommandError, match=r"'os\.system', which is outside the catalog"),
    ):
        call_command("scheduler", "run", "legacy", stdout=StringIO(), stderr=StringIO())

    assert callbacks == []
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "command", ["greet; id", "greet && id", "$(id)", "`id`", "greet | sh", "../greet", "GREET"]
)
def test_the_api_refuses_a_command_that_is_not_listed_by_its_exact_name(
    api_admin, settings, django_capture_on_commit_callbacks, command
):
    settings.SCHEDULER_ALLOWED_COMMANDS = {"greet": ["echo", "hello"]}

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_admin.post(
            "/api/tasks/",
            {"task": "scheduler.execute_command", "params": {"command": command}},
            format="json",
        )

    assert response.status_code == 400
    (message,) = response_json(response)["params"]
    assert f"command: {command!r} is not an allowed command (allowed: greet)" in message
    assert callbacks == []


def _shell_calls(source: str, filename: str) -> list[str]:
    """Calls that would run a command through a shell: shell=True, os.system, os.popen, ..."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg == "shell" and not (
                isinstance(keyword.value, ast.Constant) and keyword.value.value is False
            ):
                found.append(f"{filename}:{node.lineno}: shell=")
        name = ast.unparse(node.func)
        if name in {
            "os.system",
            "os.popen",
            "subprocess.getoutput",
            "subprocess.getstatusoutput",
            "asyncio.create_subprocess_shell",
        }:
            found.append(f"{filename}:{node.lineno}: {name}()")
    return found


def _project_files() -> list[Path]:
    return [path for package in PROJECT_PACKAGES for path in (BASE_DIR / package).rglob("*.py")]


def test_nothing_in_the_project_runs_a_command_through_a_shell():
    files = _project_files()

    found = [
        call
        for path in files
        for call in _shell_calls(path.read_text(), str(path.relative_to(BASE_DIR)))
    ]

    assert found == []
    assert any(path.name == "allowed_commands.py" for path in files)


@pytest.mark.parametrize(
    "source",
    [
        "import subprocess\nsubprocess.run('id', shell=True)",
        "import subprocess\nsubprocess.Popen(argv, shell=flag)",
        "import os\nos.system('id')",
        "import os\nos.popen('id')",
    ],
)
def test_the_shell_scan_finds_what_it_looks_for(source):
    assert _shell_calls(source, "example.py") != []


def test_the_shell_scan_lets_argv_calls_through():
    assert _shell_calls("subprocess.run(['echo', 'x'], shell=False)", "example.py") == []
