from __future__ import annotations

import sys
import threading
import time

import psutil
import pytest

from scheduler.devstack.supervisor import (
    ManagedProcess,
    ProcessSpec,
    Step,
    Supervisor,
    describe_returncode,
)


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


SLEEPER = _python("import time\nprint('up', flush=True)\ntime.sleep(60)")


class Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, name: str, line: str) -> None:
        with self.lock:
            self.lines.append((name, line))

    def text(self) -> str:
        with self.lock:
            return "\n".join(f"{name} | {line}" for name, line in self.lines)


def _run_in_thread(supervisor: Supervisor) -> tuple[threading.Thread, list[int]]:
    codes: list[int] = []
    # Signal handlers can only be set from the main thread: the thread runs the loop without.
    thread = threading.Thread(target=lambda: codes.append(_run_without_signals(supervisor)))
    thread.start()
    return thread, codes


def _run_without_signals(supervisor: Supervisor) -> int:
    import signal as signal_module

    original = signal_module.signal
    signal_module.signal = lambda *a, **k: None
    try:
        return supervisor.run()
    finally:
        signal_module.signal = original


def _wait(predicate, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_it_prefixes_output_and_stops_everything_on_request():
    lines = Lines()
    supervisor = Supervisor(
        [ProcessSpec("one", SLEEPER), ProcessSpec("two", SLEEPER)], sink=lines, poll_interval=0.05
    )
    thread, codes = _run_in_thread(supervisor)
    _wait(lambda: len(supervisor.processes) == 2 and "two | up" in lines.text())
    pids = [p.pid for p in supervisor.processes]

    supervisor.request_stop("test")
    thread.join(20)

    assert codes == [0]
    assert "one | up" in lines.text()
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids
    )


def test_it_stops_the_rest_and_names_the_process_that_died():
    lines = Lines()
    supervisor = Supervisor(
        [ProcessSpec("steady", SLEEPER), ProcessSpec("flaky", _python("import sys; sys.exit(3)"))],
        sink=lines,
        poll_interval=0.05,
    )
    thread, codes = _run_in_thread(supervisor)
    thread.join(20)

    assert codes == [1]
    assert supervisor.failure is not None
    assert supervisor.failure.startswith("flaky (pid ")
    assert supervisor.failure.endswith("exited with code 3")
    assert not supervisor.processes[0].is_running()


def test_it_waits_for_readiness_before_starting_the_next_process(tmp_path):
    flag = tmp_path / "ready"
    first = ProcessSpec(
        "first",
        _python(
            "import time, pathlib\n"
            f"time.sleep(0.5)\npathlib.Path({str(flag)!r}).touch()\ntime.sleep(60)"
        ),
        ready=flag.exists,
        ready_timeout=10,
    )
    started_second_at: list[bool] = []

    def second_ready() -> bool:
        started_second_at.append(flag.exists())
        return True

    second = ProcessSpec("second", SLEEPER, ready=second_ready)
    supervisor = Supervisor([first, second], sink=Lines(), poll_interval=0.05)
    thread, codes = _run_in_thread(supervisor)
    _wait(lambda: len(supervisor.processes) == 2 and started_second_at)

    supervisor.request_stop("test")
    thread.join(20)

    assert started_second_at[0] is True
    assert codes == [0]


def test_it_runs_a_step_once_the_process_before_is_ready_and_before_the_next_starts(tmp_path):
    flag = tmp_path / "ready"
    first = ProcessSpec(
        "first",
        _python(
            "import time, pathlib\n"
            f"time.sleep(0.3)\npathlib.Path({str(flag)!r}).touch()\ntime.sleep(60)"
        ),
        ready=flag.exists,
        ready_timeout=10,
    )
    seen: list[tuple[bool, int]] = []
    lines = Lines()

    def step(say) -> None:
        seen.append((flag.exists(), len(supervisor.processes)))
        say("loaded the demo")

    supervisor = Supervisor(
        [first, Step("seed", step), ProcessSpec("second", SLEEPER)], sink=lines, poll_interval=0.05
    )
    thread, codes = _run_in_thread(supervisor)
    _wait(lambda: len(supervisor.processes) == 2)

    supervisor.request_stop("test")
    thread.join(20)

    assert seen == [(True, 1)]
    assert ("seed", "loaded the demo") in lines.lines
    assert [process.name for process in supervisor.processes] == ["first", "second"]
    assert codes == [0]


def test_a_failing_step_stops_what_started_and_starts_nothing_after_it():
    def step(say) -> None:
        raise RuntimeError("no demo today")

    supervisor = Supervisor(
        [ProcessSpec("first", SLEEPER), Step("seed", step), ProcessSpec("second", SLEEPER)],
        sink=Lines(),
        poll_interval=0.05,
    )
    thread, codes = _run_in_thread(supervisor)
    thread.join(20)

    assert codes == [1]
    assert supervisor.failure == "seed failed: RuntimeError: no demo today"
    assert [process.name for process in supervisor.processes] == ["first"]
    assert not supervisor.processes[0].is_running()


def test_it_gives_up_on_a_process_that_never_gets_ready():
    supervisor = Supervisor(
        [ProcessSpec("slow", SLEEPER, ready=lambda: False, ready_timeout=0.5)],
        sink=Lines(),
        poll_interval=0.05,
    )
    thread, codes = _run_in_thread(supervisor)
    thread.join(20)

    assert codes == [1]
    assert supervisor.failure == "slow did not become ready within 0.5 s"


def test_it_kills_a_process_that_ignores_sigterm_and_its_children():
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    lines = Lines()
    process = ManagedProcess(ProcessSpec("stubborn", _python(code), stop_timeout=0.5))
    process.start(lines)
    _wait(lambda: lines.lines)
    grandchild = int(lines.lines[0][1])

    process.stop()

    assert process.poll() is not None
    _wait(
        lambda: not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == "zombie"
    )


@pytest.mark.parametrize(
    ("code", "text"),
    [(0, "exited with code 0"), (2, "exited with code 2"), (-9, "was killed by SIGKILL")],
)
def test_it_describes_how_a_process_ended(code, text):
    assert describe_returncode(code) == text
