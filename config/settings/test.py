"""Settings for the test suite: base settings plus what makes tests fast and isolated.

Values that worker processes started by the tests must share (the Redis URL, the key prefix)
are put into the environment before the base settings read it, so child processes inherit them.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
# The tests (and the processes they start, which inherit this environment) talk plain HTTP.
for _insecure in ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT"):
    os.environ.setdefault(_insecure, "false")
os.environ.setdefault("SECURE_HSTS_SECONDS", "0")
# Files of this run (embedded Redis socket, SQLite test database) live in one short path:
# unix socket paths are limited to 107 bytes.
if "TEST_RUN_DIR" not in os.environ:
    os.environ["TEST_RUN_DIR"] = tempfile.mkdtemp(prefix="agent-scheduler-test-")
    os.environ["TEST_RUN_DIR_OWNER"] = str(os.getpid())  # removed by this process at the end
TEST_RUN_DIR = Path(os.environ["TEST_RUN_DIR"])
# No REDIS_URL: the test session starts its own embedded Redis (see tests/conftest.py).
TEST_EMBEDDED_REDIS = "REDIS_URL" not in os.environ or os.environ.get("TEST_EMBEDDED_REDIS") == "1"
if TEST_EMBEDDED_REDIS:
    os.environ["TEST_EMBEDDED_REDIS"] = "1"
    os.environ["REDIS_URL"] = f"unix://{TEST_RUN_DIR / 'redis.sock'}"
# Every run owns its keys on a shared Redis; the session fixture deletes them at the end.
os.environ.setdefault("REDIS_KEY_PREFIX", f"test-{uuid.uuid4().hex[:8]}:")

from config.settings.base import *  # noqa: E402,F403
from config.settings.base import DATABASES  # noqa: E402

# Worker processes started by the integration fixture must see the test database, so SQLite
# tests use a file rather than Django's default in-memory database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(TEST_RUN_DIR / "test.sqlite3")}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = TEST_RUN_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# Threads the tests start (async tests, the browser test's helpers) must not leave connections
# open past their use: PostgreSQL refuses to drop a test database with sessions left on it.
DATABASES["default"]["CONN_MAX_AGE"] = 0
# Each test reads the heatmap afresh: tests write schedules in bulk (no change marker moves) and
# under a frozen clock (the marker stays put), and one process runs them all.
DASHBOARD_UPCOMING_REUSE = 0.0
