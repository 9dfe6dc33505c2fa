"""`manage.py check --deploy` passes with production settings taken from the environment alone.

Production differs from development only by environment variables (config/settings/base.py):
DEBUG=false, SECRET_KEY and ALLOWED_HOSTS are enough; HTTPS-only is the default (issue 17).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from tests.processes import run_manage

pytestmark = pytest.mark.security


def production_environment(var_dir: Path, **overrides: str) -> dict[str, str]:
    """A production environment, and nothing of the test session's (no .env file either)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(var_dir)),
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "ENV_FILE": str(var_dir / "no.env"),
        "VAR_DIR": str(var_dir),
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "scheduler.example.com",
    }
    env.update(overrides)
    return env


def test_the_deploy_checks_pass_behind_a_tls_proxy_too(tmp_path):
    env = production_environment(tmp_path, SECURE_PROXY_SSL_HEADER="true")

    process = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert process.returncode == 0, process.stdout + process.stderr


def test_the_deploy_checks_pass_with_debug_off_a_secret_key_and_allowed_hosts_only(tmp_path):
    process = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", env=production_environment(tmp_path)
    )

    assert process.returncode == 0, process.stdout + process.stderr
    assert "System check identified no issues" in process.stdout


@pytest.mark.parametrize(
    ("variable", "value", "check"),
    [
        ("SESSION_COOKIE_SECURE", "false", "security.W012"),
        ("SECURE_HSTS_SECONDS", "0", "security.W004"),
        ("DEBUG", "true", "security.W018"),
        ("SECRET_KEY", "short", "security.W009"),
    ],
)
def test_the_deploy_checks_fail_when_production_leaves_one_out(tmp_path, variable, value, check):
    env = production_environment(tmp_path, **{variable: value})

    process = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert process.returncode != 0
    assert check in process.stdout + process.stderr
