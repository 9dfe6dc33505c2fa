"""The scheduler's own periodic upkeep and alerting, declared in code: `manage.py scheduler sync`
creates it on every deployment (scheduler/schedules/declared.py and declared_alerts.py explain
declarations)."""

from __future__ import annotations

from scheduler.schedules import DeclaredChannel, DeclaredRule, DeclaredSchedule
from scheduler.services.retention import CLEANUP_SCHEDULE_NAME

HEALTH_CHECK_NAME = "system: health check"
BACKUP_NAME = "system: back up the database"
LOG_CLEANUP_NAME = "system: clean up log files"

SCHEDULES = [
    # As migration 0004 first created it, so that a deployment migrated before declarations
    # existed is in sync.
    DeclaredSchedule(
        name=CLEANUP_SCHEDULE_NAME,
        task="scheduler.cleanup_results",
        schedule="every day at 3:30",
        queue="maintenance",
        description=(
            "Deletes what the history keeps no longer: task results, events, audit entries and "
            "ended tournaments' rounds older than their retention settings (*_RETENTION_DAYS)."
        ),
    ),
    # The seeds' health check every 5 minutes: a failed run is an unhealthy system in history.
    DeclaredSchedule(
        name=HEALTH_CHECK_NAME,
        task="scheduler.health_check",
        schedule="every 5 minutes",
        description="Database, Redis, workers and beat: a failure names what is down.",
    ),
    DeclaredSchedule(
        name=BACKUP_NAME,
        task="scheduler.backup_database",
        schedule="every day at 2:30",
        description="A verified copy of the database in BACKUP_DIR; the newest BACKUP_KEEP kept.",
    ),
    DeclaredSchedule(
        name=LOG_CLEANUP_NAME,
        task="scheduler.cleanup_logs",
        schedule="every day at 4:00",
        description="Log files in LOG_DIR not written for LOG_RETENTION_DAYS days deleted.",
    ),
]

SIGNAL_CHANNEL_NAME = "signal"
BEAT_NO_LEADER_RULE_NAME = "beat has no leader"

# Harmless in every deployment: the "signal" kind tells code in this project (the
# alert_notification signal) and sends nothing out. A deployment adds its own channels to the
# rule in the admin (kept as drift) or declares its own.
CHANNELS = [DeclaredChannel(name=SIGNAL_CHANNEL_NAME, kind="signal")]

ALERT_RULES = [
    DeclaredRule(
        name=BEAT_NO_LEADER_RULE_NAME,
        trigger="beat_no_leader",
        duration=120,
        channels=(SIGNAL_CHANNEL_NAME,),
        description="No beat has led for 2 minutes: nothing scheduled is being published.",
    ),
]
