"""Run child processes as one unit: start them in order, merge their output, stop them together.

Between two starts the supervisor can run a `Step` of its own (the demo data, once Redis
answers and before anything that reads it starts).

Each child runs in its own process group, so stopping it also stops what it started (Celery's
pool processes), and asks the kernel to terminate it if the supervisor itself dies, so no
child outlives us even after a `kill -9` of the supervisor.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

Sink = Callable[[str, str], None]


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    # Called until it returns True; the next process starts only then.
    ready: Callable[[], bool] | None = None
    ready_timeout: float = 60.0
    # Infrastructure (Redis) stops after everything that uses it.
    stop_last: bool = False
    stop_timeout: float = 30.0


@dataclass(frozen=True)
class Step:
    """Work the supervisor does itself, in order with the starts; it says its lines by `say`."""

    name: str
    run: Callable[[Callable[[str], None]], None]


# Loaded once here: the child between fork and exec must not load libraries.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal() -> None:
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def describe_returncode(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class ManagedProcess:
    """One child process in its own process group."""

    def __init__(self, spec: ProcessSpec, *, stdout: IO[Any] | int | None = subprocess.PIPE):
        self.spec = spec
        self._stdout = stdout
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_at: datetime | None = None
        self._reader: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        assert self.popen is not None, "process not started"
        return self.popen.pid

    def start(self, sink: Sink | None = None) -> None:
        env = dict(os.environ if self.spec.env is None else self.spec.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.popen = subprocess.Popen(
            list(self.spec.argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_set_parent_death_signal,
        )
        self.started_at = datetime.now(UTC)
        if self._stdout == subprocess.PIPE and self.popen.stdout is not None:
            self._reader = threading.Thread(
                target=self._pump, args=(self.popen.stdout, sink), daemon=True
            )
            self._reader.start()

    def _pump(self, stream: IO[bytes], sink: Sink | None) -> None:
        for raw in iter(stream.readline, b""):
            if sink is not None:
                sink(self.name, raw.decode("utf-8", "replace").rstrip("\n"))
        stream.close()

    def poll(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def is_running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def send(self, sig: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def wait(self, timeout: float) -> bool:
        """Wait for the process to exit; False if it is still running after `timeout`."""
        if self.popen is None:
            return True
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM, then SIGKILL after `timeout`; then kill whatever is left of its group."""
        if self.popen is None:
            return
        if self.is_running():
            self.send(signal.SIGTERM)
            if not self.wait(self.spec.stop_timeout if timeout is None else timeout):
                self.send(signal.SIGKILL)
                self.wait(10)
        self.send(signal.SIGKILL)  # stragglers of the group, e.g. an orphaned pool process
        if self._reader is not None:
            self._reader.join(timeout=5)


class Supervisor:
    """Start specs in order, watch them, and stop them all when one dies or we are told to."""

    def __init__(
        self,
        specs: Sequence[ProcessSpec | Step],
        *,
        sink: Sink,
        on_change: Callable[[str, list[ManagedProcess]], None] | None = None,
        on_ready: Callable[[], None] | None = None,
        poll_interval: float = 0.2,
    ):
        self.specs = list(specs)
        self.sink = sink
        self.on_change = on_change
        self.on_ready = on_ready
        self.poll_interval = poll_interval
        self.processes: list[ManagedProcess] = []
        self.failure: str | None = None
        self._stop_reason: str | None = None

    def request_stop(self, reason: str) -> None:
        self._stop_reason = reason

    def _handle_signal(self, signum: int, frame: Any) -> None:
        self.request_stop(signal.Signals(signum).name)

    def run(self) -> int:
        """Run until a stop is requested (exit 0) or a child dies or never gets ready (exit 1)."""
        previous = {
            sig: signal.signal(sig, self._handle_signal)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        try:
            if self._start_all():
                self._notify("running")
                if self.on_ready is not None:
                    self.on_ready()
                self._watch()
        finally:
            self._notify("stopping")
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self.failure:
            self.sink("stack", f"{self.failure}; stopped the other processes")
            return 1
        self.sink("stack", f"stopped ({self._stop_reason or 'done'})")
        return 0

    def _notify(self, status: str) -> None:
        if self.on_change is not None:
            self.on_change(status, self.processes)

    def _start_all(self) -> bool:
        for spec in self.specs:
            if self._stop_reason:
                return False
            if isinstance(spec, Step):
                if not self._run_step(spec) or self._find_dead():
                    return False
                continue
            process = ManagedProcess(spec)
            process.start(self.sink)
            self.processes.append(process)
            self._notify("starting")
            if spec.ready is not None and not self._wait_ready(process):
                return False
        return True

    def _run_step(self, step: Step) -> bool:
        try:
            step.run(lambda line: self.sink(step.name, line))
        except Exception as exc:
            self.failure = f"{step.name} failed: {type(exc).__name__}: {exc}"
            return False
        return True

    def _wait_ready(self, process: ManagedProcess) -> bool:
        assert process.spec.ready is not None
        deadline = time.monotonic() + process.spec.ready_timeout
        while time.monotonic() < deadline:
            if self._stop_reason or self._find_dead():
                return False
            try:
                if process.spec.ready():
                    return True
            except Exception:  # noqa: S110  (not ready yet: a refused connection, no socket)
                pass
            time.sleep(self.poll_interval)
        self.failure = (
            f"{process.name} did not become ready within {process.spec.ready_timeout:g} s"
        )
        return False

    def _find_dead(self) -> bool:
        for process in self.processes:
            code = process.poll()
            if code is not None:
                self.failure = f"{process.name} (pid {process.pid}) {describe_returncode(code)}"
                return True
        return False

    def _watch(self) -> None:
        while not self._stop_reason and not self._find_dead():
            time.sleep(self.poll_interval)

    def _stop_all(self) -> None:
        # Users of the infrastructure stop together and first; the infrastructure last.
        for tier in (False, True):
            group = [p for p in self.processes if p.spec.stop_last is tier]
            for process in group:
                if process.is_running():
                    self.sink("stack", f"stopping {process.name} (pid {process.pid})")
                    process.send(signal.SIGTERM)
            for process in group:
                if not process.wait(process.spec.stop_timeout):
                    self.sink("stack", f"{process.name} did not stop in time: killing it")
                process.stop(timeout=0)
