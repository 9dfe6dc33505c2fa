"""`scheduler sync` for the alert channels and rules declared in code
(scheduler/schedules/declared_alerts.py), as services/declared.py syncs schedules: it creates
what is missing, applies what the code changed, keeps what staff changed since the last sync
(drift: reported; applied with `force`), and disables, never deletes, a channel or rule whose
declaration was removed. Channels go first, since rules name them. Every write goes through
`channel_save` / `rule_save`, so it is validated and audited (source "code").

`alert_declarations_check` says what is wrong without reading the database (system check
scheduler.E005, which may run before the database exists): whether a rule's target and
channels exist is for sync to say, as an error of that declaration.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from django.db import transaction

from scheduler.core.channel_kinds import ChannelConfigError
from scheduler.core.masking import configured_keys, is_secret_key
from scheduler.models import AlertChannel, AlertRule, DeclaredAlert, Source
from scheduler.schedules.declared import DeclarationError, differences
from scheduler.schedules.declared_alerts import (
    CHANNEL_FIELDS,
    RULE_FIELDS,
    AlertDeclarations,
    DeclaredChannel,
    DeclaredRule,
    channel_row_fields,
    rule_json,
    rule_row_fields,
    time_of_day,
)
from scheduler.services.alerts import (
    NAME_MAX,
    QUEUE_TRIGGERS,
    AlertNotFound,
    RuleInput,
    channel_config_clean,
    channel_kind,
    channel_kinds,
    channel_save,
    rule_clean,
    rule_save,
)
from scheduler.services.declared import (
    CREATE,
    DISABLE,
    DRIFT,
    ERROR,
    UPDATE,
    SyncChange,
    SyncReport,
    _drift_note,
)
from scheduler.services.errors import ScheduleError, User

Target = AlertRule.Target
Trigger = AlertRule.Trigger
CHANNEL, RULE = DeclaredAlert.Entity.CHANNEL.value, DeclaredAlert.Entity.RULE.value
# Target types whose names resolve without the database; the others (a schedule, an agent...)
# are looked up, so the system check leaves them to sync.
_STATIC_TARGETS = frozenset({Target.ALL, Target.TASK, Target.QUEUE})
Problems = list[tuple[str, str]]


# --- what can be told without the database -------------------------------------------------------


def alert_declarations_check(declared: AlertDeclarations) -> list[DeclarationError]:
    """Every problem of every declaration that needs no database: unknown kinds and triggers,
    settings a kind refuses, a secret in a config, numbers out of range, wrong types."""
    found = [
        DeclarationError(str(item.name), item.origin, name, message)
        for item in declared.channels
        for name, message in channel_problems(item)
    ]
    found.extend(
        DeclarationError(str(item.name), item.origin, name, message)
        for item in declared.rules
        for name, message in rule_problems(item)
    )
    return found


def _name_problems(name: Any) -> Problems:
    if not isinstance(name, str) or not name.strip():
        return [("name", "a non-empty string")]
    if len(name.strip()) > NAME_MAX:
        return [("name", f"at most {NAME_MAX} characters")]
    return []


def channel_problems(item: DeclaredChannel) -> Problems:
    """(field, message) for each problem of a declared channel."""
    problems = _name_problems(item.name)
    kinds = channel_kinds()
    if not isinstance(item.kind, str) or item.kind not in kinds:
        known = ", ".join(sorted(kinds))
        problems.append(("kind", f"unknown channel kind {item.kind!r} (kinds: {known})"))
    if not isinstance(item.enabled, bool):
        problems.append(("enabled", f"True or False, not {item.enabled!r}"))
    if not isinstance(item.config, Mapping):
        return [*problems, ("config", "a dict of the kind's settings")]
    keys = configured_keys()
    for key in item.config:
        if is_secret_key(key, keys) and not str(key).endswith("_env"):
            problems.append(
                (
                    "config",
                    f"{key}: a secret is never declared: keep it in the environment and name "
                    "the variable (a webhook's 'secret_env')",
                )
            )
    if problems:
        return problems
    try:
        kind = channel_kind(item.kind)
    except ScheduleError:
        return problems  # registered but not loadable: sync says so, at the first write
    try:
        kind.validate(dict(item.config))
    except ChannelConfigError as exc:
        problems.append(("config", f"{exc.field}: {exc.message}"))
    return problems


_RULE_TYPES: dict[str, type] = {
    "trigger": str,
    "target_type": str,
    "target": str,
    "quiet_timezone": str,
    "description": str,
    "enabled": bool,
}


def _type_problems(item: DeclaredRule) -> Problems:
    problems = [
        (name, f"must be a {kind.__name__}, not {getattr(item, name)!r}")
        for name, kind in _RULE_TYPES.items()
        if not isinstance(getattr(item, name), kind)
    ]
    channels = item.channels
    if (
        isinstance(channels, str)
        or not isinstance(channels, Sequence)
        or not all(isinstance(name, str) and name.strip() for name in channels)
    ):
        problems.append(("channels", "a list of channel names: ('ops',)"))
    for name in ("quiet_start", "quiet_end"):
        try:
            time_of_day(getattr(item, name))
        except ValueError:
            problems.append((name, f"not a time of day: {getattr(item, name)!r} ('22:00')"))
    return problems


def rule_problems(item: DeclaredRule) -> Problems:
    """(field, message) for each problem of a declared rule that needs no database: the rule
    service's own checks, with a target it would look up left out."""
    problems = _name_problems(item.name) + _type_problems(item)
    if problems:
        return problems
    data = rule_input(item.name, item.fields())
    if item.target_type in _STATIC_TARGETS or item.target_type not in Target.values:
        checked = replace(data, channels=())
    else:
        checked = replace(data, target_type=Target.ALL, target="", channels=())
        if not item.target.strip():
            problems.append(("target", f"name the {item.target_type} the rule watches"))
        if item.trigger in QUEUE_TRIGGERS:
            problems.append(("target_type", "this trigger watches queues: all or queue"))
        if item.trigger == Trigger.BEAT_NO_LEADER:
            problems.append(("target_type", "beat has no target: use all"))
    try:
        # No channels and no target to look up: no query (a filter on an empty list runs none).
        rule_clean(checked)
    except ScheduleError as exc:
        problems[:0] = [(name, " ".join(messages)) for name, messages in exc.errors.items()]
    return problems


