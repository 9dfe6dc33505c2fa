"""`manage.py scheduler alerts | channels | incidents`: alert rules, the channels they notify,
and their incidents (incidents.py), written through the services with source cli (as the OS
user or `--as` USER).

`scheduler alerts watch` runs the engine's periodic checks (`alert_watch`) from cron or systemd,
instead of, or besides, the watcher thread of workers and beat. The scheduler command mixes in
`AlertVerbs` and registers the verbs with `add_alert_verbs`.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import CommandError
from django.db import close_old_connections, connection
from django.utils import timezone

from scheduler.cli import output as out
from scheduler.cli.alert_parsing import (
    actions_of,
    add_zone_options,
    quiet_window,
    refusals,
    said_with_flags,
    seconds_of,
)
from scheduler.cli.commands import Verbs
from scheduler.cli.incidents import IncidentVerbs, add_incident_verbs, delivery_as_dict
from scheduler.core.durations import duration_written
from scheduler.core.json_input import MalformedJSON, read_json
from scheduler.core.masking import masked
from scheduler.models import AlertChannel, AlertRule, NotificationDelivery, Source
from scheduler.selectors.alerts import (
    alert_channel_named,
    alert_channels,
    alert_rule_named,
    alert_rules,
    delivery_get,
)
from scheduler.services import (
    AlertNotFound,
    RuleInput,
    ScheduleError,
    channel_delete,
    channel_save,
    rule_delete,
    rule_save,
)
from scheduler.services.alert_watch import alert_watch
from scheduler.services.alerts import channel_kinds, rule_snapshot
from scheduler.services.incidents import channel_send_test

# The services' field names as the options that set them.
RULE_FLAGS = {
    "name": "NAME",
    "trigger": "--trigger",
    "target_type": "--target-type",
    "target": "--target",
    "threshold": "--threshold",
    "duration": "--duration",
    "channels": "--channel",
    "repeat_interval": "--repeat",
    "quiet_start": "--quiet",
    "quiet_end": "--quiet",
    "quiet_timezone": "--quiet-tz",
    "description": "--description",
}
CHANNEL_FLAGS = {"name": "NAME", "kind": "--kind", "config": "--config"}
# A channel's settings given one by one, and the options that give them.
CONFIG_FLAGS = {"to": "--to", "url": "--url", "secret_env": "--secret-env"}
RULE_HEADERS = (
    "NAME",
    "ON",
    "TRIGGER",
    "TARGET",
    "N",
    "DURATION",
    "CHANNELS",
    "REPEAT",
    "QUIET",
    "OPEN",
)
CHANNEL_HEADERS = ("NAME", "KIND", "ON", "SETTINGS", "LAST DELIVERY")
# `channels test` waits this long (seconds) for its delivery to finish, polling this often.
TEST_WAIT = 5.0
_TEST_POLL = 0.2


# --- rendering ---------------------------------------------------------------------------------


def rule_as_dict(rule: AlertRule) -> dict[str, Any]:
    return {
        "id": rule.pk,
        **rule_snapshot(rule),
        "open_incidents": getattr(rule, "open_incidents", None),
    }


def _rule_target(rule: AlertRule) -> str:
    return (
        "everything"
        if rule.target_type == AlertRule.Target.ALL
        else f"{rule.target_type} {rule.target}"
    )


def _rule_row(rule: AlertRule) -> tuple[object, ...]:
    quiet = ""
    if rule.quiet_start is not None and rule.quiet_end is not None:
        quiet = f"{rule.quiet_start:%H:%M}-{rule.quiet_end:%H:%M} {rule.quiet_timezone}"
    return (
        rule.name,
        "yes" if rule.enabled else "no",
        rule.trigger,
        _rule_target(rule),
        rule.threshold,
        duration_written(rule.duration),
        ", ".join(channel.name for channel in rule.channels.all()),
        duration_written(rule.repeat_interval) if rule.repeat_interval else "never",
        quiet,
        getattr(rule, "open_incidents", None),
    )


def channel_as_dict(channel: AlertChannel) -> dict[str, Any]:
    status = getattr(channel, "last_status", None)
    return {
        "id": channel.pk,
        "name": channel.name,
        "kind": channel.kind,
        "enabled": channel.enabled,
        "config": masked(channel.config),
        "last_delivery": (
            {"status": status, "at": out.iso(getattr(channel, "last_delivery_at", None))}
            if status
            else None
        ),
    }


def _channel_row(channel: AlertChannel) -> tuple[object, ...]:
    status = getattr(channel, "last_status", None)
    last = f"{status} {out.when(getattr(channel, 'last_delivery_at', None))}" if status else ""
    return (
        channel.name,
        channel.kind,
        "yes" if channel.enabled else "no",
        json.dumps(masked(channel.config), ensure_ascii=False, sort_keys=True),
        last,
    )


# --- reading the options -----------------------------------------------------------------------


def rule_input(options: dict[str, Any], current: AlertRule | None) -> RuleInput:
    """The rule as the options give it: over `current` (update), or over the defaults (add)."""
    if current is None:
        rule = RuleInput(name=options["name"], trigger=options["trigger"] or "")
    else:
        rule = RuleInput(
            name=current.name,
            trigger=current.trigger,
            target_type=current.target_type,
            target=current.target,
            threshold=current.threshold,
            duration=current.duration,
            channels=[channel.name for channel in current.channels.all()],
            repeat_interval=current.repeat_interval,
            quiet_start=current.quiet_start,
            quiet_end=current.quiet_end,
            quiet_timezone=current.quiet_timezone,
            enabled=current.enabled,
            description=current.description,
        )
    for option, field in (
        ("trigger", "trigger"),
        ("target_type", "target_type"),
        ("target", "target"),
        ("threshold", "threshold"),
        ("channel", "channels"),
        ("quiet_tz", "quiet_timezone"),
        ("enabled", "enabled"),
        ("description", "description"),
    ):
        if options[option] is not None:
            setattr(rule, field, options[option])
    if options["target_type"] == AlertRule.Target.ALL and options["target"] is None:
        rule.target = ""
    if options["duration"] is not None:
        rule.duration = seconds_of(options["duration"], flag="--duration")
    if options["repeat"] is not None:
        rule.repeat_interval = seconds_of(options["repeat"], flag="--repeat") or 0
    if options["quiet"] is not None:
        rule.quiet_start, rule.quiet_end = quiet_window(options["quiet"])
    return rule


def channel_config(options: dict[str, Any], current: AlertChannel | None) -> tuple[Any, bool]:
    """The settings the options give (over `current`'s), and whether they came one by one."""
    given = {
        key: options[dest]
        for key, dest in (("to", "to"), ("url", "url"), ("secret_env", "secret_env"))
        if options[dest] is not None
    }
    if options["config"] is not None:
        if given:
            raise CommandError("--config: give the settings as JSON or one by one, not both")
        try:
            return read_json(options["config"]), False
        except MalformedJSON as exc:
            raise CommandError(f"--config: {exc}") from None
    base = dict(current.config) if current is not None else {}
    return {**base, **given}, bool(given)


def _channel_refusal(exc: ScheduleError, *, one_by_one: bool) -> str:
    """The settings' own option when they were given one by one ("--url: ...")."""
    if one_by_one and list(exc.errors) == ["config"]:
        key, _, message = " ".join(exc.errors["config"]).partition(": ")
        if key in CONFIG_FLAGS:
            return out.one_line(f"{CONFIG_FLAGS[key]}: {message}")
    return said_with_flags(exc, CHANNEL_FLAGS)


class AlertVerbs(IncidentVerbs):
    """`alerts`, `channels` and `incidents`, for the scheduler command to mix in."""

    # Waits sleep through this, so that tests can drive the clock.
    sleep = staticmethod(time.sleep)

    # --- alerts: the rules ---------------------------------------------------------------------

    def _alerts(self, options: dict[str, Any]) -> None:
        handlers = {
            None: self._rules_list,
            "add": self._rule_add,
            "update": self._rule_update,
            "remove": self._rule_remove,
            "watch": self._rules_watch,
        }
        with refusals(RULE_FLAGS):
            handlers[options.get("alerts_action")](options)

    def _rules_list(self, options: dict[str, Any]) -> None:
        rules = list(alert_rules())
        if options["json"]:
            self._json([rule_as_dict(rule) for rule in rules])
        elif rules:
            self._print(out.table(RULE_HEADERS, map(_rule_row, rules)))
        else:
            self._print("No alert rules.")

    def _rule_add(self, options: dict[str, Any]) -> None:
        rule = rule_save(
            rule_input(options, None),
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
            create=True,
        )
        if options.get("json"):
            self._json(rule_as_dict(rule))
            return
        channels = rule_snapshot(rule)["channels"]
        self._print(
            f"Added rule {rule.name!r} ({rule.trigger}, {_rule_target(rule)}"
            + (f", notifying {', '.join(channels)}" if channels else ", notifying nobody")
            + ("" if rule.enabled else ", disabled")
            + ")."
        )

    def _rule_update(self, options: dict[str, Any]) -> None:
        current = alert_rule_named(options["name"])
        if current is None:
            raise AlertNotFound("rule", options["name"])
        before = rule_snapshot(current)
        rule = rule_save(
            rule_input(options, current),
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
            create=False,
        )
        changed = [field for field, value in rule_snapshot(rule).items() if before[field] != value]
        if options.get("json"):
            self._json({**rule_as_dict(rule), "changed": changed})
            return
        self._print(
            f"Updated rule {rule.name!r}: {', '.join(changed)}."
            if changed
            else f"Rule {rule.name!r} is unchanged."
        )

    def _rule_remove(self, options: dict[str, Any]) -> None:
        rule_delete(
            name=options["name"],
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        if options.get("json"):
            self._json({"name": options["name"], "removed": True})
            return
        self._print(f"Removed rule {options['name']!r} and its incidents.")

    def _rules_watch(self, options: dict[str, Any]) -> None:
        if options["once"]:
            report = alert_watch()
            if options["json"]:
                self._json(report.as_dict())
            else:
                self._print(_watch_line(report.as_dict()))
            return
        if options["json"]:
            raise CommandError("--json needs --once (one report)")
        interval = settings.ALERTS_WATCH_INTERVAL
        limit = options["max_seconds"]
        deadline = None if limit is None else time.monotonic() + limit
        self._print(f"Checking the alert rules every {interval:g} s (Ctrl-C stops).")
        try:
            while True:
                if not connection.in_atomic_block:  # never a caller's transaction
                    close_old_connections()  # a loop of days outlives a database connection
                try:
                    self._print(_watch_line(alert_watch().as_dict()))
                except redis.exceptions.RedisError as exc:
                    self.stderr.write(out.one_line(f"cannot reach Redis: {exc}"))
                self.stdout.flush()
                if deadline is not None and time.monotonic() >= deadline:
                    return
                self.sleep(interval)
        except KeyboardInterrupt:
            return

    # --- channels ------------------------------------------------------------------------------

    def _channels(self, options: dict[str, Any]) -> None:
        handlers = {
            None: self._channels_list,
            "add": self._channel_add,
            "update": self._channel_update,
            "remove": self._channel_remove,
            "test": self._channel_test,
        }
        with refusals(CHANNEL_FLAGS):
            handlers[options.get("channels_action")](options)

    def _channels_list(self, options: dict[str, Any]) -> None:
        channels = list(alert_channels())
        if options["json"]:
            self._json([channel_as_dict(channel) for channel in channels])
        elif channels:
            self._print(out.table(CHANNEL_HEADERS, map(_channel_row, channels)))
        else:
            self._print(f"No channels (kinds: {', '.join(sorted(channel_kinds()))}).")

    def _channel_write(self, options: dict[str, Any], current: AlertChannel | None) -> AlertChannel:
        config, one_by_one = channel_config(options, current)
        enabled = options["enabled"]
        try:
            return channel_save(
                name=options["name"],
                kind=options["kind"] or (current.kind if current is not None else ""),
                config=config,
                enabled=(current.enabled if current is not None else True)
                if enabled is None
                else enabled,
                actor=self.actor.user,
                actor_name=self.actor.name,
                source=Source.CLI,
                create=current is None,
            )
        except ScheduleError as exc:
            raise CommandError(_channel_refusal(exc, one_by_one=one_by_one)) from exc

    def _channel_add(self, options: dict[str, Any]) -> None:
        if not options["kind"]:
            raise CommandError(f"--kind is required (one of: {', '.join(sorted(channel_kinds()))})")
        channel = self._channel_write(options, None)
        if options.get("json"):
            self._json(channel_as_dict(channel))
            return
        state = "" if channel.enabled else ", disabled"
        self._print(f"Added channel {channel.name!r} ({channel.kind}{state}).")

    def _channel_update(self, options: dict[str, Any]) -> None:
        current = alert_channel_named(options["name"])
        if current is None:
            raise AlertNotFound("channel", options["name"])
        channel = self._channel_write(options, current)
        if options.get("json"):
            self._json(channel_as_dict(channel))
            return
        self._print(f"Updated channel {channel.name!r} ({channel.kind}).")

    def _channel_remove(self, options: dict[str, Any]) -> None:
        channel_delete(
            name=options["name"],
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        if options.get("json"):
            self._json({"name": options["name"], "removed": True})
            return
        self._print(f"Removed channel {options['name']!r}.")

    def _channel_test(self, options: dict[str, Any]) -> None:
        delivery = channel_send_test(
            name=options["name"],
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        quiet = bool(options.get("json"))
        if not quiet:
            self._print(
                f"Queued a test notification to {options['name']!r}: delivery {delivery.pk}."
            )
            self.stdout.flush()
        wait = max(float(options["wait"]), 0.0)
        deadline = time.monotonic() + wait
        row = delivery_get(delivery.pk)
        while row is not None and row.status == NotificationDelivery.Status.PENDING:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if quiet:
                    self._json(delivery_as_dict(row))
                    return
                self._print(
                    f"Still pending after {wait:g} s: a worker sends it (see `scheduler status`); "
                    "the delivery log in the admin shows how it ends."
                )
                return
            self.sleep(min(_TEST_POLL, remaining))
            row = delivery_get(delivery.pk)
        if row is None:
            raise CommandError(f"delivery {delivery.pk} is gone (its channel was removed)")
        if row.status == NotificationDelivery.Status.FAILED:
            code = f", response {row.response_code}" if row.response_code else ""
            raise CommandError(
                out.one_line(
                    f"delivery {row.pk} failed after {row.attempts} attempt(s){code}: {row.error}"
                )
            )
        if quiet:
            self._json(delivery_as_dict(row))
            return
        code = f" (response {row.response_code})" if row.response_code else ""
        self._print(f"Sent{code}.")


def _watch_line(report: dict[str, int]) -> str:
    return (
        f"{out.when(timezone.now())}  opened {report['opened']}, "
        f"recovered {report['recovered']}, notified {report['notified']}"
    )


# --- verbs and their options -------------------------------------------------------------------


def _rule_options(parser: argparse.ArgumentParser, *, adding: bool) -> None:
    parser.add_argument("name")
    parser.add_argument(
        "--trigger",
        required=adding,
        help=f"one of: {', '.join(AlertRule.Trigger.values)}",
    )
    parser.add_argument(
        "--target-type",
        help=f"what it watches: {', '.join(AlertRule.Target.values)} (default: all)",
    )
    parser.add_argument("--target", help="the schedule, task, agent, tournament or queue named")
    parser.add_argument("--threshold", type=int, help="N: failures in a row, or a queue's depth")
    parser.add_argument("--duration", help="D or T: 30s, 10m, 2h, 1d or seconds")
    parser.add_argument(
        "--channel",
        action="append",
        metavar="NAME",
        help="a channel to notify (repeat it for more"
        + ("" if adding else "; replaces the rule's; --channel '' for none")
        + ")",
    )
    parser.add_argument("--repeat", help="tell an open incident again after this long; 0: never")
    parser.add_argument("--quiet", metavar="HH:MM-HH:MM", help="a daily quiet window, or off")
    parser.add_argument("--quiet-tz", metavar="ZONE", help="the quiet window's zone (UTC)")
    parser.add_argument("--description")
    state = parser.add_mutually_exclusive_group()
    state.add_argument("--enabled", dest="enabled", action="store_const", const=True)
    state.add_argument("--disabled", dest="enabled", action="store_const", const=False)


def _channel_options(parser: argparse.ArgumentParser, *, adding: bool) -> None:
    parser.add_argument("name")
    parser.add_argument(
        "--kind",
        help="email, webhook, slack, signal, or a deployment's own"
        + ("" if adding else " (keeps its own)"),
    )
    parser.add_argument("--config", metavar="JSON", help="the settings as a JSON object")
    parser.add_argument(
        "--to", action="append", metavar="ADDRESS", help="email: an address (repeat it for more)"
    )
    parser.add_argument("--url", help="webhook, slack: where to post")
    parser.add_argument(
        "--secret-env", metavar="VAR", help="webhook: the environment variable of its signing key"
    )
    state = parser.add_mutually_exclusive_group()
    state.add_argument("--enabled", dest="enabled", action="store_const", const=True)
    state.add_argument("--disabled", dest="enabled", action="store_const", const=False)


def add_alert_verbs(verbs: Verbs) -> None:
    """`alerts`, `channels` and `incidents`, each a listing with its actions."""
    alerts = verbs.add_parser(
        "alerts",
        help="alert rules: list them, or add, update, remove; watch runs their checks",
        description="Without an ACTION: list the alert rules.",
    )
    alerts.add_argument("--json", action="store_true", help="print JSON")
    actions = actions_of(alerts, dest="alerts_action")
    _rule_options(actions.add_parser("add", help="add a rule"), adding=True)
    _rule_options(
        actions.add_parser("update", help="change a rule: only the options given"), adding=False
    )
    actions.add_parser("remove", help="remove a rule and its incidents").add_argument("name")
    watch = actions.add_parser(
        "watch",
        help="check the rules on beat, workers, queues and schedules every "
        "ALERTS_WATCH_INTERVAL seconds until Ctrl-C (for cron or systemd)",
    )
    watch.add_argument("--once", action="store_true", help="check once, print the report, exit")
    # Left out unless given: `alerts --json watch --once` keeps the verb's.
    watch.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON (with --once)"
    )
    # Bounds the loop for tests and scripts.
    watch.add_argument("--max-seconds", type=float, help=argparse.SUPPRESS)
    add_zone_options(actions)

    channels = verbs.add_parser(
        "channels",
        help="alert channels: list them, or add, update, remove, test one",
        description="Without an ACTION: list the alert channels and their last delivery.",
    )
    channels.add_argument("--json", action="store_true", help="print JSON")
    actions = actions_of(channels, dest="channels_action")
    _channel_options(actions.add_parser("add", help="add a channel"), adding=True)
    _channel_options(
        actions.add_parser("update", help="change a channel: only the options given"),
        adding=False,
    )
    actions.add_parser("remove", help="remove a channel").add_argument("name")
    test = actions.add_parser("test", help="send a test notification and say how it went")
    test.add_argument("name")
    # How long to wait for the delivery to finish (tests: 0).
    test.add_argument("--wait", type=float, default=TEST_WAIT, help=argparse.SUPPRESS)
    add_zone_options(actions)

    add_incident_verbs(verbs)
