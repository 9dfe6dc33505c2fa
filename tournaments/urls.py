"""The tournaments' pages, mounted under `/tournaments/` by config/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, path, re_path

from tournaments import views

# Digits only, and no more than a database integer holds: anything else is a 404.
TOURNAMENT = r"(?P<tournament_id>[0-9]{1,18})"

urlpatterns: list[URLPattern] = [
    path("", views.tournament_list, name="tournaments"),
    re_path(rf"^{TOURNAMENT}/$", views.tournament_page, name="tournaments-page"),
    re_path(rf"^{TOURNAMENT}/live\.json$", views.tournament_live, name="tournaments-live"),
]
