"""The pages' scripts are native ES modules (no build step): served as JavaScript (a module
script of another MIME type silently fails), every import naming a file that exports what is
imported, and each live page's module graph loading in a real browser without an error."""

from __future__ import annotations

import posixpath
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.test import Client
from django.utils import timezone

from agents import services as agents
from tests.browser import LiveServer, off_the_loop, signed_in_page
from tests.factories import stored_run
from tests.processes import BASE_DIR
from tournaments import services as tournaments

STATIC_DIRS = [BASE_DIR / app / "static" for app in ("scheduler", "agents", "tournaments")]
SCRIPTS = sorted(
    path.relative_to(root).as_posix() for root in STATIC_DIRS for path in root.rglob("*.js")
)
IMPORT = re.compile(r"^\s*import\s+(?:\{([^}]*)\}\s+from\s+)?[\"']([^\"']+)[\"']", re.MULTILINE)
EXPORT = re.compile(r"^export\s+(?:async\s+)?(?:function\*?|const|let|class)\s+([\w$]+)", re.M)
EXPORT_LIST = re.compile(r"^export\s*\{([^}]*)\}", re.MULTILINE)
TEMPLATE_SCRIPT = re.compile(r"\{% static '([^']+\.js)' %\}")
PASSWORD = "a browser's password"


def _source(name: str) -> str:
    found = finders.find(name)
    assert found, f"no static file {name}"
    return Path(found).read_text()


def _exports(source: str) -> set[str]:
    names = set(EXPORT.findall(source))
    for group in EXPORT_LIST.findall(source):
        names |= {part.split(" as ")[-1].strip() for part in group.split(",") if part.strip()}
    return names


def test_there_are_scripts_to_check():
    assert {"scheduler/dashboard.js", "scheduler/lib/live.js", "agents/chat.js"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_is_served_as_javascript(name: str):
    response = Client().get(f"/static/{name}")

    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] in ("text/javascript", "application/javascript")


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_import_is_a_local_module_that_exports_what_is_imported(name: str):
    for names, specifier in IMPORT.findall(_source(name)):
        # Relative URLs only: no bare specifier (there is no import map), no remote code.
        assert specifier.startswith(("./", "../")), f"{name}: {specifier}"
        target = posixpath.normpath(posixpath.join(posixpath.dirname(name), specifier))
        exported = _exports(_source(target))
        imported = {part.split(" as ")[0].strip() for part in names.split(",") if part.strip()}
        assert imported <= exported, f"{name} imports {imported - exported} from {target}"


def test_every_script_a_template_loads_exists():
    named = {
        match
        for template in (BASE_DIR / "templates").rglob("*.html")
        for match in TEMPLATE_SCRIPT.findall(template.read_text())
    }

    assert "scheduler/dashboard.js" in named
    assert [name for name in sorted(named) if not finders.find(name)] == []


# --- In a real browser (integration) -------------------------------------------------------------


def _pages() -> list[str]:
    get_user_model()._default_manager.create_superuser("admin", "admin@example.com", PASSWORD)
    done = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)
    stored_run(
        "js-modules-run",
        status="FAILURE",
        started=done - timedelta(seconds=2),
        done=done,
        result='{"exc_type": "ValueError", "exc_message": ["no"]}',
    )
    session = agents.session_open(agent=agents.agent_create(name="Modules"))
    now = timezone.now()
    tournament = tournaments.tournament_create(
        name="Modules cup",
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(hours=1),
        symbols=["ACME"],
        decision_interval=60,
    )
    return [
        "/dashboard/",
        "/dashboard/tasks/js-modules-run/",
        f"/agents/sessions/{session.pk}/",
        f"/tournaments/{tournament.pk}/",
    ]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_each_live_page_loads_its_modules_without_an_error(
    browser: Any, web_server: LiveServer
) -> None:
    paths = off_the_loop(_pages)
    page, errors = signed_in_page(
        browser, web_server, paths[0], username="admin", password=PASSWORD
    )
    console: list[str] = []
    scripts: dict[str, str] = {}

    def on_console(message: Any) -> None:
        if message.type == "error":
            console.append(message.text)

    def on_response(response: Any) -> None:
        prefix = f"{web_server.url}/static/"
        if response.url.startswith(prefix) and response.url.endswith(".js"):
            scripts[response.url.removeprefix(prefix)] = response.headers.get("content-type", "")

    page.on("console", on_console)
    page.on("response", on_response)

    for path in paths:
        scripts.clear()
        page.goto(f"{web_server.url}{path}")
        # The indicator is the shared live module's, started by the page's own module: the
        # graph from the entry down to scheduler/lib/ loaded and ran.
        page.wait_for_selector("#connection[data-state=live]")
        assert {"scheduler/lib/live.js", "scheduler/lib/dom.js"} <= set(scripts), (path, scripts)
        assert {kind.split(";")[0] for kind in scripts.values()} == {"text/javascript"}, scripts
        assert page.evaluate("document.querySelectorAll('script[type=module]').length") == 1

    assert errors == []
    assert console == []
