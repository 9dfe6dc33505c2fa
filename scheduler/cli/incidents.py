"""`manage.py scheduler incidents`: the incidents, open first, and what staff do to one
(acknowledge, silence, resolve), each through its service with source cli, as the OS user or
`--as` USER (who then acknowledges it); `show` gives an incident's details and the notifications
it sent.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone

from scheduler.cli import output as out
from scheduler.cli.actor import ActorCommand
from scheduler.cli.alert_parsing import (
    actions_of,
    add_zone_options,
    moment_of,
    refusals,
    seconds_of,
)
from scheduler.cli.commands import Verbs
from scheduler.core.formatting import duration_text
from scheduler.core.masking import masked
from scheduler.models import Incident, NotificationDelivery, Source
from scheduler.selectors.alerts import (
    alert_rule_named,
    incident_by_id,
    incident_deliveries,
    incident_lasted,
    incident_status,
    incidents_listed,
)
from scheduler.services import incident_acknowledge, incident_silence
from scheduler.services.incidents import incident_resolve

INCIDENT_HEADERS = ("ID", "STATUS", "OPENED", "LASTED", "MATCHES", "RULE", "TITLE", "ACK BY")
DELIVERY_HEADERS = ("ID", "CREATED", "CHANNEL", "KIND", "STATUS", "TRIES", "CODE", "ERROR")
LIMIT_MAX = 10_000


def incident_as_dict(incident: Incident, now: datetime) -> dict[str, Any]:
    by = incident.acknowledged_by
    return {
        "id": incident.pk,
        "title": incident.title,
        "status": incident_status(incident, now),
        "rule": incident.rule.name,
        "trigger": incident.rule.trigger,
        "subject": incident.subject,
        "opened_at": out.iso(incident.opened_at),
        "resolved_at": out.iso(incident.resolved_at),
        "duration_seconds": round(incident_lasted(incident, now), 3),
        "last_match_at": out.iso(incident.last_match_at),
        "match_count": incident.match_count,
        "notified_at": out.iso(incident.notified_at),
        "acknowledged_by": by.get_username() if by is not None else None,
        "acknowledged_at": out.iso(incident.acknowledged_at),
        "acknowledge_note": incident.acknowledge_note,
        "silenced_until": out.iso(incident.silenced_until),
        "object": (
            {"type": incident.object_type, "id": incident.object_id}
            if incident.object_type
            else None
        ),
        "details": masked(incident.details),
    }


def delivery_as_dict(delivery: NotificationDelivery) -> dict[str, Any]:
    return {
        "id": delivery.pk,
        "channel": delivery.channel.name,
        "kind": delivery.kind,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "response_code": delivery.response_code,
        "error": delivery.error,
        "subject": delivery.subject,
        "created_at": out.iso(delivery.created_at),
        "sent_at": out.iso(delivery.sent_at),
        "task_id": delivery.task_id or None,
    }


def _acknowledged_by(incident: Incident) -> str:
    """Who acknowledged it: nobody named when it was from the command line."""
    by = incident.acknowledged_by
    return by.get_username() if by is not None and incident.acknowledged_at else ""


def _incident_row(incident: Incident, now: datetime) -> tuple[object, ...]:
    return (
        incident.pk,
        incident_status(incident, now),
        out.when(incident.opened_at),
        duration_text(incident_lasted(incident, now)),
        incident.match_count,
        incident.rule.name,
        incident.title,
        _acknowledged_by(incident),
    )


def _delivery_row(delivery: NotificationDelivery) -> tuple[object, ...]:
    return (
        delivery.pk,
        out.when(delivery.created_at),
        delivery.channel.name,
        delivery.kind,
        delivery.status,
        delivery.attempts,
        delivery.response_code,
        delivery.error,
    )


class IncidentVerbs(ActorCommand):
    """`incidents` and its actions, for the scheduler command to mix in."""

    def _incidents(self, options: dict[str, Any]) -> None:
        handlers = {
            None: self._incidents_list,
            "ack": self._incident_ack,
            "silence": self._incident_silence,
            "resolve": self._incident_resolve,
            "show": self._incident_show,
        }
        flags = {"incident": "", "until": "--until" if options.get("until") else "--for"}
        with refusals(flags):
            handlers[options.get("incidents_action")](options)

    def _incidents_list(self, options: dict[str, Any]) -> None:
        limit = options["limit"]
        if not 1 <= limit <= LIMIT_MAX:
            raise CommandError(f"--limit {limit} is out of range 1-{LIMIT_MAX}")
        rule = options["rule"] or ""
        if rule and alert_rule_named(rule) is None:
            raise CommandError(f"--rule: no rule {rule!r}")
        everything = bool(options["all"])
        incidents = list(
            incidents_listed(open_only=not everything, search=options["search"] or "", rule=rule)[
                :limit
            ]
        )
        now = timezone.now()
        if options["json"]:
            self._json([incident_as_dict(incident, now) for incident in incidents])
        elif incidents:
            self._print(out.table(INCIDENT_HEADERS, (_incident_row(i, now) for i in incidents)))
        elif everything:
            self._print("No incidents.")
        else:
            self._print("No open incidents (--all shows the resolved ones too).")

    def _incident(self, incident_id: int) -> Incident:
        incident = incident_by_id(incident_id)
        if incident is None:
            raise CommandError(f"no incident {incident_id}")
        return incident

    def _incident_ack(self, options: dict[str, Any]) -> None:
        incident = incident_acknowledge(
            incident_id=options["id"],
            actor=self.actor.user,
            actor_name=self.actor.name,
            note=options["note"] or "",
            source=Source.CLI,
        )
        if options.get("json"):
            self._json(incident_as_dict(incident, timezone.now()))
            return
        self._print(f"Acknowledged incident {incident.pk}: {incident.title}.")

    def _incident_silence(self, options: dict[str, Any]) -> None:
        until: datetime | None = None
        if options["until"] is not None:
            until = moment_of(options["until"], flag="--until")
        elif options["for"] is not None:
            seconds = seconds_of(options["for"], flag="--for") or 0
            until = timezone.now() + timedelta(seconds=seconds)
        incident = incident_silence(
            incident_id=options["id"],
            until=until,
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        if options.get("json"):
            self._json(incident_as_dict(incident, timezone.now()))
        elif until is None:
            self._print(f"Lifted the silence of incident {incident.pk}: {incident.title}.")
        else:
            self._print(f"Silenced incident {incident.pk} until {out.when(until)}.")

    def _incident_resolve(self, options: dict[str, Any]) -> None:
        incident = incident_resolve(
            incident_id=options["id"],
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        if options.get("json"):
            self._json(incident_as_dict(incident, timezone.now()))
            return
        lasted = duration_text(incident_lasted(incident))
        self._print(f"Resolved incident {incident.pk} after {lasted}: {incident.title}.")

    def _incident_show(self, options: dict[str, Any]) -> None:
        incident = self._incident(options["id"])
        deliveries = list(incident_deliveries(incident))
        now = timezone.now()
        data = incident_as_dict(incident, now)
        if options["json"]:
            data["deliveries"] = [delivery_as_dict(delivery) for delivery in deliveries]
            self._json(data)
            return
        self._print(f"Incident {incident.pk}: {incident.title}")
        acknowledged = ""
        if incident.acknowledged_at is not None:
            by = _acknowledged_by(incident)
            acknowledged = out.when(incident.acknowledged_at) + (f" by {by}" if by else "")
            if incident.acknowledge_note:
                acknowledged += f": {out.one_line(incident.acknowledge_note)}"
        for label, value in (
            ("status", data["status"]),
            ("rule", f"{incident.rule.name} ({incident.rule.get_trigger_display()})"),
            ("subject", incident.subject),
            ("opened", out.when(incident.opened_at)),
            ("resolved", out.when(incident.resolved_at)),
            ("lasted", duration_text(data["duration_seconds"])),
            ("matches", f"{incident.match_count} (last {out.when(incident.last_match_at)})"),
            ("notified", out.when(incident.notified_at)),
            ("acknowledged", acknowledged),
            ("silenced", out.when(incident.silenced_until)),
        ):
            self._print(f"{label + ':':<14}{value or out.NONE}")
        self._print("details:")
        for line in out.json_document(data["details"]).splitlines():
            self._print(f"  {line}")
        self._print()
        if not deliveries:
            self._print("Notifications: none")
            return
        self._print("Notifications:")
        self._print(out.table(DELIVERY_HEADERS, map(_delivery_row, deliveries)))


def add_incident_verbs(verbs: Verbs) -> None:
    """`incidents` (the list) and its actions `ack`, `silence`, `resolve`, `show`."""
    incidents = verbs.add_parser(
        "incidents",
        help="incidents, open first; ack, silence, resolve or show one",
        description="Without an ACTION: list the open incidents (--all: the resolved too).",
    )
    which = incidents.add_mutually_exclusive_group()
    which.add_argument("--open", action="store_true", help="only open ones (the default)")
    which.add_argument("--all", action="store_true", help="resolved ones too, after the open")
    incidents.add_argument("--search", metavar="TEXT", help="in the title, subject or rule name")
    incidents.add_argument("--rule", metavar="NAME", help="only this rule's")
    incidents.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    incidents.add_argument("--json", action="store_true", help="print JSON")
    actions = actions_of(incidents, dest="incidents_action")

    ack = actions.add_parser("ack", help="acknowledge: somebody is on it, no more repeats")
    ack.add_argument("id", type=int)
    ack.add_argument("--note", default="", help="what is being done about it")

    silence = actions.add_parser("silence", help="hold back its notifications for a while")
    silence.add_argument("id", type=int)
    how = silence.add_mutually_exclusive_group(required=True)
    how.add_argument("--for", metavar="DURATION", help="e.g. 30m, 2h, 1d or seconds")
    how.add_argument("--until", metavar="TIME", help="ISO 8601 (naive: the --tz zone)")
    how.add_argument("--lift", action="store_true", help="end the silence now")

    resolve = actions.add_parser("resolve", help="close it by hand (its recovery is told)")
    resolve.add_argument("id", type=int)

    show = actions.add_parser("show", help="an incident's details and notifications")
    show.add_argument("id", type=int)
    # Left out unless given: `incidents --json show 3` keeps the verb's.
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    add_zone_options(actions)
