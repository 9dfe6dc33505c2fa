"""Pages of a table of millions of rows without counting it: the admin's results list and the
API's history both page with `EstimatedCountPaginator`, so it lives below both of them."""

from __future__ import annotations

from functools import cached_property

from django.core.paginator import Paginator
from django.db.models import QuerySet

from scheduler.observability.table_rows import estimated_rows

# Below this many rows (by the estimate) a table is counted exactly: the estimate of a small
# or never analysed table can be far off, and counting it is cheap.
EXACT_COUNT_BELOW = 100_000


class EstimatedCountPaginator(Paginator):
    """Counts a filtered list exactly (filters and search use indexes), and an unfiltered one of
    a large table by its estimate (scheduler/observability/table_rows.py); `estimated` says which,
    for the page to say "about"."""

    estimated = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and not queryset.query.where:
            estimate = estimated_rows(queryset.model, using=queryset.db)
            if estimate is not None and estimate >= EXACT_COUNT_BELOW:
                self.estimated = True
                return estimate
        return int(super().count)
