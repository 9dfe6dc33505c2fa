"""Agents' memory kept safe and small (the Puti seed's `memory.backup` and `memory.cleanup`).

An agent's memory is its `state` (what its brain carries from one run to the next) and its
sessions' summaries. `memory_backup` writes all of it to one JSON file in
BACKUP_DIR/agents/, checks the file reads back, and keeps the newest BACKUP_KEEP. A state key
may have a time to live: `agent_state_set(agent, key, value, ttl=...)` records its expiry under
`state["_expires"]`, and `memory_prune` drops the keys whose time has passed.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.models import Agent, Session

EXPIRES = "_expires"
_PREFIX = "memory-"


def agent_state_set(*, agent: Agent, key: str, value: Any, ttl: timedelta | None = None) -> None:
    """Remember `value` under `key`, until `ttl` from now when given."""
    with transaction.atomic():
        locked = Agent.objects.select_for_update().get(pk=agent.pk)
        state = dict(locked.state or {})
        expires = dict(state.get(EXPIRES) or {})
        state[key] = value
        if ttl is None:
            expires.pop(key, None)
        else:
            expires[key] = (timezone.now() + ttl).isoformat()
        state[EXPIRES] = expires
        if not expires:
            state.pop(EXPIRES)
        locked.state = state
        locked.save(update_fields=["state", "updated_at"])
    agent.state = state


def memory_prune(*, now: datetime | None = None) -> dict[str, list[str]]:
    """Drop every state key whose time to live has passed; slug -> the keys dropped."""
    now = now or timezone.now()
    dropped: dict[str, list[str]] = {}
    for agent in Agent.objects.exclude(state={}).only("pk", "slug", "state"):
        expires = (agent.state or {}).get(EXPIRES) or {}
        gone = [key for key, when in expires.items() if _passed(when, now)]
        if not gone:
            continue
        with transaction.atomic():
            locked = Agent.objects.select_for_update().get(pk=agent.pk)
            state = dict(locked.state or {})
            left = dict(state.get(EXPIRES) or {})
            for key in gone:
                state.pop(key, None)
                left.pop(key, None)
            state[EXPIRES] = left
            if not left:
                state.pop(EXPIRES)
            locked.state = state
            locked.save(update_fields=["state", "updated_at"])
        dropped[agent.slug] = gone
    return dropped


def _passed(when: Any, now: datetime) -> bool:
    try:
        moment = datetime.fromisoformat(str(when))
    except ValueError:
        return True  # unreadable: nobody can honour it
    return moment <= now


def memory_backup(*, directory: Path | None = None, keep: int | None = None) -> dict[str, Any]:
    """Write every agent's state and session summaries to one file, check it reads back, keep
    the newest `keep` (default BACKUP_KEEP); what was written and removed."""
    directory = Path(settings.BACKUP_DIR) / "agents" if directory is None else directory
    keep = settings.BACKUP_KEEP if keep is None else keep
    directory.mkdir(parents=True, exist_ok=True)
    now = timezone.now()
    document = {"written_at": now.isoformat(), "agents": _memories()}
    path = directory / f"{_PREFIX}{now:%Y%m%dT%H%M%S%fZ}.json"
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(document, indent=1, default=str))
    if json.loads(partial.read_text()) != json.loads(json.dumps(document, default=str)):
        partial.unlink()
        raise OSError(f"{path}: the backup did not read back as written")
    partial.replace(path)
    older = sorted(directory.glob(f"{_PREFIX}*.json"), reverse=True)[keep:]
    for stale in older:
        stale.unlink(missing_ok=True)
    return {
        "path": str(path),
        "agents": len(document["agents"]),
        "removed": [stale.name for stale in older],
    }


def _memories() -> list[dict[str, Any]]:
    summaries: dict[int, list[dict[str, Any]]] = {}
    sessions = Session.objects.exclude(summary="").order_by("pk")
    rows = sessions.values_list("pk", "agent_id", "channel", "external_id", "summary")
    for pk, agent_id, channel, external_id, summary in rows:
        summaries.setdefault(agent_id, []).append(
            {"pk": pk, "channel": channel, "external_id": external_id, "summary": summary}
        )
    return [
        {"slug": slug, "state": state, "sessions": summaries.get(pk, [])}
        for pk, slug, state in Agent.objects.order_by("slug").values_list("pk", "slug", "state")
    ]
