"""Test clients signed in as a given user, and the JSON they get back."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client
from rest_framework.test import APIClient


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_client(user: Any = None, **kwargs: Any) -> APIClient:
    """An API client, signed in as `user` when one is given (`kwargs` go to APIClient)."""
    client = APIClient(**kwargs)
    if user is not None:
        client.force_login(user)
    return client


def response_json(response: Any) -> Any:
    """The body of a JSON response, after checking it is one."""
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    return json.loads(response.content)
