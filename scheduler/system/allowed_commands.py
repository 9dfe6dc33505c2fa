"""Allow-listed commands for `scheduler.execute_command`: named argvs, run without a shell.

Staff choose a command by name only; the argv comes from the SCHEDULER_ALLOWED_COMMANDS
setting (parsed by `config.env.parse_allowed_commands`), so nobody can run anything the
deployment did not list.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import IO, Any

from django.conf import settings

from config.queues import QUEUES, queue_for

# Bytes kept of each of stdout and stderr: the result is a database row every staff member's
# dashboard loads, so a chatty command must not fill it.
OUTPUT_LIMIT = 32 * 1024
# Longest a command may run: under the maintenance queue's soft limit, so the timeout here
# (which kills the command and reports its output) fires before Celery's.
MAX_TIMEOUT = QUEUES[queue_for("scheduler.execute_command")].soft_limit - 60
# The environment a command gets: enough to find programs and format output. Not the worker's
# own, which holds SECRET_KEY and database passwords that would end up in a readable result.
_PASSED_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")


class CommandNotAllowed(ValueError):
    pass


class CommandFailed(RuntimeError):
    """A command exited non-zero, timed out or could not start; the message says which."""


def allowed_commands() -> dict[str, list[str]]:
    return dict(settings.SCHEDULER_ALLOWED_COMMANDS)


def allowed_argv(name: str) -> list[str]:
    """The argv of an allowed command; CommandNotAllowed (saying what is allowed) otherwise."""
    commands = allowed_commands()
    if not commands:
        raise CommandNotAllowed(
            "execute_command is off: no command is allowed (set SCHEDULER_ALLOWED_COMMANDS)"
        )
    if name not in commands:
        raise CommandNotAllowed(
            f"{name!r} is not an allowed command (allowed: {', '.join(sorted(commands))})"
        )
    return list(commands[name])


@dataclass(frozen=True)
class CommandRun:
    command: str
    argv: list[str]
    exit_code: int | None  # None when it was killed for running too long
    timed_out: bool
    duration: float
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def summary(self) -> str:
        if self.timed_out:
            outcome = f"was killed after {self.duration:.1f} s (timeout)"
        else:
            outcome = f"exited with {self.exit_code}"
        tail = (self.stderr or self.stdout).strip()[-500:]
        return f"command {self.command!r} {outcome}" + (f": {tail}" if tail else "")


def command_run(*, name: str, timeout: float) -> CommandRun:
    """Run an allowed command by name; its output, exit code and duration. Never a shell."""
    argv = allowed_argv(name)
    env = {key: os.environ[key] for key in _PASSED_ENVIRONMENT if key in os.environ}
    # Output goes to files, not pipes: a command that writes more than a pipe holds cannot
    # block, and what it wrote before a timeout is still there to report.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                # Its own process group, so a timeout kills whatever it started as well.
                start_new_session=True,
            )
        except OSError as exc:
            raise CommandFailed(f"command {name!r} could not start: {exc}") from exc
        timed_out = False
        try:
            exit_code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(process)
            process.wait()
            exit_code = None
        except BaseException:
            # Celery's soft time limit (or a worker shutdown) lands here: leave nothing behind.
            _kill_group(process)
            process.wait()
            raise
        duration = round(time.monotonic() - started, 3)
        stdout, stdout_truncated = _read_limited(out)
        stderr, stderr_truncated = _read_limited(err)
    return CommandRun(
        command=name,
        argv=argv,
        exit_code=exit_code,
        timed_out=timed_out,
        duration=duration,
        stdout=stdout,
        stderr=stderr,
        stdout_truncated=stdout_truncated,
        stderr_truncated=stderr_truncated,
    )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    # Gone already: it and everything it started have exited.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _read_limited(file: IO[bytes]) -> tuple[str, bool]:
    """The output, or its beginning and end when longer than OUTPUT_LIMIT."""
    size = file.seek(0, os.SEEK_END)
    file.seek(0)
    if size <= OUTPUT_LIMIT:
        return file.read().decode(errors="replace"), False
    half = OUTPUT_LIMIT // 2
    head = file.read(half)
    file.seek(size - half)
    tail = file.read(half)
    omitted = size - 2 * half
    text = (
        head.decode(errors="replace")
        + f"\n[... {omitted} bytes omitted ...]\n"
        + tail.decode(errors="replace")
    )
    return text, True
