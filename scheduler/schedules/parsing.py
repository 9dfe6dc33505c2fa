"""Schedules written as plain English or cron, turned into a typed spec. Pure: no ORM.

`parse_schedule(text, tz=...)` returns a `ParsedSchedule`: an interval (every N seconds,
minutes, hours or days), a crontab (wall-clock times in the schedule's time zone) or a clocked
one-off time, with a human description and its next run times. A phrase it cannot read raises
`ScheduleParseError`, whose message says what it expected; it never guesses.

Time zones and DST. Crontab times are wall-clock times in the schedule's zone. A time that
occurs twice (the fall-back hour) runs once, at its first occurrence; a time that does not
occur (the spring-forward gap) runs once, shifted forward by the gap (02:30 becomes 03:30).
So a daily 01:30 job runs exactly once on both transition days. Crontab semantics are
Celery's: when both day-of-month and day-of-week are restricted, a day must match both.

Bounds. An interval repeats at least every 3650 days (10 years) and a one-off is at most 36525
days (100 years) ahead: the rows beat reads hold an interval in a 32-bit column and every time
must stay inside the calendar after conversion to any zone. Cron fields fit the columns of
django-celery-beat's crontab rows.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import crontab_parser
from cron_descriptor import FormatException, MissingFieldException, Options, get_description

Period = Literal["days", "hours", "minutes", "seconds"]
Kind = Literal["interval", "crontab", "clocked"]

_PERIOD_SECONDS: dict[str, int] = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
_UNITS: dict[str, tuple[Period, int]] = {
    "second": ("seconds", 1),
    "sec": ("seconds", 1),
    "minute": ("minutes", 1),
    "min": ("minutes", 1),
    "hour": ("hours", 1),
    "day": ("days", 1),
    "week": ("days", 7),
}
_WEEKDAYS = {
    "sunday": 0,
    "monday": 1,
    "tuesday": 2,
    "wednesday": 3,
    "thursday": 4,
    "friday": 5,
    "saturday": 6,
}
_WEEKDAY_ALIASES = {name[:3]: number for name, number in _WEEKDAYS.items()} | {
    "tues": 2,
    "weds": 3,
    "thur": 4,
    "thurs": 4,
}
# The search for next runs gives up after this many days (a 29 February schedule needs 4 years).
_SEARCH_DAYS = 366 * 8
# The longest interval: in seconds it still fits the 32-bit `every` column of interval rows.
MAX_INTERVAL_DAYS = 3650
# The furthest one-off: a century ahead, far from the end of the calendar (year 9999).
MAX_AHEAD_DAYS = 36525

EXPECTED = (
    "a schedule such as 'every 5 minutes', 'every day at 2pm', 'every monday at 8am', "
    "'every weekday at 9:30', 'every month on the 1st at 9am', 'in 5 minutes', "
    "'tomorrow at 9am', '2024-01-15 14:30', or five cron fields like '0 9 * * 1'"
)


class ScheduleParseError(ValueError):
    """The text is not a schedule we can read; the message says what was expected."""


@dataclass(frozen=True)
class IntervalSpec:
    every: int
    period: Period

    @property
    def seconds(self) -> int:
        return self.every * _PERIOD_SECONDS[self.period]


@dataclass(frozen=True)
class CrontabSpec:
    minute: str = "*"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"

    @property
    def expression(self) -> str:
        return " ".join(
            (self.minute, self.hour, self.day_of_month, self.month_of_year, self.day_of_week)
        )


@dataclass(frozen=True)
class ParsedSchedule:
    kind: Kind
    timezone: str
    description: str
    interval: IntervalSpec | None = None
    crontab: CrontabSpec | None = None
    clocked: datetime | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_runs(
        self, count: int, *, now: datetime, until: datetime | None = None
    ) -> list[datetime]:
        """The next `count` run times strictly after `now` (and not after `until`), in the
        schedule's time zone.

        Intervals count from `now` (beat counts from the last run); a past one-off has none.
        """
        _require_aware(now)
        if count <= 0:
            return []
        if self.interval is not None:
            step = timedelta(seconds=self.interval.seconds)
            runs: list[datetime] = []
            try:
                local = now.astimezone(self.zone)
                for k in range(1, count + 1):
                    run = local + step * k
                    if until is not None and run > until:
                        break
                    runs.append(run)
            except OverflowError:
                pass  # no runs past the end of the calendar
            return runs
        if self.clocked is not None:
            if self.clocked <= now or (until is not None and self.clocked > until):
                return []
            return [self.clocked.astimezone(self.zone)]
        assert self.crontab is not None
        runs = []
        for run in crontab_runs(self.crontab, self.zone, after=now):
            if until is not None and run > until:
                break
            runs.append(run)
            if len(runs) == count:
                break
        return runs

    def as_dict(self, *, now: datetime, count: int = 5) -> dict[str, object]:
        return {
            "kind": self.kind,
            "interval": (
                {"every": self.interval.every, "period": self.interval.period}
                if self.interval
                else None
            ),
            "crontab": (
                {
                    "minute": self.crontab.minute,
                    "hour": self.crontab.hour,
                    "day_of_week": self.crontab.day_of_week,
                    "day_of_month": self.crontab.day_of_month,
                    "month_of_year": self.crontab.month_of_year,
                }
                if self.crontab
                else None
            ),
            "clocked": self.clocked.astimezone(self.zone).isoformat() if self.clocked else None,
            "timezone": self.timezone,
            "description": self.description,
            "next_runs": [run.isoformat() for run in self.next_runs(count, now=now)],
        }


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: pass an aware datetime")


def zone_named(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    # OSError: a name that is a directory of the zone database ('America'), or too long a path.
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ScheduleParseError(
            f"unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/London'"
        ) from exc


# --- Entry point -------------------------------------------------------------------------------


def parse_schedule(text: str, *, tz: str = "UTC", now: datetime | None = None) -> ParsedSchedule:
    """Read `text` (English or cron) as a schedule in time zone `tz`.

    `now` anchors relative one-offs ('in 5 minutes', 'tomorrow at 9am'); default: the clock.
    """
    zone = zone_named(tz)
    if now is None:
        now = datetime.now(UTC)
    _require_aware(now)
    raw = " ".join(text.split())
    if not raw:
        raise ScheduleParseError(f"the schedule is empty: expected {EXPECTED}")
    if len(raw) > 200:
        raise ScheduleParseError("the schedule is longer than 200 characters")
    phrase = raw.lower()
    for reader in (_read_cron, _read_recurring, _read_one_off, _read_datetime):
        try:
            parsed = reader(phrase, raw, zone, now)
        except OverflowError:  # date arithmetic past year 9999 (or before year 1)
            raise ScheduleParseError(f"{raw!r} is outside the calendar (years 1 to 9999)") from None
        if parsed is not None:
            return parsed
    raise ScheduleParseError(f"cannot read {raw!r} as a schedule: expected {EXPECTED}")


# --- Cron --------------------------------------------------------------------------------------

_CRON_FIELDS = (
    # name in messages, minimum, maximum, names allowed, longest (django-celery-beat's column)
    ("minute", 0, 59, None, 240),
    ("hour", 0, 23, None, 96),
    ("day of month", 1, 31, None, 124),
    ("month", 1, 12, ("jan feb mar apr may jun jul aug sep oct nov dec"), 64),
    ("day of week", 0, 7, "sun mon tue wed thu fri sat", 64),
)
_CRON_TOKEN = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?$")
_LOOKS_LIKE_CRON = re.compile(r"^[\d*/,\-a-z]+( [\d*/,\-a-z]+){4}$")


def _read_cron(phrase: str, raw: str, zone: ZoneInfo, now: datetime) -> ParsedSchedule | None:
    fields = phrase.split(" ")
    # Minute and hour fields start with a digit or '*'; no English phrase here does.
    if not _LOOKS_LIKE_CRON.match(phrase) or not all(f[0] in "0123456789*" for f in fields[:2]):
        return None
    minute, hour, dom, month, dow = (
        _validate_cron_field(value, *spec) for value, spec in zip(fields, _CRON_FIELDS, strict=True)
    )
    spec = CrontabSpec(
        minute=minute,
        hour=hour,
        day_of_week=_sunday_as_zero(dow),
        day_of_month=dom,
        month_of_year=month,
    )
    if len(spec.day_of_week) > _CRON_FIELDS[4][4]:
        raise ScheduleParseError(
            f"day of week field {dow!r} is longer than {_CRON_FIELDS[4][4]} characters "
            "once its Sundays are written as 0"
        )
    never = crontab_never_reason(spec)
    if never:
        raise ScheduleParseError(f"{raw!r} can never run: {never}")
    return ParsedSchedule(
        kind="crontab", timezone=zone.key, description=describe_crontab(spec), crontab=spec
    )


# The most days each month has (February: 29, in leap years).
_MONTH_DAYS = {
    1: 31,
    2: 29,
    3: 31,
    4: 30,
    5: 31,
    6: 30,
    7: 31,
    8: 31,
    9: 30,
    10: 31,
    11: 30,
    12: 31,
}
_MONTH_NAMES = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def _or_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def crontab_never_reason(spec: CrontabSpec) -> str:
    """Why a crontab can never run ("April has no day 31"), or "" when it can.

    Days of the month and months are both required (as Celery's crontab does); every date that
    exists falls on each weekday in some year, so the days of the week never make it impossible.
    """
    sets = crontab_sets(spec)
    if any(day <= _MONTH_DAYS[month] for month in sets.months for day in sets.days_of_month):
        return ""
    months = [_MONTH_NAMES[month - 1] for month in sorted(sets.months)]
    days = [str(day) for day in sorted(sets.days_of_month)]
    has = "has" if len(months) == 1 else "have"
    return f"{_or_list(months)} {has} no day {_or_list(days)}"


def _validate_cron_field(
    value: str, field: str, low: int, high: int, names: str | None, longest: int
) -> str:
    if len(value) > longest:
        raise ScheduleParseError(f"{field} field {value!r} is longer than {longest} characters")
    allowed_names = names.split() if names else []
    for token in value.split(","):
        match = _CRON_TOKEN.match(token)
        if not match:
            raise ScheduleParseError(f"{field} field {value!r}: cannot read {token!r}")
        span, step = match.groups()
        if step is not None and int(step) == 0:
            raise ScheduleParseError(f"{field} field {value!r}: a step of 0 never repeats")
        if step is not None and int(step) > high - low + 1:
            # Past the field's range a step means "the first value only"; say so rather than
            # describe it as "every 1000 minutes".
            raise ScheduleParseError(
                f"{field} field {value!r}: a step of {step} is more than the field's "
                f"{high - low + 1} values ({low}-{high})"
            )
        if span == "*":
            continue
        for part in span.split("-"):
            if part.isdigit():
                number = int(part)
                if not low <= number <= high:
                    raise ScheduleParseError(f"{field} {number} is out of range {low}-{high}")
            elif part not in allowed_names:
                hint = f" (names: {', '.join(allowed_names)})" if allowed_names else ""
                raise ScheduleParseError(f"{field} {part!r} is not a number{hint}")
    return value


def _sunday_as_zero(dow: str) -> str:
    """Cron allows 7 for Sunday; Celery only 0."""

    def fix(token: str) -> str:
        span, _, step = token.partition("/")
        first, _, last = span.partition("-")
        if span == "7":
            span = "0"
        elif last == "7" and step:
            # The days the step lands on, Sunday (7) among them or not: "5-7/2" is 5 and 0.
            start = int(first) if first.isdigit() else _WEEKDAY_ALIASES[first]
            return ",".join(str(day % 7) for day in range(start, 8, int(step)))
        elif last == "7":
            span = {"7": "0", "0": "0-6", "sun": "0-6"}.get(first, f"{first}-6,0")
        return f"{span}/{step}" if step else span

    return ",".join(fix(token) for token in dow.split(","))


@dataclass(frozen=True)
class CrontabSets:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_week: frozenset[int]  # 0 = Sunday
    days_of_month: frozenset[int]
    months: frozenset[int]


# Pure functions of a spec, asked again for every row of every list of schedules.
@functools.lru_cache(maxsize=4096)
def crontab_sets(spec: CrontabSpec) -> CrontabSets:
    try:
        return CrontabSets(
            minutes=tuple(sorted(crontab_parser(60).parse(spec.minute))),
            hours=tuple(sorted(crontab_parser(24).parse(spec.hour))),
            days_of_week=frozenset(crontab_parser(7).parse(spec.day_of_week)),
            days_of_month=frozenset(crontab_parser(31, 1).parse(spec.day_of_month)),
            months=frozenset(crontab_parser(12, 1).parse(spec.month_of_year)),
        )
    except ValueError as exc:
        raise ScheduleParseError(f"invalid crontab {spec.expression!r}: {exc}") from exc


def crontab_runs(spec: CrontabSpec, zone: ZoneInfo, *, after: datetime) -> Iterator[datetime]:
    """Run times of a crontab strictly after `after`, in order, DST-resolved (module doc)."""
    sets = crontab_sets(spec)
    try:
        day = after.astimezone(zone).date() - timedelta(days=1)  # a gap can push runs a day on
    except OverflowError:
        return  # `after` is at an edge of the calendar: no day of it to look at
    last: datetime | None = None
    after_local = after.astimezone(zone)
    for _ in range(_SEARCH_DAYS):
        if (
            day.month in sets.months
            and day.day in sets.days_of_month
            and (day.isoweekday() % 7) in sets.days_of_week
        ):
            # On a day the zone's offset does not change, each wall time is exactly one instant:
            # no round trip through UTC to resolve a gap or a fold (most days, most zones), and
            # wall times in order are instants in order: those before `after` are not built.
            steady = _steady_offset(day, zone)
            today = steady and day == after_local.date()
            if steady and day < after_local.date():
                day += timedelta(days=1)
                continue
            for hour in sets.hours:
                if today and hour < after_local.hour:
                    continue
                for minute in sets.minutes:
                    if today and hour == after_local.hour and minute < after_local.minute:
                        continue
                    local = datetime.combine(day, time(hour, minute))
                    try:
                        run = (
                            local.replace(tzinfo=zone) if steady else resolve_wall_time(local, zone)
                        )
                    except OverflowError:
                        continue  # a wall time of the calendar's first or last day, not in UTC
                    if run > after and (last is None or run > last):
                        last = run
                        yield run
        if day == date.max:
            return
        day += timedelta(days=1)


@functools.lru_cache(maxsize=8192)  # a pure function of a day and a zone; beat asks it often
def _steady_offset(day: date, zone: ZoneInfo) -> bool:
    """Whether `zone` keeps one UTC offset all through `day` (a change makes it 23 or 25 h).

    Each midnight must also be one instant, read with either fold: a gap or a fold that spans
    the next midnight (Toronto's 23:30 to 00:30 of 1919-03-30) leaves the two midnights 24 h
    apart at one offset, while the day's last wall times are not at that offset.
    """
    try:
        start = datetime.combine(day, time()).replace(tzinfo=zone)
        end = datetime.combine(day + timedelta(days=1), time()).replace(tzinfo=zone)
        elapsed = end.astimezone(UTC) - start.astimezone(UTC)
    except OverflowError:
        return False
    offset = start.utcoffset()
    return (
        elapsed == timedelta(days=1)
        and start.replace(fold=1).utcoffset() == offset
        and end.utcoffset() == offset
        and end.replace(fold=1).utcoffset() == offset
    )


def resolve_wall_time(local: datetime, zone: ZoneInfo) -> datetime:
    """The one instant a wall-clock time in `zone` stands for (first of two; shifted past a gap)."""
    first = local.replace(tzinfo=zone, fold=0)
    # Normalise through UTC: a wall time inside a gap comes back shifted forward by the gap.
    return first.astimezone(UTC).astimezone(zone)


@functools.lru_cache(maxsize=4096)
def describe_crontab(spec: CrontabSpec) -> str:
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        description: str = get_description(spec.expression, options)
    except (FormatException, MissingFieldException):
        # Valid cron that cron-descriptor cannot put in words ('*/2,1' days of week).
        return f"cron {spec.expression}"
    return description


# --- Recurring phrases ---------------------------------------------------------------------------

_TIME = r"(?P<time>midnight|noon|\d{1,2}(?::\d{2})?\s?(?:am|pm)?)"
_AT_TIME = rf"(?:\s+at\s+{_TIME})?"


_ALIASES = {
    "hourly": "every hour at minute 0",
    "daily": "every day",
    "weekly": "every week",
    "monthly": "every month",
    "yearly": "every year",
}


def _read_recurring(phrase: str, raw: str, zone: ZoneInfo, now: datetime) -> ParsedSchedule | None:
    phrase = _expand_alias(phrase)
    if not phrase.startswith("every "):
        return None
    body = phrase.removeprefix("every ")

    if body == "hour at minute 0":
        return _crontab(zone, CrontabSpec(minute="0"), "every hour, on the hour")
    parsed = _read_every_interval(body, raw, zone) or _read_every_calendar(body, zone)
    if parsed is not None:
        return parsed
    raise ScheduleParseError(
        f"cannot read {raw!r}: after 'every' expected a number and unit ('every 5 minutes'), "
        "'day', 'week', 'month on the 1st', 'weekday', 'weekend' or a day name, "
        "optionally followed by 'at <time>'"
    )


def _expand_alias(phrase: str) -> str:
    """'daily at 9am' -> 'every day at 9am'; other phrases as they are."""
    for alias, expanded in _ALIASES.items():
        if phrase == alias or phrase.startswith(alias + " at "):
            return expanded + phrase[len(alias) :]
    return phrase


def _read_every_interval(body: str, raw: str, zone: ZoneInfo) -> ParsedSchedule | None:
    """'5 minutes', 'hour', '2 days' (after 'every'): an interval; None for anything else."""
    match = re.fullmatch(r"(?P<n>\d+\s+)?(?P<unit>[a-z]+?)s?", body)
    # 'every day' and 'every week' are at midnight (a crontab), not 24 h from now.
    if not (
        match
        and match["unit"] in _UNITS
        and not (match["unit"] in ("day", "week") and not match["n"])
    ):
        return None
    every = int(match["n"]) if match["n"] else 1
    if every < 1:
        raise ScheduleParseError(f"'every {every} ...' must repeat at least once: use 1 or more")
    period, factor = _UNITS[match["unit"]]
    spec = IntervalSpec(every=every * factor, period=period)
    if spec.seconds > MAX_INTERVAL_DAYS * _PERIOD_SECONDS["days"]:
        raise ScheduleParseError(
            f"cannot read {raw!r}: an interval is at most {MAX_INTERVAL_DAYS} days (10 years)"
        )
    return ParsedSchedule(
        kind="interval",
        timezone=zone.key,
        description=describe_interval(spec),
        interval=spec,
    )


def _read_every_calendar(body: str, zone: ZoneInfo) -> ParsedSchedule | None:
    """'day', 'week', 'monday and friday', 'month on the 15th', 'year' (after 'every'),
    each optionally 'at <time>': a crontab; None for anything else."""
    match = re.fullmatch(rf"day{_AT_TIME}", body)
    if match:
        hour, minute = _clock(match["time"])
        return _crontab(zone, CrontabSpec(minute=str(minute), hour=str(hour)))

    match = re.fullmatch(rf"week{_AT_TIME}", body)
    if match:
        hour, minute = _clock(match["time"])
        return _crontab(zone, CrontabSpec(minute=str(minute), hour=str(hour), day_of_week="1"))

    match = re.fullmatch(rf"(?P<days>[a-z]+(?:(?:\s*,\s*|\s+and\s+)[a-z]+)*){_AT_TIME}", body)
    if match and match["days"] not in ("day", "week", "month", "year"):
        days = _weekdays(match["days"])
        if days is not None:
            hour, minute = _clock(match["time"])
            return _crontab(zone, CrontabSpec(minute=str(minute), hour=str(hour), day_of_week=days))

    match = re.fullmatch(
        rf"month(?:\s+on\s+the\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?)?{_AT_TIME}", body
    )
    if match:
        day = int(match["day"] or 1)
        if not 1 <= day <= 31:
            raise ScheduleParseError(f"day of month {day} is out of range 1-31")
        hour, minute = _clock(match["time"])
        return _crontab(
            zone, CrontabSpec(minute=str(minute), hour=str(hour), day_of_month=str(day))
        )

    match = re.fullmatch(rf"year{_AT_TIME}", body)
    if match:
        hour, minute = _clock(match["time"])
        yearly = CrontabSpec(
            minute=str(minute), hour=str(hour), day_of_month="1", month_of_year="1"
        )
        return _crontab(zone, yearly)
    return None


def _weekdays(text: str) -> str | None:
    if text in ("weekday", "weekdays"):
        return "1-5"
    if text in ("weekend", "weekends"):
        return "0,6"
    numbers = []
    for word in re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+", text):
        name = word.removesuffix("s") if word.removesuffix("s") in _WEEKDAYS else word
        number = _WEEKDAYS.get(name, _WEEKDAY_ALIASES.get(name))
        if number is None:
            return None
        numbers.append(number)
    return ",".join(str(n) for n in sorted(set(numbers)))


def _crontab(zone: ZoneInfo, spec: CrontabSpec, description: str | None = None) -> ParsedSchedule:
    return ParsedSchedule(
        kind="crontab",
        timezone=zone.key,
        description=description or describe_crontab(spec),
        crontab=spec,
    )


def describe_interval(spec: IntervalSpec) -> str:
    unit = spec.period.removesuffix("s")
    return f"every {unit}" if spec.every == 1 else f"every {spec.every} {spec.period}"


def _clock(text: str | None) -> tuple[int, int]:
    """'2pm' -> (14, 0), '14:30' -> (14, 30), 'midnight' -> (0, 0); no text -> midnight."""
    if text is None or text == "midnight":
        return 0, 0
    if text == "noon":
        return 12, 0
    match = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?\s?(am|pm)?", text)
    if not match:
        raise ScheduleParseError(f"cannot read the time {text!r}: expected e.g. 2pm, 9:30, 14:30")
    hour, minute = int(match[1]), int(match[2] or 0)
    meridiem = match[3]
    if meridiem:
        if not 1 <= hour <= 12:
            raise ScheduleParseError(f"hour {hour} is out of range 1-12 with {meridiem}")
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    if not 0 <= hour <= 23:
        raise ScheduleParseError(f"hour {hour} is out of range 0-23")
    if not 0 <= minute <= 59:
        raise ScheduleParseError(f"minute {minute} is out of range 0-59")
    return hour, minute


# --- One-off phrases ---------------------------------------------------------------------------


def _read_one_off(phrase: str, raw: str, zone: ZoneInfo, now: datetime) -> ParsedSchedule | None:
    local_now = now.astimezone(zone)
    match = re.fullmatch(r"in\s+(?P<n>\d+)\s+(?P<unit>[a-z]+?)s?", phrase)
    if match:
        if match["unit"] not in _UNITS:
            raise ScheduleParseError(
                f"cannot read {raw!r}: expected 'in N seconds|minutes|hours|days|weeks'"
            )
        period, factor = _UNITS[match["unit"]]
        seconds = int(match["n"]) * factor * _PERIOD_SECONDS[period]
        if seconds > MAX_AHEAD_DAYS * _PERIOD_SECONDS["days"]:
            raise _too_far_ahead(raw)
        return _clocked(zone, local_now + timedelta(seconds=seconds), now=now, raw=raw)

    match = re.fullmatch(rf"(?P<day>today|tomorrow){_AT_TIME}", phrase)
    if match:
        day = local_now.date() + timedelta(days=1 if match["day"] == "tomorrow" else 0)
        return _clocked(zone, _at(day, match["time"], zone), now=now, raw=raw)

    match = re.fullmatch(rf"(?:next|on)\s+(?P<name>[a-z]+){_AT_TIME}", phrase)
    if match:
        number = _WEEKDAYS.get(match["name"], _WEEKDAY_ALIASES.get(match["name"]))
        if number is None:
            raise ScheduleParseError(f"{match['name']!r} is not a day of the week")
        ahead = (number - local_now.isoweekday() % 7) % 7 or 7
        moment = _at(local_now.date() + timedelta(days=ahead), match["time"], zone)
        return _clocked(zone, moment, now=now, raw=raw)
    return None


def _at(day: date, clock: str | None, zone: ZoneInfo) -> datetime:
    hour, minute = _clock(clock)
    return resolve_wall_time(datetime.combine(day, time(hour, minute)), zone)


def _too_far_ahead(raw: str) -> ScheduleParseError:
    return ScheduleParseError(
        f"{raw!r} is too far ahead: a one-off is at most {MAX_AHEAD_DAYS} days (100 years) away"
    )


def _clocked(zone: ZoneInfo, moment: datetime, *, now: datetime, raw: str) -> ParsedSchedule:
    # Through UTC: a time at the edge of the calendar that UTC cannot hold overflows here.
    local = moment.astimezone(UTC).astimezone(zone)
    if local - now > timedelta(days=MAX_AHEAD_DAYS):
        raise _too_far_ahead(raw)
    return ParsedSchedule(
        kind="clocked", timezone=zone.key, description=describe_one_off(local, zone), clocked=local
    )


def describe_one_off(moment: datetime, zone: ZoneInfo) -> str:
    """ "once, at 2027-03-12 09:00 EST": a one-off's time in words, in its zone, to the minute."""
    local = moment.astimezone(zone)
    return f"once, at {local:%Y-%m-%d %H:%M} {local.tzname()}"


def _read_datetime(phrase: str, raw: str, zone: ZoneInfo, now: datetime) -> ParsedSchedule | None:
    if not re.match(r"^\d{4}-\d{2}-\d{2}", phrase):
        return None
    text = raw.replace(" ", "T", 1) if re.match(r"^\d{4}-\d{2}-\d{2} ", raw) else raw
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as exc:
        raise ScheduleParseError(
            f"cannot read {raw!r} as a date and time: expected 'YYYY-MM-DD HH:MM' or ISO 8601 "
            f"({exc})"
        ) from exc
    if moment.tzinfo is None:
        moment = resolve_wall_time(moment, zone)
    return _clocked(zone, moment, now=now, raw=raw)
