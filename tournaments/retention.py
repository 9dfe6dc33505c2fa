"""How long the history of ended tournaments is kept (scheduler/services/retention.py runs the
cleanup).

Decisions, trades and equity snapshots grow with every round of every live tournament. Once a
tournament has ended (finished or cancelled) and its end date is TOURNAMENT_HISTORY_RETENTION_DAYS
behind, its rows older than that go; a live or scheduled tournament keeps all of its own, and
the tournament and its entries (final cash, equity, rank) are always kept.

The rows go entry by entry, each entry's batches walking its own index ((entry, tick) or
(entry, at)): a query over all ended tournaments at once would gather and sort their whole
history for every batch.

Trades are registered before decisions: a decision's trades go with it (CASCADE), and deleting
them first leaves the decisions' batches nothing to cascade to. Nothing else points at these rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from scheduler.services import RetentionPolicy, retention_register
from tournaments.models import Decision, Entry, EquitySnapshot, Tournament, Trade

ENDED = (Tournament.Status.FINISHED, Tournament.Status.CANCELLED)
SETTING = "TOURNAMENT_HISTORY_RETENTION_DAYS"


def _ended(cutoff: datetime | None) -> dict[str, Any]:
    """Filters of a tournament that ended (before `cutoff`, when there is one)."""
    ended: dict[str, Any] = {"status__in": ENDED}
    if cutoff is not None:
        # A cancelled tournament keeps its planned end: its history stays that long too.
        ended["ends_at__lt"] = cutoff
    return ended


def _of_ended_tournaments(rows: QuerySet[Any], cutoff: datetime | None) -> QuerySet[Any]:
    return rows.filter(**{f"entry__tournament__{k}": v for k, v in _ended(cutoff).items()})


def _entries_of_ended_tournaments(cutoff: datetime | None) -> Iterator[dict[str, Any]]:
    # Ids only, read at once: the deletes that follow commit batch by batch.
    ended = Entry.objects.filter(**{f"tournament__{k}": v for k, v in _ended(cutoff).items()})
    for entry_id in list(ended.order_by("pk").values_list("pk", flat=True)):
        yield {"entry_id": entry_id}


for label, model, field, order in (
    ("tournament trades", Trade, "executed_at", "tick"),
    ("tournament equity snapshots", EquitySnapshot, "at", "at"),
    ("tournament decisions", Decision, "created_at", "tick"),
):
    retention_register(
        RetentionPolicy(
            label=label,
            model=model,
            field=field,  # indexed on its own for the overview's oldest row (migration 0002)
            setting=SETTING,
            scope=_of_ended_tournaments,
            scope_description="after the tournament ended",
            partitions=_entries_of_ended_tournaments,
            order=order,
        )
    )
