"""`manage.py scheduler <verb>`: the catalog, schedules, runs, history, logs and health; the
schedules of an agent or a tournament as a group (`pause|resume|run --agent SLUG`); dead
letters (scheduler/cli/dead_letters.py); backfills (scheduler/cli/backfills.py); revoking runs
and pausing, resuming and purging queues (scheduler/cli/control.py); workers
(scheduler/cli/workers.py); alert rules, channels and incidents (their verbs:
scheduler/cli/alerts.py and incidents.py).

Reads go through `scheduler.selectors`, writes through `scheduler.services` (with
source=cli, audited as the OS user or `--as USER`: scheduler/cli/actor.py), rendering through
`scheduler.cli.output`. Every error is a CommandError: one line on stderr and exit status 1,
never a traceback; `--json` (on every verb) prints exactly one JSON document. Times are shown in
`--tz` (every verb takes it), else the `TZ` environment variable, else TIME_ZONE; `parse` and
`create` read the schedule in their `--tz` (default: TIME_ZONE), `update` in its `--tz`
(default: the schedule's own zone).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import kombu.exceptions
import redis
from django.conf import settings
from django.core.management.base import CommandError
from django.utils import timezone

from config.queues import QUEUES
from scheduler import selectors
from scheduler.catalog import load_catalog
from scheduler.cli import Verbs
from scheduler.cli import output as out
from scheduler.cli.actor import add_actor_option
from scheduler.cli.alert_parsing import said_with_flags
from scheduler.cli.alerts import AlertVerbs, add_alert_verbs
from scheduler.cli.backfills import REFUSALS as BACKFILL_REFUSALS
from scheduler.cli.backfills import BackfillVerbs, add_backfill_verbs
from scheduler.cli.commands import add_to_every_verb
from scheduler.cli.control import REFUSALS as CONTROL_REFUSALS
from scheduler.cli.control import ControlVerbs, add_control_verbs
from scheduler.cli.dead_letters import REFUSALS as DEAD_LETTER_REFUSALS
from scheduler.cli.dead_letters import DeadLetterVerbs, add_dead_letter_verbs
from scheduler.cli.groups import GroupVerbs, add_clear_verb, add_owner_arguments, owner_given
from scheduler.cli.runs import RunVerbs, add_run_verbs, positive_seconds
from scheduler.cli.schedule_files import ScheduleFileError, schedules_document, schedules_read
from scheduler.cli.sync import sync_json, sync_lines
from scheduler.cli.workers import REFUSALS as WORKER_REFUSALS
from scheduler.cli.workers import WorkerVerbs, add_worker_verbs
from scheduler.core.redis_connection import describe_redis
from scheduler.models import Source, TaskEvent
from scheduler.observability.health import (
    beat_heartbeat,
    beat_standbys,
    full_health_report,
    missed_runs,
)
from scheduler.observability.queues import paused_queues, queue_depths
from scheduler.observability.worker_heartbeats import workers_seen_within
from scheduler.permissions import (
    ADD_ALERT_CHANNEL,
    ADD_ALERT_RULE,
    ADD_SCHEDULE,
    CHANGE_ALERT_CHANNEL,
    CHANGE_ALERT_RULE,
    CHANGE_SCHEDULE,
    CONTROL_WORKERS,
    DELETE_ALERT_CHANNEL,
    DELETE_ALERT_RULE,
    DELETE_RESULTS,
    DELETE_SCHEDULE,
    MANAGE_ALERTS,
    RUN_TASKS,
)
from scheduler.schedules import schedule_describe
from scheduler.schedules.declared import DeclarationError, declared_schedules
from scheduler.schedules.declared_alerts import declared_alerts
from scheduler.schedules.parsing import ScheduleParseError, zone_named
from scheduler.schedules.pauses import UNTIL_HELP
from scheduler.schedules.policies import CatchUp, MisfirePolicy, OverlapPolicy
from scheduler.schedules.rows import periodic_task_next_runs
from scheduler.selectors.exports import alerts_exported, schedules_exported
from scheduler.services import (
    PAUSE_AFTER_MAX,
    OwnerNotFound,
    ScheduleError,
    ScheduleNotFound,
    history_clear,
    params_from_json,
    schedule_create,
    schedule_delete,
    schedule_disable,
    schedule_dry_run,
    schedule_enable,
    schedule_get,
    schedule_pause,
    schedule_pause_on_failure,
    schedule_resume,
    schedule_run_now,
    schedule_update,
    task_enqueue,
)
from scheduler.services.audit import changes_between, schedule_snapshot
from scheduler.services.declared import schedules_sync
from scheduler.services.declared_alerts import alerts_sync
from scheduler.services.imports import schedules_import
from scheduler.services.retention import RetentionRow, retention_overview

# How often `logs --follow` polls the event table.
_FOLLOW_SECONDS = 1.0
# Under PostgreSQL ids are handed out before commit, so an event can appear below the highest
# id already shown; `logs --follow` looks back this many ids for such late commits.
_LATE_COMMIT_IDS = 200
# `logs --filter` becomes a LIKE pattern: SQLite refuses patterns of 50,000 bytes and more.
_FILTER_MAX_CHARS = 1000
# `clear-history --older-than`: a century back is still inside the calendar.
_OLDER_THAN_MAX_DAYS = 36_500
# The options of `parse` by the services' names of the fields they set.
_PARSE_OPTION_OF = {
    "schedule": "phrase",
    "timezone": "--tz",
    "task": "--task",
    "overlap": "--overlap",
    "misfire": "--misfire",
    "catchup": "--catchup",
    "catchup_window": "--catchup-window",
    "jitter": "--jitter",
    "start_time": "--start",
    "end_time": "--end",
    "max_runs": "--max-runs",
}
# The options of `update` by the services' names of the fields they set.
_UPDATE_OPTION_OF = {
    **_PARSE_OPTION_OF,
    "schedule": "--schedule",
    "name": "--rename",
    "params": "--params",
    "queue": "--queue",
    "description": "--description",
    "pause_after_failures": "--pause-after-failures",
}

# What each writing verb needs of an `--as` user: the permissions the API asks for the same
# action (scheduler/permissions.py). Reads and dry runs need none (the user must still be staff).
_DECLARE = (
    ADD_SCHEDULE,
    CHANGE_SCHEDULE,
    ADD_ALERT_RULE,
    CHANGE_ALERT_RULE,
    ADD_ALERT_CHANNEL,
    CHANGE_ALERT_CHANNEL,
)
_NEEDS: dict[str, tuple[str, ...]] = {
    "create": (ADD_SCHEDULE,),
    "update": (CHANGE_SCHEDULE,),
    "enable": (CHANGE_SCHEDULE,),
    "disable": (CHANGE_SCHEDULE,),
    "pause": (CHANGE_SCHEDULE,),
    "resume": (CHANGE_SCHEDULE,),
    "pause-on-failure": (CHANGE_SCHEDULE,),
    "run": (CHANGE_SCHEDULE,),
    "delete": (DELETE_SCHEDULE,),
    "sync": _DECLARE,
    "import": _DECLARE,
    "backfill": (RUN_TASKS,),
    "retry": (RUN_TASKS,),
    "run-task": (RUN_TASKS,),
    "requeue": (RUN_TASKS,),
    "discard": (RUN_TASKS,),
    "clear-history": (DELETE_RESULTS,),
    "alerts add": (ADD_ALERT_RULE,),
    "alerts update": (CHANGE_ALERT_RULE,),
    "alerts remove": (DELETE_ALERT_RULE,),
    "channels add": (ADD_ALERT_CHANNEL,),
    "channels update": (CHANGE_ALERT_CHANNEL,),
    "channels remove": (DELETE_ALERT_CHANNEL,),
    "channels test": (CHANGE_ALERT_CHANNEL,),
    "incidents ack": (MANAGE_ALERTS,),
    "incidents silence": (MANAGE_ALERTS,),
    "incidents resolve": (MANAGE_ALERTS,),
    "revoke": (RUN_TASKS,),
    "queue pause": (CONTROL_WORKERS,),
    "queue resume": (CONTROL_WORKERS,),
    "queue purge": (CONTROL_WORKERS,),
    "worker grow": (CONTROL_WORKERS,),
    "worker shrink": (CONTROL_WORKERS,),
    "worker autoscale": (CONTROL_WORKERS,),
    "worker shutdown": (CONTROL_WORKERS,),
}


def permissions_needed(options: Mapping[str, Any]) -> tuple[str, ...]:
    """The permissions the verb (and its action) of `options` needs of an `--as` user."""
    verb = options["verb"]
    if options.get("dry_run"):
        return ()
    if verb == "clear":
        if not options.get("confirm"):
            return ()  # it only lists what would change
        return (DELETE_SCHEDULE,) if options.get("delete") else (CHANGE_SCHEDULE,)
    if verb == "import" and options.get("prune"):
        return (*_DECLARE, DELETE_SCHEDULE)
    action = options.get(f"{verb}_action")
    return _NEEDS.get(f"{verb} {action}" if action else verb, ())


class Command(
    AlertVerbs, DeadLetterVerbs, BackfillVerbs, ControlVerbs, GroupVerbs, RunVerbs, WorkerVerbs
):
    help = (
        "Manage scheduled tasks: catalog, schedules, runs, history, logs and health; the "
        "schedules of an agent or a tournament; dead letters; workers; alert rules, channels "
        "and incidents. Audited as the OS user, or --as USER."
    )

    # Waits sleep through this, so that tests can drive the clock of `logs --follow`.
    sleep = staticmethod(time.sleep)

    def add_verbs(self, verbs: Verbs) -> None:
        _add_catalog_verbs(verbs)
        _add_create_verb(verbs)
        _add_update_verb(verbs)
        _add_schedule_verbs(verbs)
        add_clear_verb(verbs)
        add_backfill_verbs(verbs)
        add_run_verbs(verbs)
        _add_history_verbs(verbs)
        add_dead_letter_verbs(verbs)
        add_control_verbs(verbs)
        _add_health_verbs(verbs)
        add_worker_verbs(verbs)
        add_alert_verbs(verbs)
        add_to_every_verb(verbs, "--json", action="store_true", help="print JSON")
        add_actor_option(verbs)

    def permissions_needed(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        return permissions_needed(options)

    def refusal(self, exc: Exception) -> str | None:
        if isinstance(exc, ScheduleError | ScheduleNotFound | ScheduleParseError | OwnerNotFound):
            return out.one_line(str(exc))
        if isinstance(
            exc, DEAD_LETTER_REFUSALS + BACKFILL_REFUSALS + WORKER_REFUSALS + CONTROL_REFUSALS
        ):
            return out.one_line(str(exc))
        if isinstance(exc, kombu.exceptions.OperationalError):
            return out.one_line(f"cannot reach the broker: {exc}")
        if isinstance(exc, redis.exceptions.ConnectionError):
            where = describe_redis()
            return out.one_line(f"cannot reach Redis at {where}: {exc}")
        return None

    # --- catalog and parsing ---------------------------------------------------------------------

    def _available(self, options: dict[str, Any]) -> None:
        entries = list(load_catalog())
        if options["json"]:
            self._json([out.entry_as_dict(entry) for entry in entries])
            return
        for entry in entries:
            self._print(f"{entry.name}  (queue {entry.queue}, overlap {entry.overlap})")
            self._print(f"    {entry.description}")
            params = out.schema_summary(entry.schema())
            if not params:
                self._print("    parameters: none")
                continue
            self._print("    parameters:")
            for line in params:
                self._print(f"      {line}")

    def _parse(self, options: dict[str, Any]) -> None:
        tz = options["tz"]
        zone_named(tz)
        now = _moment(options["now"], flag="--now", tz=tz) or timezone.now()
        count = _bounded(options["count"], flag="--count", low=0, high=1000)
        try:
            dry_run = schedule_dry_run(
                schedule=" ".join(options["phrase"]),
                tz=tz,
                now=now,
                count=count,
                task=options["task"],
                overlap=options["overlap"],
                misfire=options["misfire"],
                catchup=options["catchup"],
                catchup_window=options["catchup_window"],
                jitter=options["jitter"],
                start_time=options["start"],
                end_time=options["end"],
                max_runs=options["max_runs"],
            )
        except ScheduleError as exc:
            # The services name their fields; here the options staff typed are named.
            raise CommandError(
                "; ".join(
                    f"{_PARSE_OPTION_OF.get(name, name)}: {' '.join(messages)}"
                    for name, messages in exc.errors.items()
                )
            ) from None
        parsed, preview = dry_run.parsed, dry_run.preview
        if options["json"]:
            self._json(
                {
                    **parsed.as_dict(now=now, count=0),
                    "next_runs": [run.isoformat() for run in preview.runs],
                    "warnings": preview.warnings,
                    "effects": preview.effects,
                    "cutoff": preview.cutoff,
                    "notes": preview.notes,
                }
            )
            return
        self._print(f"Schedule:   {parsed.description}")
        self._print(f"Kind:       {parsed.kind}")
        if parsed.interval is not None:
            every, period = parsed.interval.every, parsed.interval.period
            self._print(f"Every:      {every} {period.removesuffix('s') if every == 1 else period}")
        if parsed.crontab is not None:
            self._print(f"Cron:       {parsed.crontab.expression}")
        if parsed.clocked is not None:
            self._print(f"At:         {out.when(parsed.clocked, tz)}")
        self._print(f"Time zone:  {parsed.timezone}")
        if count:
            ahead = f"Next runs after {out.when(now, tz)}:" if preview.runs else "No runs ahead."
            self._print(ahead)
        for run in preview.runs:
            self._print(f"  {out.when(run, tz)}  ({run:%a})")
        if preview.cutoff:
            self._print(f"Cut-off:    {preview.cutoff}")
        for number, effect in enumerate(preview.effects):
            self._print(f"{'Policies:' if number == 0 else '':<12}{effect}")
        for note in preview.notes:
            self._print(f"Note:       {note}")
        # Last, as before the policies were shown: scripts read the warnings at the end.
        for warning in preview.warnings:
            self._print(f"Warning:    {warning}")

    # --- periodic tasks --------------------------------------------------------------------------

    def _create(self, options: dict[str, Any]) -> None:
        periodic_task = schedule_create(
            name=options["name"],
            task=options["task"],
            schedule=" ".join(options["schedule"]),
            params=params_from_json(options["params"]),
            tz=options["tz"],
            queue=options["queue"],
            description=options["description"],
            overlap=options["overlap"],
            misfire=options["misfire"],
            catchup=options["catchup"],
            catchup_window=options["catchup_window"],
            jitter=options["jitter"],
            # Read by the service (a time without an offset is in --tz), so that its
            # messages name the fields as the API's do.
            start_time=options["start"],
            end_time=options["end"],
            max_runs=options["max_runs"],
            pause_after_failures=options["pause_after_failures"],
            enabled=not options["disabled"],
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        periodic_task = schedule_get(periodic_task.name)
        if options["json"]:
            self._json(_schedule_document(periodic_task))
            return
        state = "enabled" if periodic_task.enabled else "disabled"
        self._print(
            f"Created {periodic_task.name!r} ({state}): {schedule_describe(periodic_task)}; "
            f"task {periodic_task.task} on queue {periodic_task.queue}."
        )
        runs = periodic_task_next_runs(periodic_task, count=1)
        if runs:
            self._print(f"Next run: {out.when(runs[0], _zone_of(periodic_task))}")

    def _list(self, options: dict[str, Any]) -> None:
        rows = []
        now = timezone.now()
        for periodic_task in selectors.periodic_tasks_listed(enabled=options["only"]):
            runs = periodic_task_next_runs(periodic_task, count=1, now=now)
            rows.append((periodic_task, schedule_describe(periodic_task), runs))
        if options["json"]:
            self._json(
                [
                    out.periodic_task_as_dict(task, description=description, next_runs=runs)
                    for task, description, runs in rows
                ]
            )
            return
        if not rows:
            self._print("No periodic tasks.")
            return
        self._print(
            out.table(
                (
                    "NAME",
                    "ENABLED",
                    "TASK",
                    "SCHEDULE",
                    "NEXT RUN",
                    "LAST RUN",
                    "RUNS",
                    "CATCH-UP",
                    "RUNS LEFT",
                    "IN CODE",
                    "PAUSED",
                ),
                (
                    (
                        task.name,
                        out.enabled_label(task),
                        out.task_label(task),
                        description,
                        out.when(runs[0], _zone_of(task)) if runs else None,
                        out.when(task.last_run_at, _zone_of(task)),
                        task.total_run_count,
                        (policies := out.policies_as_dict(task))["catchup_summary"],
                        policies["runs_left"],
                        out.declared_label(task),
                        out.pause_label(task, _zone_of(task)),
                    )
                    for task, description, runs in rows
                ),
            )
        )

    def _show(self, options: dict[str, Any]) -> None:
        periodic_task = schedule_get(options["name"])
        description = schedule_describe(periodic_task)
        runs = periodic_task_next_runs(periodic_task, count=5)
        results = list(selectors.task_results(periodic_task_name=periodic_task.name, limit=10))
        trail = list(selectors.audit_trail(periodic_task.name))
        data = out.periodic_task_as_dict(periodic_task, description=description, next_runs=runs)
        if options["json"]:
            data["last_results"] = [out.result_as_dict(result) for result in results]
            data["audit"] = [out.audit_as_dict(entry) for entry in trail]
            self._json(data)
            return
        tz = data["timezone"]
        written = f"{data['schedule']}  " if data["schedule"] else ""
        for label, value in (
            ("name", periodic_task.name),
            ("task", out.task_label(periodic_task)),
            ("enabled", out.enabled_label(periodic_task)),
            ("paused", out.pause_label(periodic_task, tz)),
            ("pause after", _pause_after_label(data)),
            ("schedule", f"{written}({description})"),
            ("time zone", tz),
            ("params", out.json_document(data["params"]).replace("\n", " ")),
            ("queue", data["queue"]),
            ("overlap", out.overlap_label(periodic_task)),
            ("catch-up", data["catchup_summary"]),
            ("jitter", out.jitter_label(data["jitter"])),
            ("starts", out.when(periodic_task.start_time, tz)),
            ("ends", out.when(periodic_task.expires, tz)),
            ("runs left", data["runs_left"] or "no limit"),
            ("pause", out.pause_after_label(data["pause_after_failures"])),
            ("one-off", "yes" if periodic_task.one_off else "no"),
            ("description", periodic_task.description),
            ("runs so far", periodic_task.total_run_count),
            ("last run", out.when(periodic_task.last_run_at, tz)),
            ("changed", out.when(periodic_task.date_changed, tz)),
        ):
            self._print(f"{label + ':':<13}{value if value not in (None, '') else out.NONE}")
        self._print()
        self._print("Next runs:" if runs else "Next runs: none")
        for run in runs:
            self._print(f"  {out.when(run, tz)}  ({run.astimezone(ZoneInfo(tz)):%a})")
        self._print()
        if results:
            self._print("Last runs:")
            self._print(out.table(out.RESULT_HEADERS, map(out.result_row, results)))
        else:
            self._print("Last runs: none")
        self._print()
        self._print("Audit trail:" if trail else "Audit trail: none")
        for entry in trail:
            who = out.audit_actor(entry) or out.NONE
            self._print(
                f"  {out.when(entry.created_at, tz)}  {entry.action:<8} via {entry.source:<9} "
                f"by {who}  {out.changes_summary(entry.changes)}"
            )

    def _update(self, options: dict[str, Any]) -> None:
        name = options["name"]
        arguments = _update_arguments(options)
        if not arguments:
            raise CommandError(
                "nothing to change: give --schedule, --params, --queue, --enable or --disable, "
                "--tz, --description, --task, --rename or a policy (see `update --help`)"
            )
        before = schedule_get(name)
        snapshot = {"name": before.name, **schedule_snapshot(before, out.options_of(before))}
        try:
            periodic_task = schedule_update(
                name=name,
                **arguments,
                actor=self.actor.user,
                actor_name=self.actor.name,
                source=Source.CLI,
            )
        except ScheduleError as exc:
            # The services name their fields; here the options staff typed are named.
            raise CommandError(said_with_flags(exc, _UPDATE_OPTION_OF)) from None
        periodic_task = schedule_get(periodic_task.name)
        after = {
            "name": periodic_task.name,
            **schedule_snapshot(periodic_task, out.options_of(periodic_task)),
        }
        changed = sorted(changes_between(snapshot, after))
        if options["json"]:
            self._json({**_schedule_document(periodic_task), "changed": changed})
            return
        if not changed:
            self._print(f"{periodic_task.name!r} is unchanged.")
            return
        self._print(f"Updated {periodic_task.name!r}: {', '.join(changed)}.")
        self._print(
            f"Now: {schedule_describe(periodic_task)}; task {periodic_task.task} on queue "
            f"{periodic_task.queue}, {'enabled' if periodic_task.enabled else 'disabled'}."
        )
        runs = periodic_task_next_runs(periodic_task, count=1)
        if runs:
            self._print(f"Next run: {out.when(runs[0], _zone_of(periodic_task))}")

    def _enable(self, options: dict[str, Any]) -> None:
        self._set_enabled(options, enabled=True)

    def _disable(self, options: dict[str, Any]) -> None:
        self._set_enabled(options, enabled=False)

    def _set_enabled(self, options: dict[str, Any], *, enabled: bool) -> None:
        name = options["name"]
        word = "enabled" if enabled else "disabled"
        changed = schedule_get(name).enabled != enabled
        if changed:
            change = schedule_enable if enabled else schedule_disable
            change(name=name, actor=self.actor.user, actor_name=self.actor.name, source=Source.CLI)
        self._done(
            options,
            f"{word.capitalize()} {name!r}." if changed else f"{name!r} is already {word}.",
            {**_schedule_document(schedule_get(name)), "changed": changed},
        )

    def _pause(self, options: dict[str, Any]) -> None:
        owner = owner_given(options)
        if owner is not None:
            self._pause_group(options, owner)
            return
        name = options["name"]
        periodic_task = schedule_pause(
            name=name,
            note=options["note"],
            until=options["until"],
            tz=timezone.get_current_timezone_name(),
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        self._done(
            options,
            f"Paused {name!r}: {out.pause_label(periodic_task, _zone_of(periodic_task))}.",
            _schedule_document(periodic_task),
        )

    def _resume(self, options: dict[str, Any]) -> None:
        owner = owner_given(options)
        if owner is not None:
            self._resume_group(options, owner)
            return
        name = options["name"]
        if schedule_get(name).enabled:
            self._done(
                options,
                f"{name!r} is not paused.",
                {**_schedule_document(schedule_get(name)), "changed": False},
            )
            return
        periodic_task = schedule_resume(
            name=name, actor=self.actor.user, actor_name=self.actor.name, source=Source.CLI
        )
        runs = periodic_task_next_runs(periodic_task, count=1)
        after = f" Next run: {out.when(runs[0], _zone_of(periodic_task))}." if runs else ""
        self._done(
            options,
            f"Resumed {name!r}.{after}",
            {**_schedule_document(periodic_task), "changed": True},
        )

    def _pause_on_failure(self, options: dict[str, Any]) -> None:
        name, count = options["name"], options["count"]
        after = None if count.strip().lower() in ("off", "never", "0") else _failures(count)
        periodic_task = schedule_pause_on_failure(
            name=name,
            after=after,
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        if after is None:
            text = f"{name!r} no longer pauses itself after failed runs."
        else:
            text = f"{name!r} pauses itself after {after} failed runs in a row."
        self._done(options, text, _schedule_document(periodic_task))

    def _delete(self, options: dict[str, Any]) -> None:
        schedule_delete(
            name=options["name"],
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        self._done(
            options, f"Deleted {options['name']!r}.", {"name": options["name"], "deleted": True}
        )

    # --- declared schedules ----------------------------------------------------------------------

    def _sync(self, options: dict[str, Any]) -> None:
        dry_run, force = options["dry_run"], options["force"]
        try:
            declarations = declared_schedules()
            alert_declarations = declared_alerts()
        except DeclarationError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        report = schedules_sync(
            declarations,
            force=force,
            dry_run=dry_run,
            actor=self.actor.user,
            actor_name=self.actor.name,
        )
        # After the schedules: a rule may watch one this sync created.
        alerts = alerts_sync(
            alert_declarations,
            force=force,
            dry_run=dry_run,
            schedules={item.name for item in declarations},
            actor=self.actor.user,
            actor_name=self.actor.name,
        )
        if options["json"]:
            self._json(sync_json(report, dry_run=dry_run, alerts=alerts))
        else:
            for line in sync_lines(report, dry_run=dry_run, alerts=alerts):
                self._print(line)
        failed = len(report.errors) + len(alerts.errors)
        if failed:
            raise CommandError(f"{failed} declaration(s) failed", returncode=2)
        if dry_run and not (report.in_sync and alerts.in_sync):
            changes = len(report.changes) + len(alerts.changes)
            raise CommandError(f"{changes} change(s) to apply", returncode=1)

    def _export(self, options: dict[str, Any]) -> None:
        schedules, left_out = schedules_exported(match=options["match"])
        channels, rules = alerts_exported(match=options["match"])
        document = schedules_document(
            schedules,
            format="json" if options["json"] else options["format"],
            channels=channels,
            rules=rules,
        )
        self.stdout.write(document, ending="")
        for note in left_out:
            self.stderr.write(f"left out: {note}")

    def _import(self, options: dict[str, Any]) -> None:
        source = options["file"]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text()
            read = schedules_read(text, source=source)
        except (OSError, UnicodeDecodeError, ScheduleFileError) as exc:
            raise CommandError(out.one_line(str(exc)), returncode=2) from exc
        report = schedules_import(
            read.schedules,
            prune=options["prune"],
            dry_run=options["dry_run"],
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
            channels=read.channels,
            rules=read.rules,
        )
        if options["json"]:
            self._json(_import_document(report, dry_run=options["dry_run"]))
        for error in report.errors:
            self.stderr.write(error)
        if report.errors:
            raise CommandError(f"{len(report.errors)} error(s): nothing was applied", returncode=2)
        if options["json"]:
            return
        verb = "would be " if options["dry_run"] else ""
        for name in report.created:
            self._print(f"+ {verb}created {name!r}")
        for name, fields in report.updated.items():
            self._print(f"~ {verb}updated {name!r}: {', '.join(fields)}")
        for name in report.deleted:
            self._print(f"- {verb}deleted {name!r}")
        marks = {"create": "+", "update": "~", "disable": "-"}
        done = {"create": "created", "update": "updated", "disable": "disabled"}
        for change in report.alerts:
            if change.action in marks:
                which = f": {', '.join(change.fields)}" if change.action == "update" else ""
                self._print(
                    f"{marks[change.action]} {verb}{done[change.action]} {change.what} "
                    f"{change.name!r}{which}"
                )
        unchanged = [change for change in report.alerts if change.action == "unchanged"]
        self._print(f"{len(report.unchanged) + len(unchanged)} unchanged.")

    # --- runs ------------------------------------------------------------------------------------

    def _run(self, options: dict[str, Any]) -> None:
        timeout = positive_seconds(options["timeout"], flag="--timeout")
        owner = owner_given(options)
        if owner is not None:
            self._run_group(options, owner)
            return
        periodic_task = schedule_get(options["name"])
        task_id = schedule_run_now(
            name=periodic_task.name,
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        queue = periodic_task.queue or "default"
        queued = {
            "task_id": task_id,
            "name": periodic_task.name,
            "task": periodic_task.task,
            "queue": queue,
        }
        if not options["json"]:
            self._print(
                f"Queued {periodic_task.name!r} ({periodic_task.task} on queue {queue}) as "
                f"task {task_id}."
            )
        if not options["wait"]:
            if options["json"]:
                self._json(queued)
            return
        self._show_result(options, queued, self._wait(task_id, timeout=timeout, queue=queue))

    def _test(self, options: dict[str, Any]) -> None:
        timeout = positive_seconds(options["timeout"], flag="--timeout")
        started = time.perf_counter()
        task_id = task_enqueue(task="scheduler.ping")
        self._wait(task_id, timeout=timeout, queue=load_catalog().get("scheduler.ping").queue)
        round_trip_ms = (time.perf_counter() - started) * 1000
        row = selectors.task_result(task_id)
        worker = (out.extended(row).worker if row is not None else None) or "a worker"
        self._done(
            options,
            f"pong from {worker} in {round_trip_ms:.0f} ms (task {task_id})",
            {"task_id": task_id, "worker": worker, "round_trip_ms": round(round_trip_ms, 1)},
        )

    # --- history and logs ------------------------------------------------------------------------

    def _history(self, options: dict[str, Any]) -> None:
        try:
            status = selectors.result_status_named(options["status"]) if options["status"] else None
        except ValueError as exc:
            raise CommandError(f"--status: {exc}") from exc
        results = list(
            selectors.task_results(
                task_name=options["task_name"],
                periodic_task_name=options["periodic_task"],
                status=status,
                since=_moment(
                    options["since"], flag="--since", tz=timezone.get_current_timezone_name()
                ),
                limit=_bounded(options["limit"], flag="--limit", low=1, high=10_000),
            )
        )
        if options["fmt"] == "json" or options["json"]:
            self._json([out.result_as_dict(result) for result in results])
        elif not results:
            self._print("No task results.")
        elif options["fmt"] == "detailed":
            self._print("\n\n".join(out.result_detailed(result) for result in results))
        else:
            self._print(out.table(out.RESULT_HEADERS, map(out.result_row, results)))

    def _clear_history(self, options: dict[str, Any]) -> None:
        if not options["confirm"]:
            raise CommandError(
                "refusing to delete task history without --confirm "
                "(add --older-than DAYS to keep recent runs)"
            )
        days = options["older_than"]
        if days is not None:
            _bounded(days, flag="--older-than", low=0, high=_OLDER_THAN_MAX_DAYS)
        deleted = history_clear(older_than_days=days)
        scope = f" older than {days} days" if days is not None else ""
        self._done(
            options,
            f"Deleted {deleted} stored results and events{scope}.",
            {"deleted": deleted, "older_than_days": days},
        )

    def _logs(self, options: dict[str, Any]) -> None:
        text, level = options["filter"], options["level"]
        if text is not None and len(text) > _FILTER_MAX_CHARS:
            raise CommandError(f"--filter is longer than {_FILTER_MAX_CHARS} characters")
        if level:
            try:
                selectors.event_types_at_least(level)
            except ValueError as exc:
                raise CommandError(f"--level: {exc}") from exc
        lines = _bounded(options["lines"], flag="--lines", low=0, high=100_000)
        if options["json"] and options["follow"]:
            raise CommandError("--json prints one document: not with --follow")
        last_id = selectors.task_event_last_id()
        events = selectors.task_events_tail(lines=lines, text=text, level=level, up_to_id=last_id)
        if options["json"]:
            self._json([out.event_as_dict(event) for event in events])
            return
        for event in events:
            self._print(out.event_line(event))
        if options["follow"]:
            self._follow(
                after_id=last_id,
                text=text,
                level=level,
                interval=positive_seconds(options["interval"], flag="--interval"),
                max_seconds=options["max_seconds"],
            )

    def _follow(
        self,
        *,
        after_id: int,
        text: str | None,
        level: str | None,
        interval: float,
        max_seconds: float | None,
    ) -> None:
        # Ids at or below `after_id` that were committed (and so shown, or passed over) already;
        # a late commit below `after_id` is one not in here.
        events = selectors.task_events(text=text, level=level)
        seen = set(
            events.filter(id__gt=after_id - _LATE_COMMIT_IDS, id__lte=after_id).values_list(
                "id", flat=True
            )
        )
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        self.stdout.flush()
        try:
            while deadline is None or time.monotonic() < deadline:
                self.sleep(interval)
                fresh: list[TaskEvent] = [
                    event
                    for event in events.filter(id__gt=after_id - _LATE_COMMIT_IDS).order_by("id")
                    if event.pk not in seen
                ]
                for event in fresh:
                    self._print(out.event_line(event))
                    seen.add(event.pk)
                    after_id = max(after_id, event.pk)
                if fresh:
                    self.stdout.flush()
                    floor = after_id - _LATE_COMMIT_IDS
                    seen = {pk for pk in seen if pk > floor}
        except KeyboardInterrupt:
            return

    # --- status and health -----------------------------------------------------------------------

    def _status(self, options: dict[str, Any]) -> None:
        window = settings.WORKER_HEALTH_WINDOW
        report, retention = _status_report(window=window)
        if options["json"]:
            self._json(report)
            return
        workers, queues = report["workers"], report["queues"]
        if isinstance(workers, dict):
            self._print(f"Workers:         unknown ({workers['error']})")
        elif workers:
            self._print(f"Workers:         {len(workers)} online ({', '.join(workers)})")
        else:
            self._print(f"Workers:         none answered in the last {window} s")
        self._beat_lines(report["beat"])
        for name, run in sorted((report.get("missed_runs") or {}).items()):
            self._print(
                f"Missed run:      {name}: published {run.get('published_at', '?')}, "
                f"no result (task {run.get('task_id', '?')})"
            )
        counts = report["periodic_tasks"]
        self._print(f"Periodic tasks:  {counts['enabled']} enabled, {counts['disabled']} disabled")
        results = report["results_last_hour"]
        summary = ", ".join(f"{status} {count}" for status, count in results.items())
        self._print(f"Last hour:       {summary or 'no results'}")
        self._retention_lines(retention)
        paused = report["paused_queues"]
        if "error" in queues:
            self._print(f"Queues:          unknown ({queues['error']})")
            if paused:
                self._print(f"Paused queues:   {', '.join(sorted(paused))}")
            return
        self._print("Queues:")
        self._print(
            out.table(
                ("QUEUE", "WAITING", "STATE"),
                (
                    (name, depth, _paused_label(paused[name]) if name in paused else "consuming")
                    for name, depth in queues.items()
                ),
            )
        )

    def _beat_lines(self, beat: dict[str, Any] | None) -> None:
        if beat is None:
            self._print("Beat:            no heartbeat recorded")
        elif "error" in beat:
            self._print(f"Beat:            unknown ({beat['error']})")
        else:
            self._print(
                f"Beat:            last heartbeat {beat['seconds_ago']:g} s ago "
                f"(pid {beat['pid']} on {beat['hostname'] or out.NONE}"
                + (f", leader {beat['leader']}" if beat.get("leader") else "")
                + (f", {beat['entries']} entries" if beat.get("entries") is not None else "")
                + ")"
            )
            standbys = beat.get("standbys") or []
            self._print(
                f"Beat standbys:   {len(standbys)}"
                + (f" ({', '.join(standbys)})" if standbys else "")
            )

    def _retention_lines(self, retention: list[RetentionRow]) -> None:
        next_cleanup = retention[0].next_cleanup if retention else None
        self._print(
            "Retention:       next cleanup "
            + (
                out.when(next_cleanup)
                if next_cleanup
                else "not scheduled (no enabled schedule of scheduler.cleanup_results)"
            )
        )
        self._print(
            out.table(
                ("TABLE", "ROWS", "OLDEST", "KEPT"),
                ((row.label, row.rows_text, out.when(row.oldest), row.kept) for row in retention),
            )
        )

    def _health(self, options: dict[str, Any]) -> None:
        report = full_health_report()
        if options["json"]:
            self._json(report.as_dict())
        else:
            for name, check in report.checks.items():
                self._print(f"{name:<10} {'ok' if check.ok else 'FAIL':<5} {check.detail}")
        if not report.ok:
            failed = [name for name, check in report.checks.items() if not check.ok]
            raise CommandError(f"unhealthy: {', '.join(failed)} failed")


# --- status --------------------------------------------------------------------------------------


def _status_report(*, window: int) -> tuple[dict[str, Any], list[RetentionRow]]:
    """What `status` shows (its JSON document), and the retention rows it was made from.

    A part that Redis cannot give is {"error": ...}: the rest is still worth showing.
    """
    report: dict[str, Any] = {}
    try:
        report["workers"] = sorted(workers_seen_within(window))
    except redis.exceptions.RedisError as exc:
        report["workers"] = {"error": out.one_line(str(exc))}
    report.update(_beat_report())
    report["periodic_tasks"] = selectors.periodic_task_counts()
    report["results_last_hour"] = selectors.task_result_counts_since(
        timezone.now() - timedelta(hours=1)
    )
    retention = retention_overview()
    report["retention"] = {
        "next_cleanup": out.iso(retention[0].next_cleanup) if retention else None,
        "tables": [row.as_dict() for row in retention],
    }
    try:
        report["queues"] = queue_depths()
    except redis.exceptions.RedisError as exc:
        report["queues"] = {"error": out.one_line(str(exc))}
    # Queue name -> its pause: no worker consumes these until they are resumed.
    report["paused_queues"] = {
        name: {
            "paused_at": out.iso(pause.paused_at),
            "paused_by": shown["paused_by"],
            "note": pause.note,
        }
        for name, pause in paused_queues().items()
        for shown in (selectors.queue_pause_shown(pause),)
    }
    return report, retention


def _paused_label(pause: dict[str, Any]) -> str:
    by = f" by {pause['paused_by']}" if pause["paused_by"] else ""
    note = f": {pause['note']}" if pause["note"] else ""
    return f"paused{by}{note}"


def _beat_report() -> dict[str, Any]:
    """`beat` (its last heartbeat and standbys) and, when Redis answered, `missed_runs`."""
    try:
        heartbeat = beat_heartbeat()
    except (redis.exceptions.RedisError, ValueError) as exc:
        return {"beat": {"error": out.one_line(str(exc))}}
    beat = heartbeat and {
        "at": datetime.fromtimestamp(float(heartbeat["at"]), tz=UTC).isoformat(),
        "seconds_ago": round(time.time() - float(heartbeat["at"]), 1),
        "pid": heartbeat.get("pid"),
        "hostname": heartbeat.get("hostname", ""),
        "leader": heartbeat.get("leader") or heartbeat.get("id") or "",
        "entries": heartbeat.get("entries"),
    }
    try:
        standbys = [standby.get("id", "") for standby in beat_standbys()]
        flagged = missed_runs()
    except redis.exceptions.RedisError:
        standbys, flagged = [], {}
    if beat:
        beat["standbys"] = standbys
    return {"beat": beat, "missed_runs": flagged}


# --- verbs and their options ---------------------------------------------------------------------


def _zone_help() -> str:
    return f"IANA time zone (default: {settings.TIME_ZONE})"


def _add_catalog_verbs(verbs: Verbs) -> None:
    """`available` and `parse`."""
    available = verbs.add_parser("available", help="list the tasks that can be scheduled")
    available.add_argument("--json", action="store_true", help="print JSON")

    parse = verbs.add_parser("parse", help="show how a schedule phrase or cron is read")
    parse.add_argument("phrase", nargs="+", help="e.g. 'every monday at 8am', '0 9 * * 1'")
    parse.add_argument("--tz", default=settings.TIME_ZONE, help=_zone_help())
    parse.add_argument("--now", help="ISO 8601 time to count from (default: the clock)")
    parse.add_argument("--count", type=int, default=5, help="how many next runs (default 5)")
    parse.add_argument("--json", action="store_true", help="print JSON")
    # The policies `create` takes, previewed: the runs listed honour them, and they are put in
    # words. Read by the services, as `create` reads them.
    parse.add_argument(
        "--task", help="catalog task: its declared overlap policy is the one 'default' follows"
    )
    _add_policy_arguments(parse)


def _add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    """The policy options of `create`, which `parse` previews."""
    # No argparse choices or types: the service reads the values, so that a wrong one is
    # refused with the message the admin and the API give.
    parser.add_argument(
        "--overlap",
        help=(
            f"when a run is due while the last one runs: {', '.join(OverlapPolicy.values)} "
            "(default: default, the task's policy as the catalog declares it when each run "
            "starts)"
        ),
    )
    parser.add_argument(
        "--catchup",
        help=f"runs missed while beat was down: {', '.join(CatchUp.values)} (default: latest)",
    )
    parser.add_argument(
        "--catchup-window",
        metavar="DURATION",
        help="catch up only runs missed by less than this (seconds, or 30m, 1h, 1d; "
        "default: no limit)",
    )
    parser.add_argument(
        "--misfire",
        help=(
            f"{' or '.join(MisfirePolicy.values)}: the presets of earlier versions, "
            "skip = --catchup none, run_once = --catchup latest with no window"
        ),
    )
    parser.add_argument(
        "--jitter",
        metavar="DURATION",
        help="publish each run up to this long after its due time (0 to 1h; default 0)",
    )
    parser.add_argument(
        "--start", metavar="TIME", help="ISO 8601; no run before it (no offset: in --tz)"
    )
    parser.add_argument(
        "--end", metavar="TIME", help="ISO 8601; no run from then on (no offset: in --tz)"
    )
    parser.add_argument("--max-runs", metavar="N", help="stop after N runs (default: no limit)")


def _add_create_verb(verbs: Verbs) -> None:
    create = verbs.add_parser("create", help="create a periodic task")
    create.add_argument("name")
    create.add_argument("schedule", nargs="+", help="phrase or cron, as `parse` reads it")
    create.add_argument("--task", required=True, help="catalog task (see `available`)")
    create.add_argument("--params", help="parameters as a JSON object")
    create.add_argument("--queue", help=f"one of: {', '.join(QUEUES)} (default: the task's)")
    create.add_argument("--tz", default=settings.TIME_ZONE, help=_zone_help())
    create.add_argument("--description", default="")
    _add_policy_arguments(create)
    create.add_argument(
        "--pause-after-failures", metavar="N", help="pause after N failed runs in a row"
    )
    create.add_argument("--disabled", action="store_true", help="create it disabled")


def _add_update_verb(verbs: Verbs) -> None:
    update = verbs.add_parser(
        "update",
        help="change the options given of a periodic task (the others stay as they are), "
        "checked as the admin and the API check them",
        description="Only the options given change (the defaults below are create's). An empty "
        "value ('') clears a limit: --catchup-window, --start, --end, --max-runs, "
        "--pause-after-failures. A bad value exits 1 naming the option; nothing changes.",
    )
    update.add_argument("name")
    update.add_argument("--schedule", metavar="PHRASE", help="phrase or cron, as `parse` reads it")
    update.add_argument(
        "--tz",
        help="IANA time zone the schedule is read in (default: its own; given alone, its "
        "schedule is read again in it)",
    )
    update.add_argument("--task", help="another catalog task (give its --params too)")
    update.add_argument("--params", help="parameters as a JSON object (replace the old ones)")
    update.add_argument("--queue", help=f"one of: {', '.join(QUEUES)}")
    update.add_argument("--description")
    update.add_argument("--rename", metavar="NEW_NAME", help="a new name")
    state = update.add_mutually_exclusive_group()
    state.add_argument("--enable", dest="enabled", action="store_const", const=True)
    state.add_argument("--disable", dest="enabled", action="store_const", const=False)
    _add_policy_arguments(update)
    update.add_argument(
        "--pause-after-failures",
        metavar="N",
        help="pause after N failed runs in a row ('' for never)",
    )


def _add_schedule_verbs(verbs: Verbs) -> None:
    """`list`, `show`, `enable`, `disable`, `pause`, `resume`, `pause-on-failure`, `delete`
    and `run`."""
    listing = verbs.add_parser("list", help="list periodic tasks")
    which = listing.add_mutually_exclusive_group()
    which.add_argument("--enabled", dest="only", action="store_const", const=True)
    which.add_argument("--disabled", dest="only", action="store_const", const=False)
    listing.add_argument("--json", action="store_true", help="print JSON")

    show = verbs.add_parser("show", help="a periodic task: fields, next runs, runs, audit")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print JSON")

    for verb, what in (
        ("enable", "enable"),
        ("disable", "disable"),
        ("delete", "delete"),
    ):
        verbs.add_parser(verb, help=f"{what} a periodic task").add_argument("name")

    pause = verbs.add_parser(
        "pause",
        help="pause a periodic task, or all of an agent's or a tournament's, saying why and "
        "until when (shown wherever it is)",
    )
    pause.add_argument("name", nargs="?", help="the periodic task (or --agent, --tournament)")
    add_owner_arguments(pause, what="pause all")
    pause.add_argument("--note", default="", help="why it is paused")
    pause.add_argument(
        "--until",
        help=f"{UNTIL_HELP} (a time without an offset is read in --tz)",
    )
    resume = verbs.add_parser(
        "resume",
        help="resume a paused periodic task, or all of an agent's or a tournament's (the runs "
        "they missed are not made)",
    )
    resume.add_argument("name", nargs="?", help="the periodic task (or --agent, --tournament)")
    add_owner_arguments(resume, what="resume all")
    on_failure = verbs.add_parser(
        "pause-on-failure",
        help="pause a periodic task by itself after N failed runs in a row ('off': never)",
    )
    on_failure.add_argument("name")
    on_failure.add_argument("count", help=f"1 to {PAUSE_AFTER_MAX}, or off")

    sync = verbs.add_parser(
        "sync",
        help="make the periodic tasks, alert channels and alert rules match what code declares "
        "(<app>/upkeep.py, CELERY_BEAT_SCHEDULE); exit code 0 in sync, 1 changes (with "
        "--dry-run), 2 errors",
    )
    sync.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    sync.add_argument(
        "--force", action="store_true", help="also overwrite the fields staff changed (drift)"
    )
    sync.add_argument("--json", action="store_true", help="print JSON")

    export = verbs.add_parser(
        "export",
        help="write the schedules, alert channels and alert rules as a file (the shape of a "
        "declaration) to stdout",
    )
    export.add_argument("--format", choices=("yaml", "json"), default="yaml")
    export.add_argument("--json", action="store_true", help="as --format json")
    export.add_argument("--match", metavar="PATTERN", help="only names matching ('agents: *')")
    load = verbs.add_parser(
        "import",
        help="apply a file of schedules (as export writes it): all of it, or nothing on an error",
    )
    load.add_argument("file", help="the YAML or JSON file ('-': stdin)")
    load.add_argument(
        "--dry-run", action="store_true", help="say what would change, change nothing"
    )
    load.add_argument(
        "--prune",
        action="store_true",
        help="also delete the periodic tasks, and disable the alert channels and rules, the file "
        "does not name (a section the file does not have is left alone)",
    )

    run = verbs.add_parser(
        "run",
        help="run a periodic task now, outside its schedule, or all of an agent's or a "
        "tournament's",
    )
    run.add_argument("name", nargs="?", help="the periodic task (or --agent, --tournament)")
    add_owner_arguments(run, what="run all")
    run.add_argument("--wait", action="store_true", help="wait for the result and print it")
    run.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (30)")


def _add_history_verbs(verbs: Verbs) -> None:
    """`history`, `clear-history` and `logs`."""
    history = verbs.add_parser("history", help="stored task results, newest first")
    history.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    history.add_argument("--task-name", help="catalog task name, e.g. scheduler.ping")
    history.add_argument("--periodic-task", help="name of the periodic task that sent it")
    history.add_argument("--status", help="failed, success, pending, started, retry, ...")
    history.add_argument("--since", help="ISO 8601 date or time (naive: the --tz zone)")
    history.add_argument(
        "--format", choices=("table", "detailed", "json"), default="table", dest="fmt"
    )
    history.add_argument("--json", action="store_true", help="as --format json")

    clear = verbs.add_parser("clear-history", help="delete stored results and events")
    clear.add_argument("--confirm", action="store_true", help="required: yes, delete")
    clear.add_argument("--older-than", type=int, metavar="DAYS", help="keep the last DAYS")

    logs = verbs.add_parser("logs", help="the task and schedule event log")
    logs.add_argument("--follow", "-f", action="store_true", help="print new events (Ctrl-C)")
    logs.add_argument(
        "--filter",
        metavar="TEXT",
        help="only lines containing TEXT (any case), or events of the types it names: "
        "'task.failed,incident.*', 'report.*', 'task.completed'",
    )
    logs.add_argument("--level", help="DEBUG, INFO, WARNING or ERROR: that or worse")
    logs.add_argument("--lines", "-n", type=int, default=50, help="how many (default 50)")
    # Bounds --follow for tests and scripts; --interval sets its polling period.
    logs.add_argument("--max-seconds", type=float, help=argparse.SUPPRESS)
    logs.add_argument("--interval", type=float, default=_FOLLOW_SECONDS, help=argparse.SUPPRESS)


def _add_health_verbs(verbs: Verbs) -> None:
    """`status`, `health` and `test`."""
    status = verbs.add_parser("status", help="workers, beat, schedules, results, queues")
    status.add_argument("--json", action="store_true", help="print JSON")

    health = verbs.add_parser("health", help="health checks; exit 1 when unhealthy")
    health.add_argument("--json", action="store_true", help="print JSON")

    test = verbs.add_parser("test", help="round trip a ping through a worker")
    test.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (10)")


# --- argument values -----------------------------------------------------------------------------


def _moment(text: str | None, *, flag: str, tz: str) -> datetime | None:
    """An ISO 8601 date or time; a naive one is read in `tz`."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"{flag} {text!r} is not an ISO 8601 date or time "
            "(e.g. 2025-01-15 or 2025-01-15T09:00:00+00:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone_named(tz))
    try:
        moment.astimezone(UTC)  # as the database and the parser will read it
    except OverflowError:
        raise CommandError(
            f"{flag} {text!r} is outside the calendar once in UTC (years 1 to 9999)"
        ) from None
    return moment


