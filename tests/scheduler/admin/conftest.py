"""Fixtures of the periodic task and task result admins' tests."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from pydantic import Field

from scheduler.catalog import CatalogEntry, Params, catalog
from tests.forms import ECHO


class EchoParams(Params):
    times: int = Field(1, ge=1, description="how many times to echo")
    text: str = Field("hi", description="what to echo")


@pytest.fixture
def echo_entry(monkeypatch: pytest.MonkeyPatch) -> CatalogEntry:
    """A catalog entry with typed parameters, registered for the test only (the test files that
    need it apply it to each of their tests: `pytest.mark.usefixtures("echo_entry")`)."""
    entry = CatalogEntry(name=ECHO, description="Echo a text (tests).", params=EchoParams)
    monkeypatch.setitem(catalog._entries, ECHO, entry)
    return entry


@pytest.fixture
def viewer(db: None) -> User:
    """Staff who may look at periodic tasks but not change or run them."""
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(
            codename="view_periodictask", content_type__app_label="django_celery_beat"
        ),
        Permission.objects.get(
            codename="view_taskresult", content_type__app_label="django_celery_results"
        ),
    )
    return user


@pytest.fixture
def viewer_client(viewer: User) -> Client:
    client = Client()
    client.force_login(viewer)
    return client
