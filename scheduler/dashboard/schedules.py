"""The dashboard's periodic tasks table at any size: searched, filtered and paged on the server.

The page and its script share one query string (`q`, `enabled`, `paused`, `failing`, `owner`,
`after` or `before`, `limit`), so that a filtered page's URL can be shared. The page shows what
it could not understand and leaves it out; `/dashboard/schedules.json` (and the summary the
script re-reads, which carries the table's page) answers 400 naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from django.http import JsonResponse, QueryDict
from django.utils import timezone

from scheduler import selectors

SEARCH_MAX = 200
# A periodic task's name is at most this long (django-celery-beat's column).
NAME_MAX = 200
YES = frozenset({"1", "true", "yes", "on"})
NO = frozenset({"0", "false", "no", "off"})
_OWNER_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# The names of the query string, as the page's form and script write them.
PARAMS = ("q", "enabled", "paused", "failing", "owner", "after", "before", "limit")


class BadParam(ValueError):
    def __init__(self, param: str, message: str) -> None:
        self.param = param
        super().__init__(message)


@dataclass(frozen=True)
class ScheduleQuery:
    """What the table shows: which schedules (`where`), which page of them."""

    where: selectors.ScheduleFilter = field(default_factory=selectors.ScheduleFilter)
    after: str = ""
    before: str = ""
    limit: int = selectors.SCHEDULES_PAGE_SIZE

    def as_params(self) -> dict[str, str]:
        """The query string's values (empty: left out), for the page's form and script."""
        where = self.where
        return {
            "q": where.search,
            "enabled": _flag_text(where.enabled),
            "paused": _flag_text(where.paused),
            "failing": _flag_text(where.failing),
            "owner": where.owner,
            "after": self.after,
            "before": self.before,
            "limit": "" if self.limit == selectors.SCHEDULES_PAGE_SIZE else str(self.limit),
        }

    def page_link(self, *, after: str | None = None, before: str | None = None) -> str:
        """The query string ("?q=...&after=...") of another page of the same search."""
        page = replace(self, after=after or "", before=before or "")
        return "?" + urlencode({name: value for name, value in page.as_params().items() if value})


def _flag_text(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def _flag(query: QueryDict, name: str) -> bool | None:
    text = query.get(name, "").strip().lower()
    if not text or text == "any":
        return None
    if text in YES:
        return True
    if text in NO:
        return False
    raise BadParam(name, f"{name} must be yes or no (or any), not {query.get(name)!r}")


def _search(query: QueryDict) -> str:
    text = query.get("q", "").strip()
    if len(text) > SEARCH_MAX:
        raise BadParam("q", f"q must be at most {SEARCH_MAX} characters, not {len(text)}")
    return text


def _owner(query: QueryDict) -> str:
    text = query.get("owner", "").strip()
    if not text or text == "any":
        return ""
    known = ", ".join(["any", selectors.OWNER_NONE, *selectors.OWNER_TYPES])
    owner_type, sep, owner_id = text.partition(":")
    if owner_type not in (*selectors.OWNER_TYPES, selectors.OWNER_NONE) or (
        sep and owner_type == selectors.OWNER_NONE
    ):
        raise BadParam("owner", f"owner must be one of {known}, or type:id (agent:7), not {text!r}")
    if sep and not _OWNER_ID.fullmatch(owner_id):
        raise BadParam("owner", f"owner's id must be an id like 7, not {owner_id!r}")
    return text


def _cursor(query: QueryDict, name: str) -> str:
    text = query.get(name, "")
    if len(text) > NAME_MAX:
        raise BadParam(name, f"{name} must be a schedule's name (at most {NAME_MAX} characters)")
    return text


def _limit(query: QueryDict) -> int:
    text = query.get("limit", "").strip()
    if not text:
        return selectors.SCHEDULES_PAGE_SIZE
    if not text.isdigit() or not 1 <= int(text) <= selectors.SCHEDULES_PAGE_MAX:
        raise BadParam(
            "limit",
            f"limit must be a whole number from 1 to {selectors.SCHEDULES_PAGE_MAX}, not {text!r}",
        )
    return int(text)


_READERS: dict[str, Any] = {
    "q": _search,
    "enabled": lambda query: _flag(query, "enabled"),
    "paused": lambda query: _flag(query, "paused"),
    "failing": lambda query: _flag(query, "failing"),
    "owner": _owner,
    "after": lambda query: _cursor(query, "after"),
    "before": lambda query: _cursor(query, "before"),
    "limit": _limit,
}
_DEFAULTS: dict[str, Any] = {
    "q": "",
    "enabled": None,
    "paused": None,
    "failing": None,
    "owner": "",
    "after": "",
    "before": "",
    "limit": selectors.SCHEDULES_PAGE_SIZE,
}


def schedule_query(query: QueryDict) -> tuple[ScheduleQuery, dict[str, str]]:
    """The table's query from a query string, and what was wrong in it (param -> why; those
    params are left out)."""
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name in PARAMS:
        try:
            values[name] = _READERS[name](query)
        except BadParam as exc:
            problems[name] = str(exc)
            values[name] = _DEFAULTS[name]
    if values["after"] and values["before"]:
        problems["before"] = "give after or before, not both"
        values["before"] = ""
    where = selectors.ScheduleFilter(
        search=values["q"],
        enabled=values["enabled"],
        paused=values["paused"],
        failing=values["failing"],
        owner=values["owner"],
    )
    parsed = ScheduleQuery(
        where=where, after=values["after"], before=values["before"], limit=values["limit"]
    )
    return parsed, problems


def schedules_table(query: ScheduleQuery) -> dict[str, Any]:
    """The page of periodic tasks `query` asks for, as the page and its script show it."""
    page = selectors.schedules_page(
        now=timezone.now(),
        where=query.where,
        after=query.after,
        before=query.before,
        limit=query.limit,
    )
    return {
        **page.as_dict(),
        # Where the page ends among the matches (as "51 to 100 of 5000" says).
        "end": page.start + len(page.rows),
        "query": query.as_params(),
        "filtered": query.where.active,
        "links": {
            "before": query.page_link(before=page.before) if page.before else "",
            "after": query.page_link(after=page.after) if page.after else "",
        },
    }


def bad_params(problems: dict[str, str]) -> JsonResponse:
    """400 naming each parameter that was not understood."""
    detail = "; ".join(problems.values())
    return JsonResponse({"detail": detail, "params": problems}, status=400)
