"""Who a command-line action is by: the OS user who ran it, or the Django user named by `--as`.

Every verb of `manage.py scheduler` takes `--as USER`. Without it, the action is recorded in the
audit trail with the OS user's name (`getpass.getuser()`, in AuditEntry.actor_name) and no Django
user: whoever has a shell on the host may run manage.py, as they may run Django's own commands,
so nothing is checked. With it, USER must be an active member of staff holding the permissions
the verb needs (scheduler/permissions.py, those the API asks for the same action); the audit
entry's actor is then that user, and its actor_name still the OS user. An unknown user, or one
without the permission, is one line on stderr with exit code 1 before anything is read or
written.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import CommandError

from scheduler.cli.commands import VerbCommand, Verbs, add_to_every_verb
from scheduler.permissions import is_staff, staff_has

AS_HELP = (
    "act as this Django user: an active member of staff with the permission the action needs "
    "(default: the OS user, recorded by name)"
)


@dataclass(frozen=True)
class CommandActor:
    """What the services are given: `user` (their `actor`; None without --as) and `name` (their
    `actor_name`: the OS user)."""

    user: AbstractBaseUser | None
    name: str

    @property
    def label(self) -> str:
        """Who, as a line of output says it: 'bob' (--as), else the OS user."""
        return self.user.get_username() if self.user is not None else self.name


def os_user() -> str:
    """The OS user running the command; '' when the system cannot say (a container's uid with
    no name and no LOGNAME or USER)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return ""


def command_actor(options: Mapping[str, Any], *, needs: Iterable[str] = ()) -> CommandActor:
    """The actor of a command: the OS user, or `--as` USER checked for the permissions `needs`;
    CommandError naming `--as` when USER is unknown, not active staff, or lacks one."""
    name = os_user()
    username = options.get("as_user")
    if username is None:
        return CommandActor(user=None, name=name)
    User = get_user_model()
    user = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
    if user is None:
        raise CommandError(f"--as: no user named {username!r}")
    if not is_staff(user):
        raise CommandError(f"--as: {username!r} is not an active member of staff")
    missing = [permission for permission in needs if not staff_has(user, permission)]
    if missing:
        raise CommandError(
            f"--as: {username!r} may not do this: it needs the permission "
            f"{', '.join(missing)}; nothing was changed"
        )
    return CommandActor(user=user, name=name)


def add_actor_option(verbs: Verbs) -> None:
    """`--as USER` on every verb and every action of a verb."""
    add_to_every_verb(verbs, "--as", dest="as_user", metavar="USER", help=AS_HELP)


class ActorCommand(VerbCommand):
    """A command of verbs whose actions are audited as `self.actor`, resolved before the verb
    runs; subclasses say in `permissions_needed` what each verb needs of an `--as` user."""

    actor = CommandActor(user=None, name="")

    def permissions_needed(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        return ()

    def handle(self, *args: Any, **options: Any) -> None:
        self.actor = command_actor(options, needs=self.permissions_needed(options))
        super().handle(*args, **options)
