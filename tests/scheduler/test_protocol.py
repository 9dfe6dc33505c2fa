"""The run protocol is one copy: every state, event type, header and Redis key comes from
scheduler/protocol.py, and nothing in the product spells them again."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from celery import states

from scheduler import protocol
from scheduler.protocol import EVENT_ALIASES, EventType, RunState, object_header, object_of

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = [
    path
    for app in ("scheduler", "agents", "tournaments", "config")
    for path in (ROOT / app).rglob("*.py")
    if "migrations" not in path.parts and path.name != "protocol.py"
]


def test_every_celery_state_and_ours_is_a_run_state() -> None:
    assert states.ALL_STATES <= protocol.EVENT_STATES
    assert {"SKIPPED", "MISSED", "PUBLISHED"} <= protocol.EVENT_STATES
    assert protocol.FINISHED_STATES < protocol.EVENT_STATES
    assert {RunState.PENDING, RunState.STARTED, RunState.RETRY}.isdisjoint(protocol.FINISHED_STATES)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (object_header("tournament", 7), ("tournament", "7")),
        ({"scheduler_object": "session:12"}, ("session", "12")),
        ({"scheduler_object": "nothing"}, None),
        ({}, None),
        (None, None),
        ({"scheduler_object": "t" * 50 + ":" + "9" * 80}, ("t" * 40, "9" * 64)),
    ],
)
def test_it_builds_and_reads_the_domain_object_header(headers, expected) -> None:
    assert object_of(headers) == expected


def test_no_product_module_spells_an_event_type_outside_the_protocol() -> None:
    spelled = set()
    for path in PRODUCT:
        spelled |= set(re.findall(r"[\"']((?:task|schedule)\.[a-z_]+)[\"']", path.read_text()))
    event_types = {event.value for event in EventType} | set(EVENT_ALIASES)
    # Task names look alike ("schedule.run_now" is an event, "scheduler.ping" a task).
    assert {name for name in spelled if name.split(".")[0] in ("task", "schedule")} <= event_types


def test_no_module_defines_a_redis_key_or_the_object_header_of_its_own() -> None:
    own = []
    for path in PRODUCT:
        text = path.read_text()
        for line in text.splitlines():
            if re.search(r"[\"']scheduler:[a-z]", line) or re.search(
                r"[\"']scheduler_object[\"']", line
            ):
                own.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert own == []


def test_the_dashboard_script_reads_the_finished_states_from_the_server() -> None:
    script = (ROOT / "scheduler" / "static" / "scheduler" / "dashboard.js").read_text()
    assert "finished_states" in script
    # No page's script keeps a copy of a set of states.
    for path in ROOT.glob("*/static/**/*.js"):
        assert not re.search(r"\[\s*\"(SUCCESS|FAILURE)\",\s*\"[A-Z]+\"", path.read_text()), path


@pytest.mark.parametrize("module", ["scheduler.protocol", "scheduler.core", "config.env"])
def test_the_bottom_rooms_import_first_in_a_fresh_interpreter(module: str) -> None:
    # config/celery.py imports scheduler.core while `config` loads: neither may need the other
    # to have loaded first.
    finished = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "config.settings.base", "SECRET_KEY": "x", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