def rule_input(name: str, values: Mapping[str, Any]) -> RuleInput:
    """The rule service's input from RULE_FIELDS as JSON (a declaration's, a row's)."""
    return RuleInput(
        name=name,
        trigger=values["trigger"],
        target_type=values["target_type"],
        target=values["target"],
        threshold=values["threshold"],
        duration=values["duration"],
        channels=tuple(values["channels"]),
        repeat_interval=values["repeat_interval"],
        quiet_start=time_of_day(values["quiet_start"]),
        quiet_end=time_of_day(values["quiet_end"]),
        quiet_timezone=values["quiet_timezone"],
        enabled=values["enabled"],
        description=values["description"],
    )


def _failed(problems: Problems) -> ScheduleError:
    errors: dict[str, list[str]] = {}
    for name, message in problems:
        errors.setdefault(name, []).append(message)
    return ScheduleError(errors)


# --- sync ----------------------------------------------------------------------------------------


def alerts_sync(
    declared: AlertDeclarations,
    *,
    force: bool = False,
    dry_run: bool = False,
    prune: bool = True,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.CODE,
    schedules: Collection[str] = (),
) -> SyncReport:
    """Compare every declared channel, then rule, with its row and, unless `dry_run`, apply
    the plan. A wrong declaration is an error of its own; the others still sync.

    `prune`: `declared` is all there is, so what was declared before and is not now is
    disabled. `schedules`: the schedules this sync declares, which a dry run has not created
    but a rule may already target.
    """
    last = {(state.entity, state.name): dict(state.fields) for state in DeclaredAlert.objects.all()}
    plan = _Plan(
        last=last,
        force=force,
        dry_run=dry_run,
        actor=actor,
        actor_name=actor_name,
        source=source,
    )
    channels = {
        row.name: row
        for row in AlertChannel.objects.filter(name__in=[item.name for item in declared.channels])
    }
    usable = set(AlertChannel.objects.values_list("name", flat=True))
    for channel in declared.channels:
        try:
            wanted = _channel_wanted(channel)
        except ScheduleError as exc:
            plan.error(CHANNEL, channel.name, channel.origin, str(exc))
            continue
        usable.add(channel.name)
        row = channels.get(channel.name)
        plan.sync(
            CHANNEL,
            channel.name,
            channel.origin,
            wanted,
            channel_row_fields(row) if row is not None else None,
            write=_channel_writer(channel.name, wanted, row),
        )
    rules = {
        row.name: row
        for row in AlertRule.objects.filter(
            name__in=[item.name for item in declared.rules]
        ).prefetch_related("channels")
    }
    for rule in declared.rules:
        try:
            wanted = _rule_wanted(rule, usable=usable, planned=schedules if dry_run else ())
        except ScheduleError as exc:
            plan.error(RULE, rule.name, rule.origin, str(exc))
            continue
        rule_row = rules.get(rule.name)
        plan.sync(
            RULE,
            rule.name,
            rule.origin,
            wanted,
            rule_row_fields(rule_row) if rule_row is not None else None,
            write=_rule_writer(rule.name, wanted, rule_row),
        )
    if prune:
        plan.removed(
            {(CHANNEL, item.name) for item in declared.channels}
            | {(RULE, item.name) for item in declared.rules}
        )
    if not dry_run:
        plan.remember()
    return SyncReport(changes=plan.changes, unchanged=plan.unchanged)


