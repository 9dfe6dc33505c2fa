"""The tournaments' admin: tournaments (their entries inline, their periodic task linked), entries,
and read-only lists of decisions, trades and equity snapshots.

Every change of a tournament's life goes through `tournaments.services` (start, end, cancel,
entering agents, recovering an entry); a refused one (`TournamentError`) is said in a message.
A tournament is added through `tournament_create`, whose checks the add form runs first. Its
market (symbols, initial cash, decision interval, seed) is fixed once it exists: the entries hold
its cash and the market's ticks are its intervals from its start.

"Enter every active trader agent" is a plain action, no intermediate form: it enters each agent
of kind trader that is active and not in the tournament yet, with its default strategy (one that
is changed in the entries inline before the tournament starts).

Writes to the tournament's periodic task go through the scheduler: "Run now" is the periodic
task admin's own run (`RunNowMixin`: `schedule_run_now`, audited), pausing is the scheduler's
pause step (why and until when: `pause_step`) and resuming `schedules_resume`; each needs what
the periodic task admin asks for it.
"""

from __future__ import annotations

import re
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db import transaction
from django.db.models import Count, F, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django_celery_beat.models import PeriodicTask
from kombu.exceptions import OperationalError

from scheduler.admin import ReadOnlyAdmin, RunNowMixin, broker_down_message, pause_step, queue_each
from scheduler.models import Source
from scheduler.permissions import CHANGE_SCHEDULE, RUN_TASKS
from scheduler.schedules import pause_of
from scheduler.services import ScheduleError, schedules_resume, task_enqueue
from tournaments.models import Decision, Entry, EquitySnapshot, Tournament, Trade
from tournaments.selectors import agents_not_entered, tournament_schedule_names
from tournaments.services import (
    TournamentError,
    entry_recover,
    tournament_create,
    tournament_end,
    tournament_initialize_agents,
    tournament_start,
    tournament_update,
)
from tournaments.strategies import STRATEGIES

RUN_AGENTS = "tournaments.run_live_tournament_agents"
RUN_DECISION = "tournaments.run_agent_decision"
START_NOW = "_start_now"  # the change page's "Save and start now" button
# The tournament page lists the top entries inline; the entries admin has all of them.
ENTRIES_SHOWN = 200
MARKET_FIELDS = ["symbols_list", "initial_cash", "decision_interval", "market_seed"]
RECORD_FIELDS = [
    "periodic_task_link",
    "owned_schedules",
    "live_page_link",
    "created_at",
    "updated_at",
]
BY_RANK = F("rank").asc(nulls_last=True)  # not ranked yet: last, on every database


def refusal(exc: TournamentError | ScheduleError) -> str:
    """A service's refusal as a sentence: its messages, without the field names."""
    messages_by_field = exc.errors.values()
    return "; ".join(m if isinstance(m, str) else " ".join(m) for m in messages_by_field)


def _schedules_noun(names: list[str]) -> str:
    return "its periodic task" if len(names) == 1 else f"its {len(names)} periodic tasks"


# --- Forms ---------------------------------------------------------------------------------------


