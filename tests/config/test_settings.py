"""Settings are read from the environment; each case loads them in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import BASE_DIR, run_manage

_PRINT_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
db = settings.DATABASES["default"]
print(json.dumps({
    "debug": settings.DEBUG,
    "engine": db["ENGINE"],
    "name": str(db["NAME"]),
    "options": db.get("OPTIONS", {}),
    "redis_url": settings.REDIS_URL,
    "broker_url": settings.CELERY_BROKER_URL,
    "channel_layer_url": settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0].get("address"),
    "channel_layer_host": settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0],
    "transport_options": {
        key: value for key, value in settings.CELERY_BROKER_TRANSPORT_OPTIONS.items()
        if key in ("master_name", "sentinel_kwargs")
    },
    "embedded_redis": settings.EMBEDDED_REDIS,
    "broker_transport": getattr(settings, "CELERY_BROKER_TRANSPORT", None),
    "result_backend": settings.CELERY_RESULT_BACKEND,
    "celery_enabled": settings.CELERY_ENABLED,
    "eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "concurrency": settings.CELERY_WORKER_CONCURRENCY,
    "max_tasks_per_child": settings.CELERY_WORKER_MAX_TASKS_PER_CHILD,
    "time_zone": settings.TIME_ZONE,
    "allowed_hosts": settings.ALLOWED_HOSTS,
}))
"""

# Variables the settings read; each case starts from none of them.
_SETTINGS_VARIABLES = {
    "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL",
    "CHANNEL_LAYER_URL", "CELERY_RESULT_BACKEND", "CELERY_ENABLED", "CELERY_EAGER",
    "CELERY_CONCURRENCY", "CELERY_MAX_TASKS_PER_CHILD", "TIME_ZONE", "REDIS_KEY_PREFIX",
    "DJANGO_SETTINGS_MODULE", "ENV_FILE", "VAR_DIR", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER",
}  # fmt: skip


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SETTINGS_VARIABLES}
    env["ENV_FILE"] = str(tmp_path / "absent.env")
    env["VAR_DIR"] = str(tmp_path / "var")
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.base"
    env.update(values)
    return env


def _load(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PRINT_SETTINGS],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _settings(env: dict[str, str]) -> dict:
    result = _load(env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_it_defaults_to_sqlite_under_var_and_redis_everywhere(tmp_path):
    values = _settings(_env(tmp_path, SECRET_KEY="s"))

    assert values["debug"] is False
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"] == str(tmp_path / "var" / "db.sqlite3")
    assert values["options"]["transaction_mode"] == "IMMEDIATE"
    socket = tmp_path / "var" / "run" / "redis.sock"
    assert values["redis_url"] == f"unix://{socket}"
    assert values["broker_url"] == f"redis+socket://{socket}?virtual_host=0"
    assert values["broker_transport"] is None  # the URL names kombu's (broker_transport.py)
    assert values["channel_layer_url"] == f"unix://{socket}"
    assert values["result_backend"] == "scheduler.result_backend.DatabaseBackend"
    assert values["celery_enabled"] is True
    assert values["eager"] is False
    assert values["time_zone"] == "UTC"


def test_it_derives_broker_and_channel_layer_from_redis_url(tmp_path):
    values = _settings(_env(tmp_path, SECRET_KEY="s", REDIS_URL="redis://10.0.0.5:6380/3"))

    assert values["broker_url"] == "redis://10.0.0.5:6380/3"
    # Kombu's Redis transport with one client per channel (scheduler/core/broker_transport.py).
    assert values["broker_transport"] == "scheduler.core.broker_transport:RedisTransport"
    assert values["channel_layer_url"] == "redis://10.0.0.5:6380/3"


def test_a_tls_broker_keeps_kombus_transport_which_turns_tls_on(tmp_path):
    values = _settings(_env(tmp_path, SECRET_KEY="s", REDIS_URL="rediss://10.0.0.5:6380/3"))

    assert values["broker_url"] == "rediss://10.0.0.5:6380/3"
    assert values["broker_transport"] is None


def test_sentinels_give_every_redis_use_the_master_they_name(tmp_path):
    values = _settings(
        _env(
            tmp_path,
            SECRET_KEY="s",
            REDIS_SENTINELS="10.0.0.7:26379, 10.0.0.8:26379,10.0.0.9:26380",
            REDIS_SENTINEL_MASTER="scheduler",
            REDIS_URL="redis://:pw@ignored/2",
        )
    )

    assert values["embedded_redis"] is False
    assert values["broker_url"] == (
        "sentinel://:pw@10.0.0.7:26379/2;sentinel://:pw@10.0.0.8:26379/2;"
        "sentinel://:pw@10.0.0.9:26380/2"
    )
    # Kombu's sentinel transport, mended (scheduler/core/broker_transport.py).
    assert values["broker_transport"] == "scheduler.core.broker_transport:SentinelTransport"
    assert values["transport_options"] == {
        "master_name": "scheduler",
        "sentinel_kwargs": {"socket_timeout": 2},
    }
    host = values["channel_layer_host"]
    assert host["sentinels"] == [["10.0.0.7", 26379], ["10.0.0.8", 26379], ["10.0.0.9", 26380]]
    assert (host["master_name"], host["db"], host["password"]) == ("scheduler", 2, "pw")


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"REDIS_SENTINELS": "10.0.0.7:26379"},
            "REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is not",
        ),
        (
            {"REDIS_SENTINELS": "10.0.0.7", "REDIS_SENTINEL_MASTER": "m"},
            "REDIS_SENTINELS: '10.0.0.7' is not host:port",
        ),
        (
            {"REDIS_SENTINELS": "10.0.0.7:sentinel", "REDIS_SENTINEL_MASTER": "m"},
            "REDIS_SENTINELS: '10.0.0.7:sentinel' has no port number",
        ),
    ],
)
def test_a_wrong_sentinel_setting_is_refused_naming_it(tmp_path, variables, message):
    result = _load(_env(tmp_path, SECRET_KEY="s", **variables))

    assert result.returncode != 0
    assert message in result.stderr