def _channel_wanted(item: DeclaredChannel) -> dict[str, Any]:
    """The declaration as channel_save keeps it (its config as the kind cleans it)."""
    problems = channel_problems(item)
    if problems:
        raise _failed(problems)
    return {**item.fields(), "config": channel_config_clean(item.kind, dict(item.config))}


def _rule_wanted(
    item: DeclaredRule, *, usable: set[str], planned: Collection[str]
) -> dict[str, Any]:
    """The declaration as rule_save keeps it (a threshold or duration its trigger ignores
    dropped); ScheduleError when it is wrong, or names a channel there is not."""
    problems = rule_problems(item)
    if problems:
        raise _failed(problems)
    data = rule_input(item.name, item.fields())
    try:
        fields, _ = rule_clean(replace(data, channels=()))
        wanted = rule_json(fields, data.channels)
    except ScheduleError as exc:
        # A dry run on a new database: the schedule it watches is one this sync creates.
        if set(exc.errors) != {"target"} or item.target not in planned:
            raise
        wanted = item.fields()
    missing = sorted(set(wanted["channels"]) - usable)
    if missing:
        raise ScheduleError.on(
            "channels",
            f"no channel named {', '.join(missing)}: declare it in CHANNELS or create it",
        )
    return wanted


def _channel_writer(
    name: str, wanted: dict[str, Any], row: AlertChannel | None
) -> Callable[[SyncChange, User, str, str], object]:
    def write(change: SyncChange, actor: User, source: str, actor_name: str) -> object:
        values = wanted
        if row is not None:
            values = {**channel_row_fields(row), **{f: wanted[f] for f in change.fields}}
        return channel_save(
            name=name,
            **values,
            actor=actor,
            actor_name=actor_name,
            source=source,
            create=row is None,
        )

    return write


def _rule_writer(
    name: str, wanted: dict[str, Any], row: AlertRule | None
) -> Callable[[SyncChange, User, str, str], object]:
    def write(change: SyncChange, actor: User, source: str, actor_name: str) -> object:
        values = wanted
        if row is not None:
            values = {**rule_row_fields(row), **{f: wanted[f] for f in change.fields}}
        return rule_save(
            rule_input(name, values),
            actor=actor,
            actor_name=actor_name,
            source=source,
            create=row is None,
        )

    return write


