"""No route lets in anyone who does not belong: every route of the URL conf, walked automatically.

Every route (tests/security/routes.py walks `get_resolver()` through its includes) is called with
GET, POST, PUT, PATCH and DELETE by an anonymous visitor and by a signed-in user who is not
staff, and, where a view checks a permission, by staff without it. Pages send the visitor to the
admin login or answer 401/403; API views answer 401/403 with a JSON body; nothing is created and
nothing is queued. A route added later is checked the same way without being listed here: only
the public routes below are exempt, each with its reason.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client, override_settings
from django.urls import path
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    SolarSchedule,
)
from django_celery_results.models import GroupResult
from rest_framework.authtoken.models import Token

from agents.models import Agent, AgentSchedule, Mention, Message, Post, Session
from scheduler.dashboard.views import dashboard_access
from tests.factories import TaskResultFactory, UserFactory, make_schedule
from tests.security.routes import Route, routes
from tournaments.models import Decision, Entry, EquitySnapshot, Tournament, Trade

pytestmark = [pytest.mark.security, pytest.mark.django_db]

METHODS = ("get", "post", "put", "patch", "delete")
LOGIN = "/admin/login/"

# Anyone may call these; each is checked on its own below (and in test_webhooks.py).
PUBLIC = {
    "": "the front door: a redirect to the dashboard, which asks visitors to sign in",
    "favicon.ico": "browsers ask for it on every page: a redirect to a static image",
    "healthz": "load balancers poll it; it reports health and nothing else, GET only",
    "api/health/": "the same report for API clients, GET only",
    "admin/login/": "the login page itself",
    "admin/logout/": "signing out needs no access: a visitor is sent on to the admin index",
    "api/inbound/<slug:slug>/": (
        "the signed webhook of an agent: authenticated by the HMAC of its body, not by a "
        "session; a missing or bad signature is a 403 and nothing is stored"
    ),
}
# Static files are public too, by design (CSS and scripts, no data), but they are no route:
# WhiteNoise serves them before the URL conf is consulted.

# Any member of staff may use these without a permission: they show nothing a permission guards.
STAFF_LEVEL = {
    "admin/": "the admin index lists only the models the user may see",
    "admin/password_change/": "a user's own password",
    "account/time-zone/": "a user's own time zone",
    "admin/password_change/done/": "a user's own password",
    "admin/jsi18n/": "the translations of the admin's scripts",
    "api/docs/": "the API's documentation page (its schema is for staff too)",
}

ALL_ROUTES = routes()


@pytest.fixture
def world(db: None) -> dict[str, Any]:
    """One row of every kind the routes take an id of, so URLs name objects that exist."""
    cache.clear()  # throttling counts live in the cache: start every test from zero
    owner = UserFactory.create(is_superuser=True)
    agent = Agent.objects.create(name="Agent One", slug="agent-one")
    schedule = make_schedule(name="every five minutes")
    agent_schedule = AgentSchedule.objects.create(agent=agent, periodic_task=schedule)
    session = Session.objects.create(agent=agent)
    Message.objects.create(session=session, role=Message.Role.USER, content="hi")
    Post.objects.create(agent=agent, topic="t", content="c")
    Mention.objects.create(agent=agent, external_id="m1", content="hello")
    now = timezone.now()
    tournament = Tournament.objects.create(
        name="Cup", starts_at=now, ends_at=now + timedelta(days=1), symbols=["A"]
    )
    entry = Entry.objects.create(tournament=tournament, agent=agent, cash=100, equity=100)
    decision = Decision.objects.create(entry=entry, tick=1)
    Trade.objects.create(
        entry=entry, decision=decision, symbol="A", side="buy", quantity=1, price=1, tick=1
    )
    EquitySnapshot.objects.create(entry=entry, tick=1, equity=100, cash=100)
    result = TaskResultFactory.create(task_name="scheduler.ping")
    GroupResult.objects.create(group_id="group-1")
    IntervalSchedule.objects.get_or_create(every=1, period="days")
    CrontabSchedule.objects.get_or_create(minute="0", hour="9")
    ClockedSchedule.objects.create(clocked_time=now)
    SolarSchedule.objects.create(event="sunrise", latitude=0, longitude=0)
    Group.objects.create(name="operators")
    Token.objects.create(user=owner)
    return {
        "task_id": [result.task_id],
        "pk": [schedule.pk],
        "id": [owner.pk],
        "session_id": [session.pk],
        "tournament_id": [tournament.pk],
        "entry_id": [entry.pk],
        "slug": [agent.slug],
        "schedule_id": [agent_schedule.pk],
        "content_type_id": [ContentType.objects.get_for_model(Agent).pk],
        "object_id": [agent.pk],
        "app_label": ["agents"],
        "url": ["no-such-page/"],
    }


def samples_for(route: Route, world: dict[str, Any]) -> dict[str, Any]:
    """The world's values, with `object_id` an existing row of the admin route's own model."""
    samples = dict(world)
    model = _admin_model(route)
    if model is not None:
        first = model._default_manager.order_by("pk").values_list("pk", flat=True).first()
        samples["object_id"] = [first] if first is not None else ["1"]
    return samples


def _admin_model(route: Route) -> Any:
    model_admin = route.model_admin
    if model_admin is not None:
        return model_admin.model
    # A model's own extra views (run now): admin/<app_label>/<model_name>/...
    parts = route.template.split("/")
    if route.is_admin and len(parts) > 3:
        try:
            return apps.get_model(parts[1], parts[2])
        except (LookupError, ValueError):
            return None
    return None


def row_counts() -> dict[str, int]:
    counts = {}
    with connection.cursor() as cursor:
        for model in apps.get_models():
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 (our own table names)
            counts[model._meta.label] = cursor.fetchone()[0]
    return counts


def call(client: Client, method: str, url: str) -> Any:
    """The test client's response (an HttpResponse with the request it answered)."""
    if method == "get":
        return client.get(url)
    return client.generic(method.upper(), url, data=b"{}", content_type="application/json")


