"""Routes of the tournaments' API, mounted under `/api/` by config/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path, re_path

from tournaments.api import views

# Digits only, and no more than a database integer holds: anything else is a 404.
TOURNAMENT = r"(?P<tournament_id>[0-9]{1,18})"
ENTRY = r"(?P<entry_id>[0-9]{1,18})"

urlpatterns: list[URLPattern | URLResolver] = [
    path("tournaments/", views.TournamentListView.as_view(), name="api-tournament-list"),
    re_path(
        rf"^tournaments/{TOURNAMENT}/$",
        views.TournamentDetailView.as_view(),
        name="api-tournament-detail",
    ),
    re_path(
        rf"^tournaments/{TOURNAMENT}/start/$",
        views.TournamentStartView.as_view(),
        name="api-tournament-start",
    ),
    re_path(
        rf"^tournaments/{TOURNAMENT}/leaderboard/$",
        views.TournamentLeaderboardView.as_view(),
        name="api-tournament-leaderboard",
    ),
    re_path(
        rf"^tournaments/{TOURNAMENT}/entries/{ENTRY}/run/$",
        views.EntryRunView.as_view(),
        name="api-tournament-entry-run",
    ),
]
