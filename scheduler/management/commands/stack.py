"""`manage.py stack up|status|down`: run the whole product (Redis, web, worker, beat), and
Flower alongside with `--with flower`."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from argparse import ArgumentParser
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from scheduler.devstack import stack
from scheduler.devstack.supervisor import Supervisor
from scheduler.services import superuser_ensure

_DETACH_TIMEOUT = 120.0


class Command(BaseCommand):
    help = "Start, inspect or stop the whole product: Redis, web server, worker and beat."

    def add_arguments(self, parser: ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="up|status|down")
        up = actions.add_parser("up", help="start every process (Ctrl-C stops them all)")
        up.add_argument("--host", default="127.0.0.1", help="address the web server binds")
        up.add_argument("--port", type=int, default=8000, help="port of the web server")
        up.add_argument(
            "--only",
            default=None,
            help=f"comma-separated subset of: {', '.join(stack.PROCESS_NAMES)}",
        )
        up.add_argument(
            "--with",
            dest="with_processes",
            action="append",
            metavar="NAME",
            help=(
                f"also start an optional process: {', '.join(stack.OPTIONAL_PROCESSES)} (on the "
                f"stack's broker, behind the basic auth {stack.FLOWER_AUTH_VARIABLE} gives)"
            ),
        )
        up.add_argument(
            "--flower-port",
            default=None,
            metavar="PORT",
            help=f"Flower's port (default: FLOWER_PORT, else {stack.DEFAULT_FLOWER_PORT})",
        )
        up.add_argument(
            "--detach", action="store_true", help="run in the background (log in var/log/)"
        )
        up.add_argument(
            "--seed-demo",
            action="store_true",
            help="load the demo data (seed_demo) once every precondition holds and Redis runs",
        )
        actions.add_parser("status", help="show each process; exit 1 if any is down")
        down = actions.add_parser("down", help="stop a stack started with --detach")
        down.add_argument("--timeout", type=float, default=60.0, help="seconds before SIGKILL")

    def handle(self, *args: Any, **options: Any) -> None:
        paths = stack.StackPaths.from_settings()
        try:
            if options["action"] == "up":
                self._up(paths, options)
            elif options["action"] == "status":
                self._status(paths)
            else:
                self._down(paths, options["timeout"])
        except stack.StackError as exc:
            raise CommandError(str(exc)) from exc

    # --- up --------------------------------------------------------------------------------

    def _up(self, paths: stack.StackPaths, options: dict[str, Any]) -> None:
        if not 0 < options["port"] < 65536:
            raise CommandError(f"--port {options['port']} is not a port number (1-65535)")
        optional = stack.parse_with(options["with_processes"])
        stack_options = stack.StackOptions(
            host=options["host"],
            port=options["port"],
            only=stack.parse_only(options["only"]),
            seed_demo=options["seed_demo"],
            flower="flower" in optional,
            flower_port=stack.flower_port_from(options["flower_port"]),
        )
        paths.create()
        stack.preflight(stack_options, paths)
        if "web" in stack_options.only:
            self._ensure_superuser()
        if options["detach"]:
            self._spawn_detached(paths, stack_options, options)
            return
        self._run_foreground(paths, stack_options)

    def _ensure_superuser(self) -> None:
        created = superuser_ensure(password=os.environ.get("DJANGO_SUPERUSER_PASSWORD") or None)
        if created is None:
            return
        if created.generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Created superuser '{created.username}' with password: {created.password}\n"
                    "  (shown only this once; change it with "
                    f"`python manage.py changepassword {created.username}`)"
                )
            )
        else:
            self.stdout.write(
                f"Created superuser '{created.username}' with DJANGO_SUPERUSER_PASSWORD."
            )

    def _run_foreground(self, paths: stack.StackPaths, options: stack.StackOptions) -> None:
        lock = threading.Lock()
        width = max(
            len(name) for name in (*stack.PROCESS_NAMES, *stack.OPTIONAL_PROCESSES, "stack")
        )

        def sink(name: str, line: str) -> None:
            with lock:
                self.stdout.write(f"{name:<{width}} | {line}")
                self.stdout.flush()

        def on_ready() -> None:
            sink("stack", "all processes are up")
            if "web" in options.only:
                for label, path in (
                    ("admin", "/admin/"),
                    ("dashboard", "/dashboard/"),
                    ("API", "/api/docs/"),
                    ("health", "/healthz"),
                ):
                    sink("stack", f"  {label:<10} {options.base_url}{path}")
            if options.flower:
                sink("stack", f"  {'Flower':<10} {options.flower_url}/")
            sink("stack", "press Ctrl-C to stop")

        stack.claim(paths)
        supervisor = Supervisor(
            stack.build_specs(options, paths),
            sink=sink,
            on_change=lambda status, processes: stack.write_state(
                paths, options, status, processes
            ),
            on_ready=on_ready,
        )
        try:
            code = supervisor.run()
        finally:
            stack.release(paths)
        if code:
            raise CommandError(supervisor.failure or "a process failed")

    def _spawn_detached(
        self, paths: stack.StackPaths, options: stack.StackOptions, raw: dict[str, Any]
    ) -> None:
        argv = [
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "stack",
            "up",
            "--host",
            options.host,
            "--port",
            str(options.port),
            "--only",
            ",".join(sorted(options.only)),
            *(["--seed-demo"] if options.seed_demo else []),
            *(["--with", "flower"] if options.flower else []),
            *(["--flower-port", str(options.flower_port)] if options.flower else []),
        ]
        with open(paths.log_file, "ab") as log:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + _DETACH_TIMEOUT
        while time.monotonic() < deadline:
            code = child.poll()
            if code is not None:
                tail = paths.log_file.read_text(errors="replace").splitlines()[-15:]
                raise CommandError(
                    f"the stack exited with code {code} while starting; "
                    f"last lines of {paths.log_file}:\n" + "\n".join(tail)
                )
            state = stack.read_state(paths)
            if state and state.get("pid") == child.pid and state.get("status") == "running":
                self.stdout.write(f"stack: running in the background (pid {child.pid})")
                if state.get("url"):
                    self.stdout.write(f"  admin      {state['url']}/admin/")
                    self.stdout.write(f"  dashboard  {state['url']}/dashboard/")
                if state.get("flower_url"):
                    self.stdout.write(f"  Flower     {state['flower_url']}/")
                self.stdout.write(f"  log        {paths.log_file}")
                self.stdout.write("  stop it with `python manage.py stack down`")
                return
            time.sleep(0.2)
        child.terminate()
        raise CommandError(
            f"the stack did not start within {_DETACH_TIMEOUT:g} s; see {paths.log_file}"
        )

    # --- status / down ---------------------------------------------------------------------

    def _status(self, paths: stack.StackPaths) -> None:
        pid = stack.running_supervisor_pid(paths)
        state = stack.read_state(paths)
        if pid is None or state is None:
            raise CommandError("stack: not running")
        statuses = stack.process_statuses(state)
        now = datetime.now(UTC)
        self.stdout.write(f"stack: {state.get('status', 'unknown')} (pid {pid})")
        self.stdout.write(f"  {'NAME':<8}{'STATE':<7}{'PID':<9}SINCE")
        for status in statuses:
            since = (
                f"{status.since:%Y-%m-%d %H:%M:%S} UTC ({_ago(now, status.since)})"
                if status.since
                else "-"
            )
            state_word = "up" if status.up else "down"
            self.stdout.write(f"  {status.name:<8}{state_word:<7}{status.pid:<9}{since}")
        down = [status.name for status in statuses if not status.up]
        if down:
            raise CommandError(f"down: {', '.join(down)}")

    def _down(self, paths: stack.StackPaths, timeout: float) -> None:
        if stack.stop_stack(paths, timeout=timeout):
            self.stdout.write("stack: stopped")
        else:
            self.stdout.write("stack: not running")


def _ago(now: datetime, then: datetime) -> str:
    seconds = int((now - then).total_seconds())
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m ago"
