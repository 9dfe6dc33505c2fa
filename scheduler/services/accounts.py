"""Writes of user accounts: the superuser a deployment starts with."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

# --- Users ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedSuperuser:
    username: str
    password: str
    generated: bool


@transaction.atomic
def superuser_ensure(
    *, username: str = "admin", password: str | None = None
) -> CreatedSuperuser | None:
    """Create a superuser when none exists yet; None when one already does.

    Without `password` a random one is generated: it is returned once and stored only hashed.
    """
    user_model = get_user_model()
    if user_model._default_manager.filter(is_superuser=True).exists():
        return None
    generated = not password
    secret = password or secrets.token_urlsafe(12)
    user_model._default_manager.create_superuser(username=username, email="", password=secret)
    return CreatedSuperuser(username=username, password=secret, generated=generated)


# --- Runs ----------------------------------------------------------------------------------------