def _failures(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise CommandError(
            f"count {text!r} is not a number of failed runs (1 to {PAUSE_AFTER_MAX}) nor off"
        ) from None


def _pause_after_label(data: dict[str, Any]) -> str:
    after = data["pause_after_failures"]
    if after is None:
        return ""
    return f"{after} failed runs in a row ({data['failure_streak']} so far)"


def _bounded(value: int, *, flag: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise CommandError(f"{flag} {value} is out of range {low}-{high}")
    return value


def _schedule_document(periodic_task: Any, *, count: int = 5) -> dict[str, Any]:
    """A periodic task as `show --json` gives it (without its runs and audit trail)."""
    return out.periodic_task_as_dict(
        periodic_task,
        description=schedule_describe(periodic_task),
        next_runs=periodic_task_next_runs(periodic_task, count=count),
    )


# `update`'s options whose value None means "not given", by schedule_update's argument.
_UPDATE_ARGUMENTS = {
    "schedule": "schedule",
    "tz": "tz",
    "task": "task",
    "description": "description",
    "rename": "new_name",
    "queue": "queue",
    "enabled": "enabled",
    "overlap": "overlap",
    "misfire": "misfire",
    "catchup": "catchup",
    "catchup_window": "catchup_window",
    "jitter": "jitter",
    "start": "start_time",
    "end": "end_time",
    "max_runs": "max_runs",
    "pause_after_failures": "pause_after_failures",
}


def _update_arguments(options: Mapping[str, Any]) -> dict[str, Any]:
    """schedule_update's arguments for the options given ('' clears a limit, as in the API)."""
    arguments = {
        argument: options[option]
        for option, argument in _UPDATE_ARGUMENTS.items()
        if options[option] is not None
    }
    if options["params"] is not None:
        try:
            arguments["params"] = params_from_json(options["params"])
        except ScheduleError as exc:
            raise CommandError(said_with_flags(exc, _UPDATE_OPTION_OF)) from None
    return arguments


def _import_document(report: Any, *, dry_run: bool) -> dict[str, Any]:
    return {
        "dry_run": dry_run,
        "applied": report.applied,
        "created": report.created,
        "updated": report.updated,
        "deleted": report.deleted,
        "unchanged": report.unchanged,
        "alerts": [
            {
                "what": change.what,
                "name": change.name,
                "action": change.action,
                "fields": list(change.fields),
            }
            for change in report.alerts
        ],
        "errors": report.errors,
    }


def _zone_of(periodic_task: Any) -> str:
    options = out.options_of(periodic_task)
    return options.timezone if options is not None else "UTC"
