"""Database backups: SQLite through its online backup API, PostgreSQL through `pg_dump`.

A backup is written under a temporary name, verified readable, and only then renamed into
place and allowed to push the oldest backups out of the retention window: a failed or
half-written backup never replaces a good one.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connections
from django.db.backends.postgresql.client import DatabaseClient as PostgresClient

# A backup's name: its kind of file and when it was taken, so names sort oldest first.
_SUFFIXES = {"sqlite": ".sqlite3", "postgresql": ".pgdump"}
_BACKUP_NAME = re.compile(r"^db-\d{8}T\d{6}\d{6}Z\.(sqlite3|pgdump)$")
_PARTIAL = ".partial"
# The copy and its check together stay under the maintenance queue's soft limit (870 s).
BACKUP_TIMEOUT = 600
PG_RESTORE_LIST_TIMEOUT = 120


class BackupError(RuntimeError):
    pass


@dataclass(frozen=True)
class Backup:
    path: Path
    vendor: str
    size: int
    duration: float
    tables: int
    removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "name": self.path.name,
            "vendor": self.vendor,
            "size": self.size,
            "duration": self.duration,
            "tables": self.tables,
            "removed": self.removed,
        }


def database_backup(
    *, directory: Path | None = None, keep: int | None = None, using: str = "default"
) -> Backup:
    """Back up the database into `directory` (BACKUP_DIR), keeping the newest `keep` backups."""
    directory = Path(settings.BACKUP_DIR if directory is None else directory)
    keep = settings.BACKUP_KEEP if keep is None else keep
    if keep < 1:
        raise BackupError("keep must be 1 or more")
    connection = connections[using]
    vendor = connection.vendor
    if vendor not in _SUFFIXES:
        raise BackupError(f"cannot back up a {vendor} database (SQLite and PostgreSQL only)")
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = directory / f"db-{stamp}{_SUFFIXES[vendor]}"
    partial = final.with_name(final.name + _PARTIAL)
    started = time.monotonic()
    try:
        if vendor == "sqlite":
            _backup_sqlite(connection, partial)
        else:
            _backup_postgresql(connection.settings_dict, partial)
        tables = backup_verify(partial, vendor=vendor)
        partial.rename(final)
    finally:
        partial.unlink(missing_ok=True)
    duration = round(time.monotonic() - started, 3)
    removed = prune_backups(directory, keep=keep)
    return Backup(
        path=final,
        vendor=vendor,
        size=final.stat().st_size,
        duration=duration,
        tables=tables,
        removed=removed,
    )


def backups_in(directory: Path) -> list[Path]:
    """This project's backups in `directory`, oldest first; other files are not ours to touch."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and _BACKUP_NAME.match(p.name))


def prune_backups(directory: Path, *, keep: int) -> list[str]:
    """Delete all but the newest `keep` backups; the names deleted."""
    backups = backups_in(directory)
    doomed = backups[: max(len(backups) - keep, 0)]
    for path in doomed:
        path.unlink(missing_ok=True)
    return [path.name for path in doomed]


def backup_verify(path: Path, *, vendor: str | None = None) -> int:
    """How many tables the backup at `path` holds; BackupError when it cannot be read back."""
    if vendor is None:
        vendor = next((v for v, suffix in _SUFFIXES.items() if path.suffix == suffix), "")
    if vendor == "sqlite":
        return _verify_sqlite(path)
    if vendor == "postgresql":
        return _verify_pg_dump(path)
    raise BackupError(f"{path.name} is not a backup this project writes")


def _backup_sqlite(connection: Any, target_path: Path) -> None:
    name = str(connection.settings_dict["NAME"])
    if name == ":memory:" or name.startswith("file::memory:"):
        raise BackupError("the database is in memory: there is no file to back up")
    # A connection of its own rather than Django's: inside a write transaction on Django's,
    # SQLite would answer "locked" to every step and the backup would wait for ever. Under
    # WAL a separate reader sees the last committed state without blocking any writer.
    source = sqlite3.connect(f"file:{quote(name)}?mode=ro", uri=True, timeout=20)
    target = sqlite3.connect(target_path)
    deadline = time.monotonic() + BACKUP_TIMEOUT

    def give_up_after_deadline(status: int, remaining: int, total: int) -> None:
        if time.monotonic() > deadline:
            raise BackupError(f"the SQLite backup did not finish within {BACKUP_TIMEOUT} s")

    try:
        # All pages in one step: copying in steps would restart whenever another process
        # writes, and a busy database could then never finish.
        source.backup(target, progress=give_up_after_deadline)
        # The source runs in WAL mode; a backup should be one self-contained file.
        target.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as exc:
        raise BackupError(f"the SQLite backup failed: {exc}") from exc
    finally:
        target.close()
        source.close()


def _verify_sqlite(path: Path) -> int:
    uri = f"file:{quote(str(path))}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as backup:
            result = [row[0] for row in backup.execute("PRAGMA integrity_check")]
            if result != ["ok"]:
                raise BackupError(f"the backup failed its integrity check: {'; '.join(result)}")
            (tables,) = backup.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()
    except sqlite3.Error as exc:
        raise BackupError(f"the backup cannot be read: {exc}") from exc
    if not tables:
        raise BackupError("the backup holds no tables")
    return int(tables)


def _backup_postgresql(settings_dict: dict[str, Any], target_path: Path) -> None:
    # Django's psql command line knows every connection setting (host, port, user, service,
    # SSL files); pg_dump takes the same options. The password goes in the environment,
    # never on the command line, where every process on the machine could read it.
    args, extra_env = PostgresClient.settings_to_cmd_args_env(
        settings_dict, ["--format=custom", "--no-password", f"--file={target_path}"]
    )
    argv = ["pg_dump", *args[1:]]
    _run(argv, env={**os.environ, **(extra_env or {})}, timeout=BACKUP_TIMEOUT, what="pg_dump")
    if not target_path.is_file() or target_path.stat().st_size == 0:
        raise BackupError("pg_dump wrote no file")


def _verify_pg_dump(path: Path) -> int:
    listing = _run(
        ["pg_restore", "--list", str(path)],
        env=None,
        timeout=PG_RESTORE_LIST_TIMEOUT,
        what="pg_restore --list",
    )
    # Entries read "<id>; <oid> <oid> TABLE <schema> <name> <owner>"; ";" starts a comment.
    tables = sum(
        1
        for line in listing.splitlines()
        if not line.startswith(";") and " TABLE " in line and " TABLE DATA " not in line
    )
    if not tables:
        raise BackupError("the dump holds no tables")
    return tables


def _run(argv: list[str], *, env: dict[str, str] | None, timeout: float, what: str) -> str:
    try:
        completed = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise BackupError(f"{argv[0]} is not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{what} did not finish within {timeout:g} s") from exc
    if completed.returncode != 0:
        detail = completed.stderr.strip()[-1000:] or f"exit code {completed.returncode}"
        raise BackupError(f"{what} failed: {detail}")
    return completed.stdout
