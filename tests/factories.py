"""Factories for the models tests need; rows go through the services where one exists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission, User
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from agents import services as agent_services
from agents.models import Agent, Session
from scheduler.models import AlertChannel, AlertRule, DeadLetter, Incident, Source
from scheduler.protocol import EventObject, EventPayload
from scheduler.services import schedule_create
from scheduler.services.alerts import RuleInput, channel_save, rule_save
from scheduler.services.incidents import Match, incident_match
from scheduler.worker.schedule_state import schedule_states_rebuild
from tournaments import services as tournament_services
from tournaments.models import Entry, Tournament


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    is_staff = True
    password = factory.django.Password("correct horse battery staple")


def permission_named(name: str) -> Permission:
    """'app_label.codename' -> its Permission row."""
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def user_with(*permissions: str, staff: bool = True, superuser: bool = False) -> User:
    """A user holding the permissions named ('app_label.codename')."""
    user = UserFactory.create(is_staff=staff, is_superuser=superuser)
    for name in permissions:
        user.user_permissions.add(permission_named(name))
    return user


class TaskResultFactory(factory.django.DjangoModelFactory[TaskResult]):
    class Meta:
        model = TaskResult
        skip_postgeneration_save = True

    task_id = factory.Faker("uuid4")
    task_name = "scheduler.ping"
    status = "SUCCESS"
    task_kwargs = '"{}"'
    task_args = '"()"'
    result = '{"pong": true}'

    @factory.post_generation
    def schedule_state(obj: TaskResult, create: bool, extracted: Any, **kwargs: Any) -> None:
        # Written past the result backend: the periodic task's latest run is rebuilt, as it is
        # after retention.
        name = getattr(obj, "periodic_task_name", None)
        if create and name:
            schedule_states_rebuild(names=[name])


def stored_run(
    task_id: str,
    *,
    status: str,
    started: datetime | None,
    done: datetime,
    **fields: Any,
) -> TaskResult:
    """A run's stored result with the times given (the backend would stamp them with now)."""
    result = TaskResultFactory.create(task_id=task_id, status=status, **fields)
    # date_created and date_done are automatic: set afterwards, then the state rebuilt.
    TaskResult.objects.filter(pk=result.pk).update(
        date_created=started or done, date_started=started, date_done=done
    )
    name = fields.get("periodic_task_name")
    if name:
        schedule_states_rebuild(names=[name])
    result.refresh_from_db()
    return result


_counter = iter(range(1, 1_000_000))


def make_schedule(**overrides: Any) -> PeriodicTask:
    """A periodic task created through the service, as staff would create one."""
    fields: dict[str, Any] = {
        "name": f"schedule {next(_counter)}",
        "task": "scheduler.ping",
        "schedule": "every 5 minutes",
        "source": Source.SYSTEM,
    }
    fields.update(overrides)
    return schedule_create(**fields)


def make_dead_letter(**fields: Any) -> DeadLetter:
    """An open dead letter of `scheduler.sleep` (a catalog task with parameters), as the worker
    keeps one when a run fails its last retry; `fields` replace any column."""
    n = next(_counter)
    values: dict[str, Any] = {
        "task_id": f"failed-{n:04d}",
        "task_name": "scheduler.sleep",
        "kwargs": {"seconds": 0.25},
        "error": "RuntimeError: the run broke",
        "attempts": 1,
        "queue": "default",
        "failed_at": datetime(2026, 11, 5, 9, 0, tzinfo=UTC) + timedelta(minutes=n),
    }
    values.update(fields)
    return DeadLetter.objects.create(**values)


def event_payload_of(*, object: tuple[str, object] | None = None, **fields: Any) -> EventPayload:
    """A live event as the protocol types it (scheduler/protocol.py's `EventPayload`), with
    `fields` set and the rest empty; `object=("tournament", 3)` names its domain object."""
    payload = EventPayload(
        id=None,
        type="task.started",
        task_id="",
        task_name="",
        periodic_task_name="",
        state="",
        worker="",
        duration=None,
        message="",
        at=datetime.now().astimezone().isoformat(),
        object=None if object is None else EventObject(type=object[0], id=str(object[1])),
        data={},
    )
    unknown = set(fields) - set(EventPayload.__annotations__)
    assert not unknown, f"not in an event payload: {sorted(unknown)}"
    payload.update(fields)  # type: ignore[typeddict-item]
    return payload


# --- agents and tournaments ----------------------------------------------------------------------


def make_agent(name: str = "Helper", **fields: Any) -> Agent:
    """An agent created through its service."""
    return agent_services.agent_create(name=name, **fields)


def make_session(agent: Agent | None = None, **fields: Any) -> Session:
    """A session opened through the service, with `agent` or a new agent named Helper."""
    return agent_services.session_open(agent=agent or make_agent(), **fields)


def make_trader(name: str, **fields: Any) -> Agent:
    """A trading agent created through its service."""
    return make_agent(name, kind="trader", **fields)


TOURNAMENT_START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def make_tournament(name: str = "Spring cup", **fields: Any) -> Tournament:
    """A tournament created through its service: four hours from TOURNAMENT_START on two symbols,
    a decision a minute, market seed 7; `fields` override any of it."""
    values: dict[str, Any] = {
        "name": name,
        "starts_at": TOURNAMENT_START,
        "ends_at": TOURNAMENT_START + timedelta(hours=4),
        "symbols": ["ACME", "BOLT"],
        "decision_interval": 60,
        "market_seed": 7,
    }
    values.update(fields)
    return tournament_services.tournament_create(**values)


def make_entries(
    tournament: Tournament,
    *names: str,
    strategy: str = "buy_and_hold",
    strategies: list[str] | None = None,
) -> list[Entry]:
    """A new trader for each of `names`, entered in `tournament` through the service with
    `strategy`, or each with its own of `strategies` (one per name); the tournament's entries."""
    agents = [make_trader(name) for name in names]
    chosen = [strategy] * len(agents) if strategies is None else strategies
    tournament_services.tournament_initialize_agents(
        tournament=tournament,
        agents=agents,
        strategies={agent.pk: name for agent, name in zip(agents, chosen, strict=True)},
    )
    return list(tournament.entries.order_by("id"))


# --- alerts --------------------------------------------------------------------------------------


def make_channel(name: str = "ops", kind: str = "record", **config: Any) -> AlertChannel:
    """An alert channel saved through its service (kind "record": tests/alert_kinds.py)."""
    return channel_save(name=name, kind=kind, config=config, source=Source.SYSTEM)


def make_rule(
    name: str = "failures",
    trigger: str = "failed",
    *,
    channels: tuple[str, ...] = ("ops",),
    **fields: Any,
) -> AlertRule:
    """An alert rule saved through its service, notifying `channels`."""
    return rule_save(
        RuleInput(name=name, trigger=trigger, channels=channels, **fields), source=Source.SYSTEM
    )


def make_incident(
    rule: AlertRule,
    subject: str = "schedule:nightly",
    title: str = "schedule 'nightly' failed",
    *,
    at: datetime | None = None,
    object: tuple[str, str] | None = None,
) -> Incident:
    """An incident of `rule` about `subject`, opened by the engine (its event, its "down")."""
    match = Match(rule=rule, subject=subject, title=title, details={"error": "boom"}, object=object)
    return incident_match(match, now=at)
