"""How many rows a table of millions holds, without counting them.

Pages, metrics and `scheduler status` show the size of the history; `COUNT(*)` of it reads every
row (or every entry of an index) on each request.
"""

from __future__ import annotations

from django.db import connections, router
from django.db.models import Model


def estimated_rows(model: type[Model], *, using: str | None = None) -> int | None:
    """An estimate of the rows of `model`'s table, or None when the database cannot give one.

    PostgreSQL: the planner's `pg_class.reltuples`, kept by autovacuum and ANALYZE (None before
    the first of them). SQLite: the span of the integer primary key: ids are handed out in order
    and retention deletes every row older than its cutoff, so once a cleanup has finished the
    span is close to the count (during one it is high). Each end is read alone: SQLite answers
    `MIN(id), MAX(id)` in one statement by reading every row.
    """
    using = using or router.db_for_read(model)
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [connection.ops.quote_name(model._meta.db_table)],
            )
            row = cursor.fetchone()
        if row is None or row[0] is None or row[0] < 0:
            return None
        return int(row[0])
    if model._meta.pk is None or model._meta.pk.get_internal_type() not in (
        "AutoField",
        "BigAutoField",
    ):
        return None
    ids = model._default_manager.using(using).values_list("pk", flat=True)
    low, high = ids.order_by("pk").first(), ids.order_by("-pk").first()
    if low is None or high is None:
        return 0
    return int(high) - int(low) + 1


def counted_or_estimated(model: type[Model], *, exact_up_to: int) -> tuple[int, bool]:
    """(rows, estimated): counted while there are at most `exact_up_to`, else estimated."""
    using = router.db_for_read(model)
    counted = model._default_manager.using(using).order_by().values("pk")[: exact_up_to + 1]
    found = counted.count()
    if found <= exact_up_to:
        return found, False
    estimate = estimated_rows(model, using=using)
    if estimate is None:
        return model._default_manager.using(using).count(), False
    return max(estimate, found), True
