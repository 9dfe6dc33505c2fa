"""The tournaments' pages with the Django test client: who may see them, what they render, and the
live page's JSON. The script's live part speaks the websocket protocol the scheduler's consumer
tests cover; here we check the page hands it the right tournament and endpoints, and, in a real
browser, that a ranking re-orders the leaderboard without a reload.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from agents.services import agent_create
from tests.browser import TASK_TIMEOUT, off_the_loop, screenshot, signed_in_page
from tests.clients import client_for, response_json
from tests.factories import TOURNAMENT_START, make_entries, make_tournament, user_with
from tournaments import services
from tournaments.models import Entry, Tournament

pytestmark = pytest.mark.django_db

VIEW_DASHBOARD = "scheduler.view_dashboard"


def _script_json(page: str, element_id: str) -> Any:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', page)
    assert match, f"no {element_id} on the page"
    return json.loads(match.group(1))


def _order(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr data-entry-id="(\d+)"', page)]


# --- Who may look --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/tournaments/", "/tournaments/{id}/"])
def test_it_sends_anonymous_visitors_to_the_admin_login(path):
    url = path.format(id=make_tournament().pk)

    response = Client().get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


@pytest.mark.parametrize(
    "user", [{"staff": False}, {"staff": True}], ids=["not staff", "staff without permission"]
)
@pytest.mark.parametrize("path", ["/tournaments/", "/tournaments/{id}/"])
def test_it_forbids_whoever_may_not_watch_the_dashboard(path, user):
    url = path.format(id=make_tournament().pk)
    client = client_for(
        user_with(VIEW_DASHBOARD if not user["staff"] else "tournaments.view_tournament", **user)
    )

    assert client.get(url).status_code == 403


def test_its_json_answers_401_and_403_as_json():
    tournament = make_tournament()
    url = f"/tournaments/{tournament.pk}/live.json"

    anonymous = Client().get(url)
    refused = client_for(user_with(VIEW_DASHBOARD, staff=False)).get(url)

    assert anonymous.status_code == 401
    assert response_json(anonymous) == {"detail": "not signed in"}
    assert refused.status_code == 403
    assert response_json(refused) == {"detail": "permission denied"}


def test_it_answers_404_for_an_unknown_tournament():
    client = client_for(user_with(VIEW_DASHBOARD))

    assert client.get("/tournaments/999999/").status_code == 404
    assert client.get("/tournaments/99999999999999999999999/").status_code == 404
    missing = client.get("/tournaments/999999/live.json")
    assert missing.status_code == 404
    assert response_json(missing) == {"detail": "no tournament with id 999999"}


# --- The list ------------------------------------------------------------------------------------


def test_it_lists_tournaments_with_links_and_a_status_filter():
    live, scheduled = make_tournament("Live <cup>"), make_tournament("Later")
    make_entries(live, "Alpha", "Beta")
    services.tournament_start(tournament=live)
    client = client_for(user_with(VIEW_DASHBOARD))

    page = client.get("/tournaments/").content.decode()
    only_live = client.get("/tournaments/?status=live").content.decode()
    unknown = client.get("/tournaments/?status=nope")

    assert f'href="/tournaments/{live.pk}/"' in page
    assert f'href="/tournaments/{scheduled.pk}/"' in page
    assert "Live &lt;cup&gt;" in page
    assert "<cup>" not in page
    assert re.search(r'<td class="num">2</td>', page)
    assert f'href="/tournaments/{scheduled.pk}/"' not in only_live
    assert unknown.status_code == 200  # an unknown status filters nothing


# --- The live page -------------------------------------------------------------------------------


def test_it_renders_the_leaderboard_by_rank_escaped_with_its_live_connection():
    tournament = make_tournament()
    alpha, beta = make_entries(tournament, "<script>alert('a')</script>", "Beta & co")
    services.tournament_start(tournament=tournament)
    Entry.objects.filter(pk=beta.pk).update(cash=Decimal("20000"))
    services.rankings_update(tournament=tournament, now=TOURNAMENT_START)
    client = client_for(user_with(VIEW_DASHBOARD))

    response = client.get(f"/tournaments/{tournament.pk}/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "&lt;script&gt;alert(&#x27;a&#x27;)&lt;/script&gt;" in page
    assert "<script>alert(" not in page
    assert "Beta &amp; co" in page
    assert _order(page) == [beta.pk, alpha.pk]
    assert 'id="tournament-status" data-status="live"' in page
    assert 'id="connection"' in page
    assert "/static/scheduler/lib/live.js" in page
    assert "/static/tournaments/live.js" in page
    assert "cdn." not in page
    assert "http://" not in page.replace("http://www.w3.org", "")
    config = _script_json(page, "tournament-config")
    assert config["tournament"] == tournament.pk
    assert config["ws_path"] == "/ws/events/"
    assert config["ws_query"] == f"object=tournament:{tournament.pk}&backfill=100"
    assert config["live_url"] == f"/tournaments/{tournament.pk}/live.json"
    data = _script_json(page, "tournament-data")
    assert [row["entry"] for row in data["leaderboard"]] == [beta.pk, alpha.pk]
    assert data["board_at"]


def test_it_escapes_what_reaches_the_pages_script_data():
    tournament = make_tournament("</script><b>cup</b>")
    make_entries(tournament, "</script><i>x</i>")
    client = client_for(user_with(VIEW_DASHBOARD))

    page = client.get(f"/tournaments/{tournament.pk}/").content.decode()

    assert "</script><b>" not in page
    assert "</script><i>" not in page
    assert _script_json(page, "tournament-data")["leaderboard"][0]["name"] == "</script><i>x</i>"


def test_its_json_has_the_leaderboard_equity_series_trades_and_status():
    tournament = make_tournament()
    alpha, beta = make_entries(tournament, "Alpha", "Beta")
    services.tournament_start(tournament=tournament)
    services.decision_make(entry=alpha, tick=2)
    for minute in (2, 3):
        services.rankings_update(
            tournament=tournament, now=TOURNAMENT_START + timedelta(minutes=minute)
        )
    client = client_for(user_with(VIEW_DASHBOARD))

    response = client.get(f"/tournaments/{tournament.pk}/live.json")

    body = response_json(response)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    assert body["tournament"] == {
        "id": tournament.pk,
        "name": "Spring cup",
        "status": "live",
        "status_label": "Live",
        "starts_at": "2026-06-01T09:00:00+00:00",
        "ends_at": "2026-06-01T13:00:00+00:00",
        "initial_cash": "10000.00",
    }
    assert {row["entry"] for row in body["leaderboard"]} == {alpha.pk, beta.pk}
    assert [row["rank"] for row in body["leaderboard"]] == [1, 2]
    assert datetime.fromisoformat(body["board_at"]) <= timezone.now()
    assert set(body["series"]) == {str(alpha.pk), str(beta.pk)}
    ticks = [point["tick"] for point in body["series"][str(beta.pk)]]
    assert ticks == [2, 3]
    assert body["series"][str(beta.pk)][0]["equity"] == "10000.00"
    assert body["trades"]
    trade = body["trades"][0]
    assert trade["entry"] == alpha.pk
    assert trade["name"] == "Alpha"
    assert trade["side"] == "buy"
    assert trade["tick"] == 2
    assert {"id", "symbol", "quantity", "price", "executed_at", "agent"} <= set(trade)


def test_its_equity_series_keep_the_latest_rankings(monkeypatch):
    from tournaments import views

    monkeypatch.setattr(views, "SERIES_POINTS", 2)
    tournament = make_tournament()
    [alpha] = make_entries(tournament, "Alpha")
    for minute in (1, 2, 3):
        services.rankings_update(
            tournament=tournament, now=TOURNAMENT_START + timedelta(minutes=minute)
        )
    client = client_for(user_with(VIEW_DASHBOARD))

    body = response_json(client.get(f"/tournaments/{tournament.pk}/live.json"))

    assert [point["tick"] for point in body["series"][str(alpha.pk)]] == [2, 3]


def test_a_tournament_never_ranked_says_so():
    tournament = make_tournament()
    client = client_for(user_with(VIEW_DASHBOARD))

    page = client.get(f"/tournaments/{tournament.pk}/").content.decode()

    assert "not ranked yet" in page
    assert "No entry yet" in page
    assert _script_json(page, "tournament-data")["board_at"] is None


def test_it_serves_its_script_and_styles_locally():
    client = client_for(user_with(VIEW_DASHBOARD))

    for path in ("/static/tournaments/live.js", "/static/tournaments/tournaments.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert b"".join(response.streaming_content)  # type: ignore[attr-defined]


# --- In a real browser (integration) -------------------------------------------------------------


PASSWORD = "pw-tournament-browser"


def _browser_fixture() -> tuple[int, list[int]]:
    get_user_model()._default_manager.create_superuser("admin", "admin@example.com", PASSWORD)
    now = timezone.now()
    tournament = services.tournament_create(
        name="Browser cup",
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(hours=1),
        symbols=["ACME", "BOLT"],
        decision_interval=60,
    )
    agents = [
        agent_create(name=name, slug=name.lower(), kind="trader")
        for name in ("Alpha", "Beta", "Gamma")
    ]
    services.tournament_initialize_agents(
        tournament=tournament, agents=agents, strategies={a.pk: "buy_and_hold" for a in agents}
    )
    services.tournament_start(tournament=tournament)
    entries = list(tournament.entries.order_by("id"))
    for entry, cash in zip(entries, ("12000", "11000", "10000"), strict=True):
        Entry.objects.filter(pk=entry.pk).update(cash=Decimal(cash))
    services.rankings_update(tournament=tournament)
    return tournament.pk, [entry.pk for entry in entries]


def _trade_and_rerank(tournament_id: int, trader: int, cash: dict[int, str]) -> None:
    """`trader` decides (buy and hold: it buys), the others' cash changes, then the ranking."""
    services.decision_make(entry=Entry.objects.get(pk=trader))
    for entry_id, amount in cash.items():
        Entry.objects.filter(pk=entry_id).update(cash=Decimal(amount))
    services.rankings_update(tournament=Tournament.objects.get(pk=tournament_id))


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_leaderboard_reorders_live_when_the_rankings_change(browser, web_server):
    tournament_id, [alpha, beta, gamma] = off_the_loop(_browser_fixture)
    page, errors = signed_in_page(
        browser,
        web_server,
        f"/tournaments/{tournament_id}/",
        username="admin",
        password=PASSWORD,
        viewport={"width": 1440, "height": 900},
    )
    page.evaluate("window.__sameDocument = true")
    rows = "#leaderboard tbody tr"

    def order() -> list[int]:
        return [
            int(n) for n in page.eval_on_selector_all(rows, "rs => rs.map(r => r.dataset.entryId)")
        ]

    assert order() == [alpha, beta, gamma]
    assert page.locator(f"{rows} .equity-chart polyline").count() == 3

    assert page.locator("#trades tbody tr").count() == 0
    off_the_loop(_trade_and_rerank, tournament_id, beta, {alpha: "9000", gamma: "15000"})

    page.wait_for_function(
        """([first, last]) => {
            const rows = document.querySelectorAll("#leaderboard tbody tr");
            return rows[0].dataset.entryId === String(first)
                && rows[2].dataset.entryId === String(last);
        }""",
        arg=[gamma, alpha],
        timeout=TASK_TIMEOUT,
    )
    assert order() == [gamma, beta, alpha]
    assert page.locator(f"{rows} .rank").all_inner_texts() == ["1", "2", "3"]
    assert page.locator(f"{rows} .equity").first.inner_text() == "15000.00"
    # Each ranking adds a point to every entry's chart (the first one, then this one).
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll("#leaderboard .equity-chart polyline"))
            .every((line) => line.getAttribute("points").split(" ").length === 2)""",
        timeout=TASK_TIMEOUT,
    )
    # The trades are read again after the ranking.
    page.locator("#trades tbody tr").first.wait_for(timeout=TASK_TIMEOUT)
    assert set(page.locator("#trades tbody tr td:nth-child(2)").all_inner_texts()) == {"Beta"}
    assert page.locator("#trades-empty").is_hidden()
    assert page.evaluate("window.__sameDocument") is True
    assert page.inner_text("#connection") == "Live"
    screenshot(page, "tournament.png")
    assert errors == []


# --- Any screen (issue 15, item 12) --------------------------------------------------------------

LAYOUT = """() => {
    const lines = (el) => {
        // Text that wraps has one box per line, whatever the element's display.
        const range = document.createRange();
        range.selectNodeContents(el);
        const rects = Array.from(range.getClientRects()).filter((r) => r.width > 0);
        return new Set(rects.map((r) => Math.round(r.top))).size;
    };
    const boxOf = (table) => {
        // A table wider than its card must scroll inside a box of its own, within the card.
        let box = table.parentElement;
        while (box && !["auto", "scroll"].includes(getComputedStyle(box).overflowX)) {
            box = box.parentElement;
        }
        return box;
    };
    const tables = {};
    for (const table of document.querySelectorAll("#leaderboard, #trades")) {
        const card = table.closest(".card").getBoundingClientRect();
        const box = boxOf(table);
        const shown = (box || table.parentElement).getBoundingClientRect();
        tables[table.id] = {
            wider: table.getBoundingClientRect().width > card.width + 1,
            scrolls: Boolean(box) && box.scrollWidth > box.clientWidth,
            boxInCard: shown.left >= card.left - 1 && shown.right <= card.right + 1,
            // What a visitor cannot reach: cells past the card with no box to scroll them in.
            clipped: !box && Array.from(table.querySelectorAll("th, td"))
                .some((cell) => cell.getBoundingClientRect().right > card.right + 1),
        };
    }
    return {
        pageWidth: document.scrollingElement.scrollWidth,
        innerWidth: window.innerWidth,
        nameLines: Array.from(document.querySelectorAll("#leaderboard .agent-name")).map(lines),
        slugLines: Array.from(document.querySelectorAll("#leaderboard .agent-slug")).map(lines),
        agentInTrades: Array.from(document.querySelectorAll("#trades tbody td:nth-child(2)"))
            .map(lines),
        tables,
    };
}"""


def _layout_fixture() -> int:
    get_user_model()._default_manager.create_superuser("admin", "admin@example.com", PASSWORD)
    now = timezone.now()
    tournament = services.tournament_create(
        name="Layout cup of the first hour",
        starts_at=now - timedelta(minutes=30),
        ends_at=now + timedelta(hours=6),
        symbols=["AAPL", "MSFT", "NVDA", "GOOGL"],
        decision_interval=60,
    )
    names = {
        "demo-trader-momentum": "Max Momentum",
        "demo-trader-reversion": "Remy Reversion",
        "demo-trader-contrarian": "Connie Contrarian",
        "demo-trader-random": "Rita Random",
    }
    agents = [agent_create(name=name, slug=slug, kind="trader") for slug, name in names.items()]
    services.tournament_initialize_agents(
        tournament=tournament, agents=agents, strategies={a.pk: "random" for a in agents}
    )
    services.tournament_start(tournament=tournament)
    for entry in tournament.entries.all():
        for tick in range(0, 30, 3):
            services.decision_make(entry=Entry.objects.get(pk=entry.pk), tick=tick)
    services.rankings_update(tournament=tournament)
    return tournament.pk


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_page_fits_a_desktop_and_a_phone(browser, web_server):
    tournament_id = off_the_loop(_layout_fixture)
    for width, height in ((1280, 800), (390, 844)):
        page, errors = signed_in_page(
            browser,
            web_server,
            f"/tournaments/{tournament_id}/",
            username="admin",
            password=PASSWORD,
            viewport={"width": width, "height": height},
        )
        page.locator("#trades tbody tr").first.wait_for()
        layout = page.evaluate(LAYOUT)
        screenshot(page, f"tournament-{width}.png")

        assert layout["pageWidth"] <= layout["innerWidth"], (width, layout)
        assert set(layout["nameLines"]) == {1}, (width, layout)
        assert set(layout["slugLines"]) == {1}, (width, layout)
        assert set(layout["agentInTrades"]) == {1}, (width, layout)
        for name, table in layout["tables"].items():
            assert not table["clipped"], (width, name, layout)
            assert table["boxInCard"], (width, name, layout)
            assert not table["wider"] or table["scrolls"], (width, name, layout)
        if width == 1280:
            # At desktop width every column of the trades is in view, no scrolling needed.
            assert not layout["tables"]["trades"]["scrolls"], layout
        assert errors == []
        page.close()
