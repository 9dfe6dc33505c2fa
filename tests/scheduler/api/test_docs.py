"""The API docs page works offline: its assets are our static files, not a CDN's."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_it_serves_the_docs_page_from_local_static_files(admin_client):
    response = admin_client.get("/api/docs/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "cdn." not in page
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    asset = admin_client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css")
    assert asset.status_code == 200
