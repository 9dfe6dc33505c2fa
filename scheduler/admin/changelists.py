"""Admin changelists over tables of millions of rows: no count, distinct or sort of the whole
table per page.

The stock admin asks four things of a table that are cheap on a hundred rows and a scan on a
million: the exact row count (twice: filtered and unfiltered), the distinct values of every
`AllValuesFieldListFilter`, the distinct years, months or days of the date hierarchy, and
`LIKE '%term%'` across every search field. Here the count of an unfiltered list is PostgreSQL's
own estimate (`EstimatedCountPaginator`, in scheduler/observability/pagination.py: the API pages
with it too), filter choices come from small tables, the date hierarchy probes an index once per
day or month it could show, and search matches the start of indexed columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from django.contrib import admin
from django.contrib.admin.utils import get_last_value_from_parameters
from django.db.models import F, Max, Min, Q, QuerySet
from django.utils import timezone


class ChoicesFromFieldListFilter(admin.AllValuesFieldListFilter):
    """`AllValuesFieldListFilter` offering the values of a cheap source (`choices_from`) instead
    of `SELECT DISTINCT` over the whole table; the value in the URL is always among them.

    Subclassed per field with `choices_from`, a function of the request returning the values.
    """

    choices_from: Callable[[], Iterable[str]] = staticmethod(lambda: ())

    def __init__(
        self,
        field: Any,
        request: Any,
        params: dict[str, Any],
        model: Any,
        model_admin: Any,
        field_path: str,
    ) -> None:
        self.lookup_kwarg = field_path
        self.lookup_kwarg_isnull = f"{field_path}__isnull"
        self.lookup_val = params.get(self.lookup_kwarg)
        self.lookup_val_isnull = get_last_value_from_parameters(params, self.lookup_kwarg_isnull)
        self.empty_value_display = model_admin.get_empty_value_display()
        chosen = [value for value in (self.lookup_val or []) if value]
        choices: list[str | None] = sorted({*(v for v in type(self).choices_from() if v), *chosen})
        if field.null:
            choices.append(None)  # the stock filter's "-": rows without a value
        self.lookup_choices = cast(Any, choices)  # the stock filter's is a queryset of them
        # FieldListFilter's own __init__: AllValuesFieldListFilter's would run the DISTINCT.
        admin.FieldListFilter.__init__(self, field, request, params, model, model_admin, field_path)


def choices_filter(source: Callable[[], Iterable[str]]) -> type[ChoicesFromFieldListFilter]:
    """A list filter for a text field whose choices are `source()`."""
    return type(
        "ChoicesFilter",
        (ChoicesFromFieldListFilter,),
        {"choices_from": staticmethod(source)},
    )


def prefix_match(field: str, text: str, *, vendor: str) -> Q:
    """Rows whose `field` starts with `text`, exactly (case-sensitive), through a b-tree index.

    PostgreSQL: `LIKE 'text%'`, served by a `varchar_pattern_ops` index whatever the database's
    collation. SQLite's LIKE ignores case and so cannot use an ordinary index: a range over the
    column's binary order is the same match and can.
    """
    if vendor == "sqlite":
        return Q(**{f"{field}__gte": text, f"{field}__lt": text + "\U0010ffff"})
    return Q(**{f"{field}__startswith": text})


class ProbedDatesQuerySet(QuerySet[Any]):
    """A queryset whose `datetimes()` (the admin's date hierarchy) probes an index.

    Django finds the years, months or days that hold rows with `SELECT DISTINCT` of the
    truncated date over every matching row: the whole history on an unfiltered list. Here the
    first and last date bound the candidates, and one `EXISTS` per candidate (at most 31 days,
    12 months, or the years between them) reads one index entry each.

    Its `aggregate()` of only `Min`s and `Max`s of columns (the hierarchy's first and last date)
    reads each as the first row in that column's order: SQLite answers `MIN(x), MAX(x)` in one
    statement by reading every row, and one of them alone from the index.
    """

    def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if args or not kwargs or not all(map(_edge_of_a_column, kwargs.values())):
            return super().aggregate(*args, **kwargs)
        # Kept on this queryset: the date hierarchy asks for the same two edges once, and
        # `datetimes()` again (both of the changelist's one queryset).
        known: dict[str, Any] = self.__dict__.setdefault("_edges", {})
        edges = {}
        for key, aggregate in kwargs.items():
            column = aggregate.get_source_expressions()[0].name
            order = column if isinstance(aggregate, Min) else f"-{column}"
            if order not in known:
                known[order] = (
                    self.exclude(**{f"{column}__isnull": True})
                    .order_by(order)
                    .values_list(column, flat=True)
                    .first()
                )
            edges[key] = known[order]
        return edges

    def datetimes(  # type: ignore[override]
        self,
        field_name: str,
        kind: str,
        order: str = "ASC",
        tzinfo: Any = None,
    ) -> list[datetime]:
        zone = tzinfo or timezone.get_current_timezone()
        bounds = self.aggregate(first=Min(field_name), last=Max(field_name))
        if bounds["first"] is None:
            return []
        first = timezone.localtime(bounds["first"], zone)
        last = timezone.localtime(bounds["last"], zone)
        found = [
            start
            for start, end in _buckets(first, last, kind=kind, zone=zone)
            if self.filter(**{f"{field_name}__gte": start, f"{field_name}__lt": end}).exists()
        ]
        return found if order == "ASC" else found[::-1]


def _edge_of_a_column(aggregate: Any) -> bool:
    if not isinstance(aggregate, Min | Max) or aggregate.filter is not None:
        return False
    # The filter slot is a source expression too (None here).
    sources = [source for source in aggregate.get_source_expressions() if source is not None]
    return len(sources) == 1 and isinstance(sources[0], F)


def _buckets(
    first: datetime, last: datetime, *, kind: str, zone: Any
) -> Sequence[tuple[datetime, datetime]]:
    def at(year: int, month: int = 1, day: int = 1) -> datetime:
        # Midnight where the list is read, not in UTC: a day of the hierarchy is a local day.
        return timezone.make_aware(datetime(year, month, day), zone)  # noqa: DTZ001

    spans: list[tuple[datetime, datetime]] = []
    if kind == "year":
        for year in range(first.year, last.year + 1):
            spans.append((at(year), at(year + 1)))
    elif kind == "month":
        year, month = first.year, first.month
        while (year, month) <= (last.year, last.month):
            next_year, next_month = year + month // 12, month % 12 + 1
            spans.append((at(year, month), at(next_year, next_month)))
            year, month = next_year, next_month
    elif kind == "day":
        day = first.date()
        while day <= last.date():
            after = day + timedelta(days=1)
            spans.append((at(day.year, day.month, day.day), at(after.year, after.month, after.day)))
            day = after
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return spans


def with_probed_dates(queryset: QuerySet[Any]) -> ProbedDatesQuerySet:
    """`queryset` as a `ProbedDatesQuerySet` (same model, query and database)."""
    return ProbedDatesQuerySet(
        model=queryset.model, query=queryset.query.chain(), using=queryset.db
    )
