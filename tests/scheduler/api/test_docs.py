"""The API's schema and docs: the OpenAPI schema lists every endpoint of the contract, the docs
page renders for staff (and sends others to log in), and it works offline: its assets are our
static files, not a CDN's.
"""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_it_serves_the_docs_page_from_local_static_files(admin_client):
    response = admin_client.get("/api/docs/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "cdn." not in page
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    asset = admin_client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css")
    assert asset.status_code == 200


CONTRACT = {
    "/api/": {"get"},
    "/api/catalog/": {"get"},
    "/api/health/": {"get"},
    "/api/tasks/": {"get", "post"},
    "/api/tasks/{task_id}/": {"get"},
    "/api/tasks/{task_id}/revoke/": {"post"},
    "/api/tasks/{task_id}/retry/": {"post"},
    "/api/schedules/": {"get", "post"},
    "/api/schedules/preview/": {"post"},
    "/api/schedules/{id}/": {"get", "put", "patch", "delete"},
    "/api/schedules/{id}/run/": {"post"},
    "/api/schedules/{id}/enable/": {"post"},
    "/api/schedules/{id}/disable/": {"post"},
    "/api/schedules/{name}/backfill/": {"post"},
    "/api/backfills/": {"get"},
    "/api/backfills/{backfill_id}/": {"get"},
    "/api/schedules/{id}/pause/": {"post"},
    "/api/schedules/{id}/resume/": {"post"},
    "/api/schedules/{id}/pause-on-failure/": {"post"},
    "/api/dead-letters/": {"get"},
    "/api/dead-letters/{dead_letter_id}/": {"get"},
    "/api/dead-letters/{dead_letter_id}/requeue/": {"post"},
    "/api/dead-letters/{dead_letter_id}/discard/": {"post"},
    "/api/queues/": {"get"},
    "/api/queues/{name}/pause/": {"post"},
    "/api/queues/{name}/resume/": {"post"},
    "/api/queues/{name}/purge/": {"post"},
    "/api/alerts/rules/": {"get", "post"},
    "/api/alerts/rules/{name}/": {"get", "put", "patch", "delete"},
    "/api/alerts/channels/": {"get", "post"},
    "/api/alerts/channels/{name}/": {"get", "put", "delete"},
    "/api/alerts/channels/{name}/test/": {"post"},
    "/api/alerts/deliveries/": {"get"},
    "/api/incidents/": {"get"},
    "/api/incidents/{incident_id}/": {"get"},
    "/api/incidents/{incident_id}/acknowledge/": {"post"},
    "/api/incidents/{incident_id}/silence/": {"post"},
    "/api/incidents/{incident_id}/resolve/": {"post"},
    "/api/workers/": {"get"},
    "/api/workers/{hostname}/pool/": {"post"},
    "/api/workers/{hostname}/autoscale/": {"post"},
    "/api/workers/{hostname}/shutdown/": {"post"},
    # agents/api
    "/api/sessions/": {"get", "post"},
    "/api/sessions/{session_id}/": {"get"},
    "/api/sessions/{session_id}/messages/": {"get", "post"},
    "/api/agents/{slug}/run/": {"post"},
    "/api/inbound/{slug}/": {"post"},
    # tournaments/api
    "/api/tournaments/": {"get"},
    "/api/tournaments/{tournament_id}/": {"get"},
    "/api/tournaments/{tournament_id}/leaderboard/": {"get"},
    "/api/tournaments/{tournament_id}/start/": {"post"},
    "/api/tournaments/{tournament_id}/entries/{entry_id}/run/": {"post"},
}


def test_the_openapi_schema_lists_every_endpoint_of_the_contract(api_admin):
    response = api_admin.get("/api/schema/?format=json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    paths = {path: set(operations) - {"parameters"} for path, operations in schema["paths"].items()}
    assert paths == CONTRACT
    wait = schema["paths"]["/api/tasks/{task_id}/"]["get"]["parameters"]
    assert "wait" in {parameter["name"] for parameter in wait}
    assert "PENDING" in schema["paths"]["/api/tasks/{task_id}/"]["get"]["description"]


def test_the_docs_page_renders_for_staff_and_sends_others_to_log_in(api_admin):
    response = api_admin.get("/api/docs/")
    anonymous = APIClient().get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "/api/schema/" in response.content.decode()
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/")