def is_json(response: Any) -> bool:
    if not response.get("Content-Type", "").startswith("application/json"):
        return False
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    return isinstance(body, dict) and bool(body.get("detail"))


def login_redirect(response: Any) -> bool:
    return response.status_code == 302 and response["Location"].startswith(LOGIN)


def refusal_problems(
    route: Route, url: str, client: Client, *, signed_in: bool, methods: tuple[str, ...] = METHODS
) -> list[str]:
    """What is wrong with how `route` answers someone without access (nothing when refused)."""
    problems = []
    refused_once = False
    for method in methods:
        response = call(client, method, url)
        code = response.status_code
        what = f"{method.upper()} {url} ({route.template}) -> {code}"
        if route.is_api:
            wanted = {403} if signed_in else {401, 403}
            if code not in wanted:
                problems.append(f"{what}: an API view must answer {sorted(wanted)}")
            elif not is_json(response):
                problems.append(f"{what}: the refusal is not a JSON body with a detail")
            continue
        if code == 405:
            continue  # a method the view does not take: refused before access matters
        refused_once = True
        if not (login_redirect(response) or code in (401, 403)):
            problems.append(f"{what}: a page must send to {LOGIN} or answer 401/403")
    if not route.is_api and not refused_once:
        problems.append(f"{route.template}: no method reached the access check")
    return problems


def checked(route: Route) -> bool:
    return route.template not in PUBLIC


def _client(user: Any) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def side_effects() -> tuple[dict[str, int], int]:
    """Rows of every table, and the work waiting for the test's transaction to commit (a task
    queued by `task_enqueue`, an event to publish)."""
    return row_counts(), len(connection.run_on_commit)


def side_effect_problems(route: Route, before: tuple[dict[str, int], int]) -> list[str]:
    (rows, pending), (rows_now, pending_now) = before, side_effects()
    problems = []
    if rows_now != rows:
        changed = {k: (rows[k], rows_now[k]) for k in rows if rows[k] != rows_now[k]}
        problems.append(f"{route.template}: rows changed {changed}")
    if pending_now != pending:
        problems.append(f"{route.template}: {pending_now - pending} callbacks await the commit")
    return problems


@pytest.mark.parametrize("who", ["anonymous", "not staff"])
def test_it_refuses_every_route_to_visitors_and_users_who_are_not_staff(world, who):
    user = None if who == "anonymous" else UserFactory.create(is_staff=False)
    client = _client(user)
    problems = []
    checked_routes = [route for route in ALL_ROUTES if checked(route)]
    for route in checked_routes:
        url = route.url(samples_for(route, world))
        before = side_effects()
        problems += refusal_problems(route, url, client, signed_in=user is not None)
        problems += side_effect_problems(route, before)

    assert problems == []
    assert len(checked_routes) == len(ALL_ROUTES) - len(PUBLIC)