class _Plan:
    """The changes of one sync as they are found, applied (unless a dry run) and remembered."""

    def __init__(
        self,
        *,
        last: dict[tuple[str, str], dict[str, Any]],
        force: bool,
        dry_run: bool,
        actor: User,
        actor_name: str,
        source: str,
    ) -> None:
        self.last, self.force, self.dry_run = last, force, dry_run
        self.actor, self.actor_name, self.source = actor, actor_name, source
        self.changes: list[SyncChange] = []
        self.unchanged = 0
        self.synced: list[tuple[str, str, str, dict[str, Any]]] = []

    def error(self, what: str, name: str, origin: str, message: str) -> None:
        self.changes.append(SyncChange(name, origin, ERROR, message=message, what=what))

    def sync(
        self,
        what: str,
        name: str,
        origin: str,
        wanted: dict[str, Any],
        current: dict[str, Any] | None,
        *,
        write: Callable[[SyncChange, User, str, str], object],
    ) -> None:
        change = self._change(what, name, origin, wanted, current)
        if change is None:
            self.unchanged += 1
        else:
            if not self.dry_run and change.action != DRIFT:
                self._apply(change, lambda: write(change, self.actor, self.source, self.actor_name))
            self.changes.append(change)
        if change is None or change.action != ERROR:
            self.synced.append((what, name, origin, wanted))

    def _change(
        self,
        what: str,
        name: str,
        origin: str,
        wanted: dict[str, Any],
        current: dict[str, Any] | None,
    ) -> SyncChange | None:
        fields = CHANNEL_FIELDS if what == CHANNEL else RULE_FIELDS
        if current is None:
            created = {field: (None, wanted[field]) for field in fields}
            return SyncChange(name, origin, CREATE, created, what=what)
        found = differences(wanted, current, self.last.get((what, name)), names=fields)
        if self.force and (found.from_code or found.drift):
            return SyncChange(name, origin, UPDATE, {**found.from_code, **found.drift}, what=what)
        if found.from_code:
            note = _drift_note(found.drift)
            return SyncChange(name, origin, UPDATE, found.from_code, note, what=what)
        if found.drift:
            return SyncChange(name, origin, DRIFT, found.drift, _drift_note(found.drift), what=what)
        return None

    def _apply(self, change: SyncChange, write: Callable[[], object]) -> None:
        try:
            with transaction.atomic():
                write()
        except (ScheduleError, AlertNotFound) as exc:
            change.action, change.message = ERROR, str(exc)
            return
        change.applied = True

    def removed(self, declared: set[tuple[str, str]]) -> None:
        """What was declared and is not now: disabled (never deleted), then forgotten as a
        declaration, so staff may enable it and keep it."""
        for state in DeclaredAlert.objects.order_by("entity", "name"):
            if (state.entity, state.name) in declared:
                continue
            row = _row(state.entity, state.name)
            if row is None:  # deleted since: nothing to disable
                if not self.dry_run:
                    state.delete()
                continue
            message = "no longer declared: disabled" if row.enabled else "no longer declared"
            change = SyncChange(
                state.name, state.origin, DISABLE, message=message, what=state.entity
            )
            if row.enabled:
                change.fields = {"enabled": (True, False)}
            self.changes.append(change)
            if not self.dry_run:
                self._apply(change, functools.partial(self._forget, row, state))

    def _forget(self, row: AlertChannel | AlertRule, state: DeclaredAlert) -> None:
        alert_disable(row, actor=self.actor, actor_name=self.actor_name, source=self.source)
        state.delete()

    def remember(self) -> None:
        """Keep each declaration as applied, so the next sync tells code changes from drift."""
        failed = {(change.what, change.name) for change in self.changes if change.action == ERROR}
        exists = {
            CHANNEL: set(AlertChannel.objects.values_list("name", flat=True)),
            RULE: set(AlertRule.objects.values_list("name", flat=True)),
        }
        for what, name, origin, wanted in self.synced:
            if (what, name) in failed or name not in exists[what]:
                continue
            DeclaredAlert.objects.update_or_create(
                entity=what, name=name, defaults={"origin": origin, "fields": wanted}
            )


def _row(entity: str, name: str) -> AlertChannel | AlertRule | None:
    if entity == CHANNEL:
        return AlertChannel.objects.filter(name=name).first()
    return AlertRule.objects.filter(name=name).prefetch_related("channels").first()


def alert_disable(
    row: AlertChannel | AlertRule, *, actor: User, source: str, actor_name: str = ""
) -> None:
    """Disable a channel or rule through its service (validated and audited like any edit);
    nothing to do when it is disabled already."""
    if not row.enabled:
        return
    if isinstance(row, AlertChannel):
        channel_save(
            name=row.name,
            kind=row.kind,
            config=row.config,
            enabled=False,
            actor=actor,
            actor_name=actor_name,
            source=source,
            create=False,
        )
        return
    values = {**rule_row_fields(row), "enabled": False}
    rule_save(
        rule_input(row.name, values),
        actor=actor,
        actor_name=actor_name,
        source=source,
        create=False,
    )