class SymbolsField(forms.CharField):
    """Symbols typed as "ACME, BOLT CRUX": a list (checked and upper-cased by the service)."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return [symbol for symbol in re.split(r"[\s,]+", text) if symbol]


class _DryRun(Exception):
    """Raised to roll back a service call made only for its checks."""


# What `tournament_create` takes, as the add form has them.
ADD_FIELDS = [
    "name",
    "starts_at",
    "ends_at",
    "symbols",
    "initial_cash",
    "decision_interval",
    "market_seed",
]


class TournamentAddForm(forms.ModelForm[Tournament]):
    symbols = SymbolsField(help_text="Separated by commas or spaces, e.g. ACME, BOLT, CRUX.")

    class Meta:
        model = Tournament
        fields = ADD_FIELDS

    def service_values(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in ADD_FIELDS}

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if self.errors:
            return cleaned  # a field that did not even parse: the service needs them all
        # The service's own checks and messages, with nothing kept: the row is made on save.
        try:
            with transaction.atomic():
                tournament_create(**self.service_values())
                raise _DryRun
        except _DryRun:
            pass
        except TournamentError as exc:
            for field, message in exc.errors.items():
                self.add_error(field if field in self.fields else None, message)
        return cleaned


class TournamentChangeForm(forms.ModelForm[Tournament]):
    class Meta:
        model = Tournament
        fields = ["name", "starts_at", "ends_at"]

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        # The database's check, said here: once live, starts_at is not a field of the form (and
        # Django checks no constraint on a field the form does not have).
        starts_at = cleaned.get("starts_at", self.instance.starts_at)
        ends_at = cleaned.get("ends_at")
        if "ends_at" in self.fields and ends_at is not None and ends_at <= starts_at:
            self.add_error("ends_at", "must be after starts_at")
        return cleaned


class EntryForm(forms.ModelForm[Entry]):
    strategy = forms.ChoiceField(choices=[(name, name) for name in STRATEGIES])

    class Meta:
        model = Entry
        fields = ["strategy"]


# --- Tournaments ---------------------------------------------------------------------------------


ENTRY_FIELDS = (
    "agent",
    "strategy",
    "cash",
    "equity",
    "rank",
    "status",
    "heartbeat_at",
    "decision_count",
)


class EntryInline(admin.TabularInline[Entry, Tournament]):
    model = Entry
    form = EntryForm
    fields = ENTRY_FIELDS
    readonly_fields = tuple(name for name in ENTRY_FIELDS if name != "strategy")
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = f"entries (the first {ENTRIES_SHOWN} by rank)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # entered by tournament_initialize_agents (the action, the task)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The strategy is chosen before the start: a strategy changed mid-way would decide on
        # the memory of another.
        scheduled = obj is None or obj.status == Tournament.Status.SCHEDULED
        return scheduled and super().has_change_permission(request, obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Entry]:
        queryset = super().get_queryset(request).select_related("agent")
        match = request.resolver_match
        object_id = unquote(str(match.kwargs.get("object_id", ""))) if match else ""
        if object_id.isdigit():
            first = (
                Entry.objects.filter(tournament_id=int(object_id))
                .order_by(BY_RANK, "id")
                .values_list("pk", flat=True)[:ENTRIES_SHOWN]
            )
            queryset = queryset.filter(pk__in=list(first))
        return queryset.order_by(BY_RANK, "id")


@admin.register(Tournament)
class TournamentAdmin(RunNowMixin, admin.ModelAdmin[Tournament]):
    list_display = [
        "name",
        "status",
        "starts_at",
        "ends_at",
        "entry_count",
        "periodic_task_link",
        "live_page_link",
    ]
    list_filter = ["status"]
    search_fields = ["name"]
    date_hierarchy = "starts_at"
    inlines = [EntryInline]
    change_form_template = "tournaments/admin_tournament_change_form.html"
    actions = [
        "start_tournaments",
        "end_tournaments",
        "cancel_tournaments",
        "enter_trader_agents",
        "run_now",
        "pause_schedules",
        "resume_schedules",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tournament]:
        return (
            super()
            .get_queryset(request)
            .select_related("periodic_task__options__paused_by")
            .annotate(entry_total=Count("entries"))
        )

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # One by one from its page: a live tournament is not deleted (its periodic task would
        # go on running the agents of a tournament that is gone).
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.status == Tournament.Status.LIVE:
            return False
        return super().has_delete_permission(request, obj)

    # --- The form: added through the service, its market fixed afterwards -----------------------

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        kwargs["form"] = TournamentAddForm if obj is None else TournamentChangeForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return [(None, {"fields": ADD_FIELDS})]
        return [
            (None, {"fields": ["name", "status", "starts_at", "ends_at"]}),
            (
                "Market",
                {
                    "fields": MARKET_FIELDS,
                    "description": "Fixed when the tournament is made: its entries hold the "
                    "initial cash, and its ticks are decision intervals from its start.",
                },
            ),
            ("Schedule and record", {"fields": RECORD_FIELDS}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        readonly = ["status", *MARKET_FIELDS, *RECORD_FIELDS]
        if obj.status != Tournament.Status.SCHEDULED:
            readonly.append("starts_at")  # the market's ticks count from it
        if obj.status in (Tournament.Status.FINISHED, Tournament.Status.CANCELLED):
            readonly.append("ends_at")
        return readonly

    def save_model(self, request: HttpRequest, obj: Tournament, form: Any, change: bool) -> None:
        if change:
            # Through the service: the periodic task's start and expiry follow the dates.
            tournament_update(
                tournament=obj,
                name=form.cleaned_data.get("name"),
                starts_at=form.cleaned_data.get("starts_at"),
                ends_at=form.cleaned_data.get("ends_at"),
            )
            return
        created = tournament_create(**form.service_values())
        obj.pk = created.pk
        obj.refresh_from_db()
        obj._state.adding = False

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if change and START_NOW in request.POST:
            # After the inline entries are saved: a strategy changed with it counts from the
            # start. An end changed in the same form is the new end; else it keeps its duration.
            new_end = form.cleaned_data.get("ends_at") if "ends_at" in form.changed_data else None
            self._start(request, form.instance, ends_at=new_end)

    def response_change(self, request: HttpRequest, obj: Tournament) -> HttpResponse:
        if START_NOW in request.POST:
            return HttpResponseRedirect(request.get_full_path())
        return super().response_change(request, obj)

    def _start(self, request: HttpRequest, tournament: Tournament, **kwargs: Any) -> None:
        try:
            started = tournament_start(tournament=tournament, actor=request.user, **kwargs)
        except (TournamentError, ScheduleError) as exc:
            self.message_user(
                request, f"{tournament.name} was not started: {refusal(exc)}", messages.ERROR
            )
            return
        starts, ends = timezone.localtime(started.starts_at), timezone.localtime(started.ends_at)
        self.message_user(
            request,
            f"Started: {started.name}, live from {starts:%Y-%m-%d %H:%M} to "
            f"{ends:%Y-%m-%d %H:%M} ({timezone.get_current_timezone_name()}).",
            messages.SUCCESS,
        )

    # --- Columns and read-only fields ------------------------------------------------------------

    @admin.display(description="Entries", ordering="entry_total")
    def entry_count(self, obj: Tournament) -> int:
        return int(getattr(obj, "entry_total", 0))

    @admin.display(description="Symbols")
    def symbols_list(self, obj: Tournament) -> str:
        return ", ".join(obj.symbols)

    @admin.display(description="Periodic task")
    def periodic_task_link(self, obj: Tournament) -> str:
        if obj.periodic_task is None:
            return "none yet (made when it starts)" if obj.pk else ""
        url = reverse("admin:django_celery_beat_periodictask_change", args=[obj.periodic_task.pk])
        state = "" if obj.periodic_task.enabled else " (paused)"
        if (pause := pause_of(obj.periodic_task)) is not None:
            state = f" ({pause.text(timezone.get_current_timezone())})"
        return format_html('<a href="{}">{}</a>{}', url, obj.periodic_task.name, state)

    @admin.display(description="Other schedules")
    def owned_schedules(self, obj: Tournament) -> str:
        """The schedules whose task's parameters name the tournament (tournaments/owners.py),
        its own periodic task aside."""
        if obj.pk is None:
            return ""
        names = tournament_schedule_names(tournaments=[obj])[obj.pk]
        own = obj.periodic_task.name if obj.periodic_task is not None else None
        others = PeriodicTask.objects.filter(name__in=[n for n in names if n != own]).order_by(
            "name"
        )
        if not others:
            return "none"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>{}',
            (
                (
                    reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]),
                    task.name,
                    "" if task.enabled else " (disabled)",
                )
                for task in others
            ),
        )

    @admin.display(description="Live page")
    def live_page_link(self, obj: Tournament) -> str:
        if obj.pk is None:
            return ""
        return format_html('<a href="{}">Open</a>', reverse("tournaments-page", args=[obj.pk]))

    # --- Life: start, end, cancel, enter agents --------------------------------------------------

    def _each(
        self, request: HttpRequest, queryset: QuerySet[Tournament], verb: str, work: Any
    ) -> None:
        done = []
        for tournament in queryset.order_by("pk"):
            try:
                work(tournament)
            except (TournamentError, ScheduleError) as exc:
                self.message_user(
                    request, f"{tournament.name} was not {verb}: {refusal(exc)}", messages.ERROR
                )
            else:
                done.append(tournament.name)
        if done:
            self.message_user(request, f"{verb.capitalize()}: {', '.join(done)}.", messages.SUCCESS)

    @admin.action(
        description="Start the selected tournaments now (each keeps its duration)",
        permissions=["change"],
    )
    def start_tournaments(self, request: HttpRequest, queryset: QuerySet[Tournament]) -> None:
        self._each(
            request,
            queryset,
            "started",
            lambda tournament: tournament_start(tournament=tournament, actor=request.user),
        )

    @admin.action(description="End the selected tournaments now", permissions=["change"])
    def end_tournaments(self, request: HttpRequest, queryset: QuerySet[Tournament]) -> None:
        self._each(
            request,
            queryset,
            "ended",
            lambda tournament: tournament_end(tournament=tournament, actor=request.user),
        )

    @admin.action(description="Cancel the selected tournaments", permissions=["change"])
    def cancel_tournaments(self, request: HttpRequest, queryset: QuerySet[Tournament]) -> None:
        self._each(
            request,
            queryset,
            "cancelled",
            lambda tournament: tournament_end(
                tournament=tournament, cancelled=True, actor=request.user
            ),
        )

    @admin.action(
        description="Enter every active trader agent not in the selected tournaments yet",
        permissions=["change"],
    )
    def enter_trader_agents(self, request: HttpRequest, queryset: QuerySet[Tournament]) -> None:
        for tournament in queryset.order_by("pk"):
            try:
                entered = tournament_initialize_agents(
                    tournament=tournament, agents=agents_not_entered(tournament=tournament)
                )
            except TournamentError as exc:
                self.message_user(
                    request,
                    f"No agent was entered into {tournament.name}: {refusal(exc)}",
                    messages.ERROR,
                )
                continue
            if entered:
                noun = "agent" if len(entered) == 1 else "agents"
                self.message_user(
                    request,
                    f"{len(entered)} {noun} entered into {tournament.name}.",
                    messages.SUCCESS,
                )
            else:
                self.message_user(
                    request,
                    f"{tournament.name}: every active trader agent is in it already.",
                    messages.WARNING,
                )

    # --- Its periodic task: run now, pause, resume -----------------------------------------------

    def has_schedules_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(CHANGE_SCHEDULE))

    @admin.action(
        description="Run the agents of the selected tournaments now", permissions=["schedules"]
    )
    def run_now(self, request: HttpRequest, queryset: QuerySet[Tournament]) -> None:
        names = []
        for tournament in queryset.select_related("periodic_task").order_by("pk"):
            if tournament.status != Tournament.Status.LIVE:
                self.message_user(
                    request,
                    f"{tournament.name} was not run: it is {tournament.status}, and only a "
                    "live tournament's agents decide.",
                    messages.WARNING,
                )
            elif tournament.periodic_task is not None:
                names.append(tournament.periodic_task.name)
            else:  # its periodic task was deleted: the same task, queued by itself
                self._enqueue(request, tournament)
        self.run_named(request, names)

    def _enqueue(self, request: HttpRequest, tournament: Tournament) -> None:
        try:
            task_id = task_enqueue(task=RUN_AGENTS, params={"tournament_id": tournament.pk})
        except ScheduleError as exc:
            self.message_user(
                request, f"{tournament.name} was not run: {refusal(exc)}", messages.ERROR
            )
        except OperationalError as exc:
            self.message_user(
                request,
                f"{tournament.name} was not run: {broker_down_message(exc)}",
                messages.ERROR,
            )
        else:
            self.message_user(
                request, f"Queued to run now: the agents of {tournament.name} (task id {task_id})."
            )

    def _with_tasks(
        self, request: HttpRequest, queryset: QuerySet[Tournament], *, resuming: bool
    ) -> dict[Tournament, list[str]]:
        """The selected tournaments whose periodic tasks (its own and those whose parameters
        name it) may be paused (resumed: only a live one's), with their names; each other one
        said in a message."""
        tournaments = list(queryset.select_related("periodic_task").order_by("pk"))
        names = tournament_schedule_names(tournaments=tournaments)
        chosen = {}
        for tournament in tournaments:
            if not names[tournament.pk]:
                self.message_user(
                    request,
                    f"{tournament.name} has no periodic task: it is made when it starts.",
                    messages.WARNING,
                )
            elif resuming and tournament.status != Tournament.Status.LIVE:
                self.message_user(
                    request,
                    f"{tournament.name} was not resumed: it is {tournament.status}, and only a "
                    "live tournament's agents run.",
                    messages.WARNING,
                )
            else:
                chosen[tournament] = names[tournament.pk]
        return chosen

    @admin.action(
        description="Pause the schedules of the selected tournaments (why, until when)…",
        permissions=["schedules"],
    )
    def pause_schedules(self, request: HttpRequest, queryset: QuerySet[Tournament]) -> Any:
        if request.POST.get("post") == "yes":  # the second step: warned on the first one
            chosen = list(queryset.select_related("periodic_task").order_by("pk"))
            owned = tournament_schedule_names(tournaments=chosen)
            tournaments = {t: owned[t.pk] for t in chosen if owned[t.pk]}
        else:
            tournaments = self._with_tasks(request, queryset, resuming=False)
        if not tournaments:
            return None
        return pause_step(
            self,
            request,
            names=[name for names in tournaments.values() for name in names],
            selected=[(t.pk, f"{t.name}: {_schedules_noun(n)}") for t, n in tournaments.items()],
            action="pause_schedules",
            title="Pause the schedules of tournaments",
        )

    @admin.action(
        description="Resume the schedules of the selected live tournaments",
        permissions=["schedules"],
    )
    def resume_schedules(self, request: HttpRequest, queryset: QuerySet[Tournament]) -> None:
        chosen = self._with_tasks(request, queryset, resuming=True)
        names = [name for names in chosen.values() for name in names]
        if not names:
            return
        try:
            changed = len(schedules_resume(names=names, actor=request.user, source=Source.ADMIN))
        except ScheduleError as exc:
            self.message_user(request, f"Nothing was resumed: {refusal(exc)}", messages.ERROR)
            return
        noun = "schedule" if changed == 1 else "schedules"
        self.message_user(request, f"{changed} {noun} resumed.", messages.SUCCESS)


# --- Entries -------------------------------------------------------------------------------------


@admin.register(Entry)
class EntryAdmin(admin.ModelAdmin[Entry]):
    form = EntryForm
    list_display = [
        "agent",
        "tournament",
        "strategy",
        "rank",
        "equity",
        "cash",
        "status",
        "heartbeat_at",
        "decision_count",
        "last_tick",
    ]
    list_filter = ["status", "strategy", "tournament"]
    list_select_related = ["agent", "tournament"]
    search_fields = ["agent__name", "agent__slug", "tournament__name"]
    fields = [
        "tournament",
        "agent",
        "strategy",
        "status",
        "rank",
        "equity",
        "cash",
        "positions",
        "heartbeat_at",
        "decision_count",
        "last_tick",
        "state",
        "created_at",
        "updated_at",
    ]
    actions = ["recover_entries", "run_decisions"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # entered by tournament_initialize_agents (the tournament's action)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # its trades and decisions are the tournament's record

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        editable = obj is not None and obj.tournament.status == Tournament.Status.SCHEDULED
        return [name for name in self.fields if not (editable and name == "strategy")]

    @admin.action(
        description="Recover the selected entries (portfolio rebuilt from their trades)",
        permissions=["change"],
    )
    def recover_entries(self, request: HttpRequest, queryset: QuerySet[Entry]) -> None:
        recovered = []
        for entry in queryset.select_related("agent", "tournament").order_by("pk"):
            if entry.tournament.status != Tournament.Status.LIVE:
                # A recovered entry is active again: in a tournament that is over it is not.
                self.message_user(
                    request,
                    f"{entry} was not recovered: the tournament is {entry.tournament.status}.",
                    messages.WARNING,
                )
                continue
            recovered.append(entry_recover(entry=entry))
        if recovered:
            said = ", ".join(f"{e.agent.name} ({e.cash} cash)" for e in recovered)
            self.message_user(request, f"Recovered: {said}.", messages.SUCCESS)

    def has_run_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(RUN_TASKS))

    @admin.action(description="Run one decision of the selected entries now", permissions=["run"])
    def run_decisions(self, request: HttpRequest, queryset: QuerySet[Entry]) -> None:
        live = []
        for entry in queryset.select_related("agent", "tournament").order_by("pk"):
            if entry.tournament.status != Tournament.Status.LIVE:
                self.message_user(
                    request,
                    f"{entry} was not run: the tournament is {entry.tournament.status}.",
                    messages.WARNING,
                )
                continue
            live.append(entry)
        queue_each(
            self,
            request,
            live,
            queue=lambda entry: task_enqueue(
                task=RUN_DECISION,
                params={"entry_id": entry.pk},
                owner=("tournament", entry.tournament_id),
            ),
            named=str,
            queued_as=lambda entry, task_id: f"{entry.agent.name} (task id {task_id})",
            done="Queued a decision of",
            refused=(ScheduleError,),
            refusal=lambda exc: refusal(cast(ScheduleError, exc)),
        )


# --- Decisions, trades, equity: the record ------------------------------------------------------


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ["entry", "tick", "created_at", "task_id"]
    list_filter = [("entry__tournament", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["entry__agent", "entry__tournament"]
    search_fields = ["entry__agent__name", "entry__agent__slug", "task_id", "reasoning"]
    date_hierarchy = "created_at"


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = ["executed_at", "entry", "side", "quantity", "symbol", "price", "tick"]
    list_filter = ["side", "symbol", ("entry__tournament", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["entry__agent", "entry__tournament"]
    search_fields = ["entry__agent__name", "entry__agent__slug", "symbol"]
    date_hierarchy = "executed_at"


@admin.register(EquitySnapshot)
class EquitySnapshotAdmin(ReadOnlyAdmin):
    list_display = ["at", "entry", "tick", "equity", "cash", "rank"]
    list_filter = [("entry__tournament", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["entry__agent", "entry__tournament"]
    search_fields = ["entry__agent__name", "entry__agent__slug"]
    date_hierarchy = "at"
