"""Log files kept within LOG_RETENTION_DAYS: the seeds' `cleanup_logs`.

Deletes the regular files of LOG_DIR (the stack's logs, rotated `*.log.1`, `*.gz`) not written
for that many days. A file still written to is recent, so it stays; subfolders are left alone.
"""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings


def log_files_prune(
    *, folder: Path | None = None, days: int | None = None, now: float | None = None
) -> dict[str, object]:
    """Delete what is older than `days` (default LOG_RETENTION_DAYS; 0: keep everything)."""
    folder = Path(settings.LOG_DIR) if folder is None else folder
    days = settings.LOG_RETENTION_DAYS if days is None else days
    if days <= 0 or not folder.is_dir():
        return {"folder": str(folder), "deleted": [], "kept": 0}
    cutoff = (now or time.time()) - days * 86_400
    deleted, kept = [], 0
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.is_symlink():
            continue
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            deleted.append(path.name)
        else:
            kept += 1
    return {"folder": str(folder), "deleted": deleted, "kept": kept}
