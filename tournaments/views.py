"""The tournaments' pages: the list of tournaments, and a tournament's live page.

Both are for staff who may watch the dashboard (`dashboard_access`). The live page renders the
leaderboard, then its script (static/tournaments/live.js) re-ranks the table from each
`tournament.leaderboard` event on the tournament's websocket group
(`/ws/events/?object=tournament:<id>`), and re-reads the page's JSON (`live.json`: leaderboard,
equity series, recent trades, status) after each ranking and, at most every few seconds, after
decisions of its entries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from scheduler.dashboard import alerts_config, dashboard_access
from tournaments.models import Tournament
from tournaments.selectors import (
    tournament_by_id,
    tournament_equity_series,
    tournament_leaderboard,
    tournament_leaderboard_at,
    tournament_recent_trades,
    tournaments_listed,
)
from tournaments.services import leaderboard_row

# The page shows the leaderboard's top entries (the API pages through all of them), the equity
# of the latest rankings, and the latest trades.
ENTRIES_SHOWN = 200
SERIES_POINTS = 60
TRADES_SHOWN = 50
# Tournament events the page's websocket asks for first (after a reconnect: what it missed).
EVENTS_BACKFILL = 100


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def live_payload(tournament: Tournament) -> dict[str, Any]:
    """What the live page shows, as its script reads it (the page embeds it, live.json serves
    it): leaderboard rows as `tournament.leaderboard` events carry them."""
    entries = list(tournament_leaderboard(tournament_id=tournament.pk)[:ENTRIES_SHOWN])
    series = tournament_equity_series(tournament_id=tournament.pk, points=SERIES_POINTS)
    trades = tournament_recent_trades(tournament_id=tournament.pk, limit=TRADES_SHOWN)
    return {
        "tournament": {
            "id": tournament.pk,
            "name": tournament.name,
            "status": tournament.status,
            "status_label": tournament.get_status_display(),
            "starts_at": _iso(tournament.starts_at),
            "ends_at": _iso(tournament.ends_at),
            "initial_cash": str(tournament.initial_cash),
        },
        # When the ranking these rows come from was published: the script applies a leaderboard
        # (from an event or from here) only if it is not older than the one it shows.
        "board_at": _iso(tournament_leaderboard_at(tournament_id=tournament.pk)),
        "leaderboard": [leaderboard_row(entry) for entry in entries],
        "series": {
            str(entry_id): [
                {"at": _iso(s.at), "tick": s.tick, "equity": str(s.equity)} for s in snapshots
            ]
            for entry_id, snapshots in series.items()
        },
        "trades": [
            {
                "id": trade.pk,
                "entry": trade.entry_id,
                "agent": trade.entry.agent.slug,
                "name": trade.entry.agent.name,
                "side": trade.side,
                "symbol": trade.symbol,
                "quantity": trade.quantity,
                "price": str(trade.price),
                "tick": trade.tick,
                "executed_at": _iso(trade.executed_at),
            }
            for trade in trades
        ],
    }


def _tournament(tournament_id: str) -> Tournament:
    tournament = tournament_by_id(tournament_id=int(tournament_id))
    if tournament is None:
        raise Http404(f"no tournament with id {tournament_id}")
    return tournament


@require_GET
@never_cache
@dashboard_access()
def tournament_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    if status not in Tournament.Status.values:
        status = ""
    context = {
        "tournaments": tournaments_listed(status=status or None),
        "statuses": Tournament.Status.choices,
        "status": status,
        "timezone": timezone.get_current_timezone_name(),
    }
    return render(request, "tournaments/tournament_list.html", context)


@require_GET
@never_cache
@dashboard_access()
def tournament_page(request: HttpRequest, tournament_id: str) -> HttpResponse:
    tournament = _tournament(tournament_id)
    data = live_payload(tournament)
    config = {
        "tournament": tournament.pk,
        "ws_path": "/ws/events/",
        "ws_query": f"object=tournament:{tournament.pk}&backfill={EVENTS_BACKFILL}",
        "live_url": reverse("tournaments-live", args=[tournament.pk]),
        "timezone": timezone.get_current_timezone_name(),
        "series_points": SERIES_POINTS,
        "alerts": alerts_config(),
    }
    context = {
        "tournament": tournament,
        "data": data,
        "config": config,
        "entries": data["leaderboard"],
        # The same trades as objects, for times in the page's time zone before the script runs.
        "trades": tournament_recent_trades(tournament_id=tournament.pk, limit=TRADES_SHOWN),
        "entries_shown": ENTRIES_SHOWN,
        "admin_url": reverse("admin:tournaments_tournament_change", args=[tournament.pk]),
        "api_url": reverse("api-tournament-leaderboard", args=[tournament.pk]),
    }
    return render(request, "tournaments/tournament.html", context)


@require_GET
@never_cache
@dashboard_access(json=True)
def tournament_live(request: HttpRequest, tournament_id: str) -> HttpResponse:
    tournament = tournament_by_id(tournament_id=int(tournament_id))
    if tournament is None:
        return JsonResponse({"detail": f"no tournament with id {tournament_id}"}, status=404)
    return JsonResponse(live_payload(tournament))