def test_it_lets_each_url_be_set_on_its_own(tmp_path):
    values = _settings(
        _env(
            tmp_path,
            SECRET_KEY="s",
            REDIS_URL="redis://a:6379/0",
            CELERY_BROKER_URL="redis://b:6379/1",
            CHANNEL_LAYER_URL="redis://c:6379/2",
            CELERY_RESULT_BACKEND="redis://d:6379/3",
        )
    )

    assert values["redis_url"] == "redis://a:6379/0"
    assert values["broker_url"] == "redis://b:6379/1"
    assert values["channel_layer_url"] == "redis://c:6379/2"
    assert values["result_backend"] == "redis://d:6379/3"


@pytest.mark.parametrize(
    ("variable", "raw", "key", "expected"),
    [
        ("DEBUG", "true", "debug", True),
        ("CELERY_ENABLED", "false", "celery_enabled", False),
        ("CELERY_EAGER", "true", "eager", True),
        ("CELERY_CONCURRENCY", "6", "concurrency", 6),
        ("CELERY_MAX_TASKS_PER_CHILD", "50", "max_tasks_per_child", 50),
        ("TIME_ZONE", "Europe/London", "time_zone", "Europe/London"),
        ("ALLOWED_HOSTS", "a.example,b.example", "allowed_hosts", ["a.example", "b.example"]),
    ],
)
def test_it_reads_each_variable(tmp_path, variable, raw, key, expected):
    values = _settings(_env(tmp_path, SECRET_KEY="s", **{variable: raw}))

    assert values[key] == expected


def test_it_reads_postgres_urls(tmp_path):
    values = _settings(
        _env(tmp_path, SECRET_KEY="s", DATABASE_URL="postgres://u:p@db.internal:5433/sched")
    )

    assert values["engine"] == "django.db.backends.postgresql"
    assert values["name"] == "sched"


def test_it_reads_a_dotenv_file_without_overriding_the_environment(tmp_path):
    env_file = tmp_path / "custom.env"
    env_file.write_text("SECRET_KEY=from-file\nTIME_ZONE=Asia/Tokyo\nCELERY_CONCURRENCY=9\n")
    env = _env(tmp_path, CELERY_CONCURRENCY="3")
    env["ENV_FILE"] = str(env_file)

    values = _settings(env)

    assert values["time_zone"] == "Asia/Tokyo"
    assert values["concurrency"] == 3


@pytest.mark.parametrize(
    "command",
    [("check",), ("makemigrations", "--check", "--dry-run"), ("scheduler", "list")],
)
def test_it_fails_loudly_naming_a_missing_secret_key_in_production(tmp_path, command):
    result = run_manage(*command, env=_env(tmp_path))

    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Configuration error: SECRET_KEY is required when DEBUG is false: "
        "set the SECRET_KEY environment variable"
    ]


def test_it_allows_no_secret_key_in_debug(tmp_path):
    values = _settings(_env(tmp_path, DEBUG="true"))

    assert values["debug"] is True


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("notaurl", "DATABASE_URL"),
        ("mysqlx://u@h/db", "DATABASE_URL"),
        ("postgres://u@h:5432/", "DATABASE_URL names no database"),
        ("postgres://u@h:notaport/db", "DATABASE_URL"),
    ],
)
def test_it_rejects_a_bad_database_url_in_one_line(tmp_path, url, message):
    result = run_manage("check", env=_env(tmp_path, SECRET_KEY="s", DATABASE_URL=url))

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Configuration error: ")
    assert message in lines[0]
