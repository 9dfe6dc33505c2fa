"""Log files kept small and within LOG_RETENTION_DAYS: the seeds' `cleanup_logs`.

In LOG_DIR (the stack's logs): a `*.log` larger than LOG_ROTATE_BYTES is rotated the way
logrotate's `copytruncate` does it (copied to `<name>.<UTC time>`, then emptied in place, so
the process writing it keeps its file open); then every regular file not written for
LOG_RETENTION_DAYS is deleted. A file still written to is recent, so it stays; subfolders are
left alone.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings


def log_files_prune(
    *,
    folder: Path | None = None,
    days: int | None = None,
    rotate_bytes: int | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Rotate the large logs, delete what is older than `days` (default LOG_RETENTION_DAYS;
    0: keep everything); what was rotated, deleted and kept."""
    folder = Path(settings.LOG_DIR) if folder is None else folder
    days = settings.LOG_RETENTION_DAYS if days is None else days
    rotate_bytes = settings.LOG_ROTATE_BYTES if rotate_bytes is None else rotate_bytes
    now = time.time() if now is None else now
    if not folder.is_dir():
        return {"folder": str(folder), "rotated": [], "deleted": [], "kept": 0}
    rotated = _rotate(folder, rotate_bytes, now) if rotate_bytes > 0 else []
    deleted, kept = [], 0
    cutoff = now - days * 86_400
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.is_symlink():
            continue
        if days > 0 and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            deleted.append(path.name)
        else:
            kept += 1
    return {"folder": str(folder), "rotated": rotated, "deleted": deleted, "kept": kept}


def _rotate(folder: Path, rotate_bytes: int, now: float) -> list[str]:
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    rotated = []
    for path in sorted(folder.glob("*.log")):
        if path.is_symlink() or not path.is_file() or path.stat().st_size <= rotate_bytes:
            continue
        copy = path.with_name(f"{path.name}.{stamp}")
        shutil.copy2(path, copy)
        with path.open("r+b") as handle:
            handle.truncate(0)
        rotated.append(copy.name)
    return rotated
