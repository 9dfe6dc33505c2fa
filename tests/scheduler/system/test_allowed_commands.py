"""`scheduler.execute_command`: only allow-listed commands, no shell, bounded time and output."""

from __future__ import annotations

import sys
import time

import psutil
import pytest

from config.env import parse_allowed_commands
from scheduler.catalog import ParameterError, catalog
from scheduler.system.allowed_commands import (
    MAX_TIMEOUT,
    OUTPUT_LIMIT,
    CommandFailed,
    CommandNotAllowed,
)
from scheduler.system.tasks import execute_command


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("   ", {}),
        ("uptime=uptime", {"uptime": ["uptime"]}),
        (
            "disk_usage=df -h /,uptime=uptime",
            {"disk_usage": ["df", "-h", "/"], "uptime": ["uptime"]},
        ),
        (" greet = echo 'hello world' , ", {"greet": ["echo", "hello world"]}),
        ("kv=env A=1", {"kv": ["env", "A=1"]}),
        ('{"ps": ["ps", "-eo", "pid,cmd"]}', {"ps": ["ps", "-eo", "pid,cmd"]}),
    ],
)
def test_it_reads_the_allowed_commands_from_the_environment(text, expected):
    assert parse_allowed_commands(text) == expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("uptime", "is not name=command"),
        ("up=", "has no command"),
        ("a=ls,a=df", "listed twice"),
        ("bad name=ls", "is not a command name"),
        ("q=echo 'unclosed", "cannot be split"),
        ('{"ps": "ps aux"}', "must be a list of strings"),
        ("{not json", "not valid JSON"),
    ],
)
def test_it_rejects_a_malformed_allow_list(text, error):
    with pytest.raises(ValueError, match=error):
        parse_allowed_commands(text)


@pytest.fixture
def allowed(settings):
    settings.SCHEDULER_ALLOWED_COMMANDS = {
        "greet": ["echo", "hello; rm -rf / && $HOME"],
        "fail": ["sh", "-c", "echo partial; echo boom >&2; exit 3"],
        "sleepy": ["sh", "-c", "sleep 60 & echo $!; wait"],
        "chatty": [sys.executable, "-c", "print('x' * 200_000)"],
        "env": ["env"],
        "missing": ["/nonexistent/program"],
    }
    return settings.SCHEDULER_ALLOWED_COMMANDS


def test_it_is_off_by_default(settings):
    settings.SCHEDULER_ALLOWED_COMMANDS = {}

    with pytest.raises(ParameterError, match="execute_command is off") as raised:
        catalog.get("scheduler.execute_command").validate({"command": "uptime"})

    assert "command" in raised.value.errors


def test_it_rejects_a_command_that_is_not_allowed(allowed):
    with pytest.raises(ParameterError) as raised:
        catalog.get("scheduler.execute_command").validate({"command": "rm -rf /"})

    (message,) = raised.value.errors["command"]
    assert (
        message == "'rm -rf /' is not an allowed command (allowed: chatty, env, fail, greet, "
        "missing, sleepy)"
    )


def test_it_refuses_to_run_a_command_removed_from_the_list_after_queuing(settings):
    settings.SCHEDULER_ALLOWED_COMMANDS = {"uptime": ["uptime"]}

    with pytest.raises(CommandNotAllowed):
        execute_command(command="greet")


def test_it_shows_the_allowed_names_in_the_schema(allowed):
    schema = catalog.get("scheduler.execute_command").schema()

    assert schema["properties"]["command"]["enum"] == sorted(allowed)


@pytest.mark.parametrize("timeout", [0, -1, MAX_TIMEOUT + 1])
def test_it_bounds_the_timeout(allowed, timeout):
    with pytest.raises(ParameterError) as raised:
        catalog.get("scheduler.execute_command").validate({"command": "greet", "timeout": timeout})

    assert "timeout" in raised.value.errors


def test_it_runs_an_allowed_command_without_a_shell(allowed):
    result = execute_command(command="greet")

    assert result["ok"] is True
    assert result["exit_code"] == 0
    assert result["timed_out"] is False
    # No shell: ';', '&&' and '$HOME' reach echo as they are written.
    assert result["stdout"] == "hello; rm -rf / && $HOME\n"
    assert result["stderr"] == ""
    assert result["argv"] == allowed["greet"]


def test_it_fails_the_run_when_the_command_fails(allowed):
    with pytest.raises(CommandFailed, match=r"command 'fail' exited with 3: boom"):
        execute_command(command="fail")


def test_it_reports_the_exit_code_and_output_without_check(allowed):
    result = execute_command(command="fail", check=False)

    assert result["ok"] is False
    assert result["exit_code"] == 3
    assert result["stdout"] == "partial\n"
    assert result["stderr"] == "boom\n"


def test_it_kills_a_command_that_runs_too_long_and_what_it_started(allowed):
    started = time.monotonic()

    result = execute_command(command="sleepy", timeout=0.5, check=False)

    assert time.monotonic() - started < 10
    assert result["timed_out"] is True
    assert result["exit_code"] is None
    background_pid = int(result["stdout"].strip())
    _assert_gone(background_pid)


def test_it_fails_the_run_on_timeout(allowed):
    with pytest.raises(CommandFailed, match=r"killed after .* s \(timeout\)"):
        execute_command(command="sleepy", timeout=0.3)


def _assert_gone(pid: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} started by the command is still running")


def test_it_keeps_the_beginning_and_end_of_long_output(allowed):
    result = execute_command(command="chatty")

    assert result["stdout_truncated"] is True
    assert result["stdout"].startswith("x" * 100)
    assert result["stdout"].endswith("x\n")
    assert "bytes omitted" in result["stdout"]
    assert len(result["stdout"]) < OUTPUT_LIMIT + 100


def test_it_does_not_hand_the_workers_secrets_to_the_command(allowed, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "do-not-leak")
    monkeypatch.setenv("DATABASE_URL", "postgres://user:do-not-leak@db/x")

    result = execute_command(command="env")

    assert "do-not-leak" not in result["stdout"]
    assert "PATH=" in result["stdout"]


def test_it_says_when_a_command_cannot_start(allowed):
    with pytest.raises(CommandFailed, match="could not start"):
        execute_command(command="missing")