def _permissioned_methods(route: Route) -> tuple[str, ...]:
    """The methods of an API route whose view names a permission for them."""
    required = getattr(route.view_class, "required_permissions", {}) or {}
    actions = getattr(route.callback, "actions", None) or {}
    return tuple(method for method in METHODS if required.get(actions.get(method, method)))


def test_it_refuses_staff_without_the_permission_a_view_checks(world):
    staff = UserFactory.create(is_staff=True)  # no permission at all
    client = _client(staff)
    problems = []
    seen = 0
    for route in ALL_ROUTES:
        if not checked(route) or route.template in STAFF_LEVEL:
            continue
        url = route.url(samples_for(route, world))
        if route.is_api:
            methods = _permissioned_methods(route)
            if not methods:
                continue  # reads of the API are for any member of staff (scheduler/api)
        else:
            methods = METHODS
        seen += 1
        before = side_effects()
        for method in methods:
            response = call(client, method, url)
            code = response.status_code
            what = f"{method.upper()} {url} ({route.template}) -> {code}"
            if 200 <= code < 300:
                problems.append(f"{what}: staff without permissions got in")
            elif route.is_api and (code != 403 or not is_json(response)):
                problems.append(f"{what}: an API view must answer 403 with a JSON body")
            elif code not in (302, 403, 404, 405):
                problems.append(f"{what}: expected a refusal")
        problems += side_effect_problems(route, before)

    assert problems == []
    assert seen > 100  # every model admin view, the dashboard's pages and the API's writes


def test_the_lists_of_exempt_routes_name_only_routes_that_exist():
    templates = {route.template for route in ALL_ROUTES}

    assert set(PUBLIC) - templates == set()
    assert set(STAFF_LEVEL) - templates == set()


def test_it_walks_through_every_include_of_the_url_conf():
    templates = {route.template for route in ALL_ROUTES}

    for expected in (
        "dashboard/",
        "agents/<slug:slug>/chats/",
        "tournaments/^(?P<tournament_id>[0-9]{1,18})/live\\.json$",
        "api/tasks/<task_id:task_id>/retry/",
        "api/^schedules/(?P<pk>[0-9]{1,18})/run/$",
        "admin/django_celery_beat/periodictask/<path:object_id>/run-now/",
    ):
        assert expected in templates
    assert len(ALL_ROUTES) > 150


# --- The public routes, each on its own -------------------------------------------------------


def test_the_health_checks_only_answer_reads(world):
    client = Client()

    for url in ("/healthz", "/api/health/"):
        assert client.get(url).status_code in (200, 503)
        for method in ("post", "put", "patch", "delete"):
            assert call(client, method, url).status_code in (401, 403, 405), (method, url)


def test_the_login_page_is_the_only_admin_page_a_visitor_sees(world):
    client = Client()

    assert client.get(LOGIN).status_code == 200
    assert login_redirect(client.get("/admin/"))


def test_signing_out_sends_a_visitor_on_without_showing_anything(world):
    response = Client().post("/admin/logout/")

    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def test_the_inbound_webhook_refuses_a_visitor_without_a_signature(world):
    route = next(route for route in ALL_ROUTES if route.template == "api/inbound/<slug:slug>/")
    before = side_effects()

    response = Client().post(
        "/api/inbound/agent-one/",
        {"type": "message", "conversation": "c", "message_id": "1", "text": "hi"},
        content_type="application/json",
    )

    assert response.status_code == 403
    assert is_json(response)
    assert side_effect_problems(route, before) == []


# --- The walker catches a new route nobody listed ---------------------------------------------


def _open_view(request: HttpRequest, pk: int) -> HttpResponse:
    return JsonResponse({"secret": "anyone can read this"})


@dashboard_access()
def _guarded_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


urlpatterns = [
    path("admin/", admin.site.urls),  # where the guarded view sends visitors
    path("forgotten/<int:pk>/", _open_view),
    path("guarded/", _guarded_view),
]


@override_settings(ROOT_URLCONF=__name__)
def test_a_new_route_that_lets_visitors_in_is_caught_without_being_listed(world):
    found = {route.template: route for route in routes(__name__)}
    client = Client()

    forgotten = found["forgotten/<int:pk>/"]
    guarded = found["guarded/"]
    url = forgotten.url(world)

    assert url.startswith("/forgotten/")
    assert refusal_problems(forgotten, url, client, signed_in=False) == [
        f"{method} {url} (forgotten/<int:pk>/) -> 200: a page must send to {LOGIN} or "
        "answer 401/403"
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
    ]
    assert refusal_problems(guarded, guarded.url(world), client, signed_in=False) == []
