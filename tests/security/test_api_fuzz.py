"""Schemathesis against our own `/api/schema/`, in process: no answer >= 500, every 4xx is JSON.

Every operation of the schema is fuzzed in three modes:

- positive: data that fits the schema;
- negative: data that does not;
- mutated: one request that fits, then, one at a time, each body field and query parameter the
  schema declares set to each value of a dictionary of values known to break readers (a zone
  name that is a directory, a date at an end of the calendar, JSON nested thousands deep, a whole
  number beyond 64 bits, an interval of a billion days, ...).

Positive and negative run once with generated path parameters and once with the ids of real
rows (a schedule, an agent, a session, a live tournament and its entry, a stored task result);
mutated runs on the real rows. All as a superuser with a DRF token, so writes are exercised too.
Deterministic (derandomized) and bounded (`MAX_EXAMPLES` per operation, mode and kind of path).

No worker runs: queued tasks go to this run's Redis. The health endpoint is healthy because a
worker is recorded as seen (without one it answers 503 by design). `?wait=` is fuzzed through
the view's validation; the wait itself is cut to a few milliseconds, so that a valid 30 s wait
on a task that never finishes does not hold the run.

The figures go to stdout and to benchmarks/results/fuzz_api.json.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import HypothesisException
from rest_framework.authtoken.models import Token
from rest_framework.throttling import SimpleRateThrottle
from schemathesis.core.result import Err, Ok
from werkzeug.test import Client as WerkzeugClient

from agents.models import Agent
from agents.services import agent_create, session_open
from agents.signatures import HEADER, sign
from scheduler.api import waiting
from scheduler.models import AlertChannel, Backfill, Source
from scheduler.observability import worker_pools
from scheduler.observability.worker_heartbeats import forget_worker, record_worker_seen
from scheduler.services import RuleInput, rule_save
from scheduler.services import queues as queue_services
from scheduler.services.incidents import Match, incident_match
from tests.factories import TaskResultFactory, make_dead_letter, make_schedule, user_with
from tournaments import services as tournament_services

pytestmark = [
    pytest.mark.security,
    pytest.mark.django_db(transaction=True),
    # `?wait=` answers with an async stream: under WSGI Django reads it synchronously, and says so.
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators"),
]

MAX_EXAMPLES = 10
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "fuzz_api.json"
WORKER = "fuzz@security-tests"
TASK_ID = "0b7e9a4e-5f0c-4c55-9f5e-2f0c1d9e8a11"
# Writes that remove the row the other operations' fixed path parameters point at go last.
LAST_METHODS = ("DELETE",)

# Stands for JSON nested 5000 deep, written in once the body is serialized.
DEEP = "<nested 5000 deep>"
# Set in every body field, one at a time.
NASTY_VALUES: list[Any] = [
    "a" * 10_000,
    "America",  # a directory of the zone database, not a zone
    "9999-12-31T23:59:59-05:00",  # a time UTC cannot hold
    2**70,
    1e308,
    None,
    {"a": {"b": [1, "x"]}},
    DEEP,
]
# Set in every query parameter, one at a time.
NASTY_QUERY = ["9" * 30, "nan", "1e309", "America", "0001-01-01T00:00:00+05:00", "a" * 2000]
# Set in the fields of these names too: what their readers in particular choke on.
NASTY_BY_NAME: dict[str, list[Any]] = {
    "schedule": [
        "in 99999999999 days",
        "every 99999999999 days",
        "9999-12-31 23:59",
        "0001-01-01 00:00",
        "*/999999999999999999999 * * * *",
        "0 0 * * */2,1",
        "0 " + ",".join(["1"] * 60) + " * * *",
    ],
    "timezone": ["a" * 300, "Europe/", "UTC\x00"],
    "params": [{"days": 2**70}, {"x": "a" * 100_000}, [1], "{}"],
    "since": ["9999-12-31T23:59:59-05:00", "0001-01-01"],
    "wait": ["0", "-1", "inf", "31"],
}


@dataclass
class Failure:
    method: str
    path: str
    status: int | str
    why: str
    body: str

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status} ({self.why}): {self.body}"


@dataclass
class Tally:
    requests: int = 0
    operations: set[str] = field(default_factory=set)
    server_errors: int = 0
    non_json_4xx: int = 0
    by_mode: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)


@dataclass
class World:
    """Real rows, so that fixed path parameters reach existing objects."""

    path_parameters: dict[str, Any]
    agent: Agent
    # Values that pass, set in a mutated request's other fields so that it gets far.
    good_values: dict[str, Any]


@pytest.fixture
def world() -> World:
    # Named as the rule and the channel are: the backfill route takes a schedule's name.
    schedule = make_schedule(name="fuzz")
    backfill = Backfill.objects.create(
        periodic_task=schedule,
        periodic_task_name=schedule.name,
        start=timezone.now(),
        end=timezone.now(),
        overlap="buffer_all",
        source=Source.API,
    )
    agent = agent_create(name="Fuzzy trader", slug="fuzzy", kind=Agent.Kind.TRADER)
    session = session_open(agent=agent)
    now = timezone.now()
    cup = tournament_services.tournament_create(
        name="Fuzz cup",
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
        symbols=["ACME"],
        decision_interval=60,
    )
    tournament_services.tournament_initialize_agents(tournament=cup, agents=[agent])
    tournament_services.tournament_start(tournament=cup)
    entry = cup.entries.get()
    TaskResultFactory.create(task_id=TASK_ID, task_kwargs='"{}"')
    dead_letter = make_dead_letter()
    # A rule and a channel of one name (both routes take `name`), and an open incident.
    AlertChannel.objects.create(name="fuzz", kind="signal")
    rule = rule_save(RuleInput(name="fuzz", trigger="failed"), source=Source.SYSTEM)
    incident = incident_match(Match(rule=rule, subject="task:x", title="x failed", details={}))
    return World(
        path_parameters={
            "name": "fuzz",
            "incident_id": incident.pk,
            "id": schedule.pk,
            "dead_letter_id": dead_letter.pk,
            "backfill_id": backfill.pk,
            "slug": agent.slug,
            "session_id": session.pk,
            "tournament_id": cup.pk,
            "entry_id": entry.pk,
            "task_id": TASK_ID,
            # Recorded as seen, never answering: the workers' controls answer 404 for it.
            "hostname": WORKER,
        },
        agent=agent,
        good_values={
            "task": "scheduler.cleanup_results",
            "schedule": "every 5 minutes",
            "timezone": "Europe/London",
            "agent": agent.slug,
            "text": "hello",
            "type": "message",
            "conversation": "chat-1",
            "message_id": "m-1",
            "from": "2025-01-01",
            "to": "2025-01-02",
        },
    )


@pytest.fixture
def token() -> str:
    return Token.objects.create(user=user_with(superuser=True)).key


@pytest.fixture
def unthrottled(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    # Thousands of requests a minute from one user: the rates are not what is tested here.
    for scope in ("user", "anon"):
        monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, scope, "1000000/minute")
    settings.AGENT_INBOUND_THROTTLE_RATE = "1000000/minute"


@pytest.fixture
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    wait = waiting.TaskWaiter.wait

    async def shortened(self: waiting.TaskWaiter, timeout: float) -> Any:
        return await wait(self, min(timeout, 0.01))

    monkeypatch.setattr(waiting.TaskWaiter, "wait", shortened)
    # No worker answers the workers' or the queues' controls here: a short wait for the answer
    # never coming.
    monkeypatch.setattr(worker_pools, "REPLY_TIMEOUT", 0.01)
    monkeypatch.setattr(queue_services, "REPLY_TIMEOUT", 0.01)


@pytest.fixture
def a_worker_is_up() -> Iterator[None]:
    record_worker_seen(WORKER)
    try:
        yield
    finally:
        forget_worker(WORKER)


def test_it_answers_every_fuzzed_request_below_500_and_every_4xx_as_json(
    world: World, token: str, unthrottled: None, short_waits: None, a_worker_is_up: None
) -> None:
    app = get_wsgi_application()
    headers = {"Authorization": f"Token {token}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", app, headers=headers)
    results = list(schema.get_all_operations())
    unreadable = [result.err() for result in results if isinstance(result, Err)]
    assert not unreadable, unreadable
    operations = sorted(
        (result.ok() for result in results if isinstance(result, Ok)),
        key=lambda op: (op.method.upper() in LAST_METHODS, op.path, op.method),
    )
    assert len(operations) >= 25, [op.label for op in operations]
    fuzzer = Fuzzer(client=WerkzeugClient(app), headers=headers, world=world)
    started = time.perf_counter()

    for operation in operations:
        fuzzer.tally.operations.add(operation.label)
        real_rows = _fixed_path(operation, world)
        for mode in ("positive", "negative"):
            for path_parameters in (None, real_rows) if real_rows else (None,):
                fuzzer.generated(operation, mode, path_parameters)
        fuzzer.mutated(operation, real_rows or None)

    elapsed = time.perf_counter() - started
    tally = fuzzer.tally
    figures = {
        "requests": tally.requests,
        "operations": len(tally.operations),
        "responses_5xx": tally.server_errors,
        "non_json_4xx": tally.non_json_4xx,
        "requests_by_mode": tally.by_mode,
        "statuses": dict(sorted(tally.statuses.items())),
        "max_examples_per_operation_mode_and_path": MAX_EXAMPLES,
        "seconds": round(elapsed, 1),
    }
    print(f"\nAPI fuzz: {json.dumps(figures)}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")

    assert not tally.failures, "\n".join(map(str, tally.failures))
    assert tally.requests >= len(operations) * MAX_EXAMPLES
    assert tally.by_mode.get("mutated", 0) > 500  # every declared field got the dictionary


def _fixed_path(operation: Any, world: World) -> dict[str, Any]:
    return {
        parameter.name: world.path_parameters[parameter.name]
        for parameter in operation.path_parameters
    }


def _body_names(operation: Any) -> list[str]:
    """The properties the operation's JSON bodies declare (of every variant of a oneOf)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            names.update(node.get("properties") or {})
            for key in ("oneOf", "anyOf", "allOf"):
                for variant in node.get(key) or []:
                    walk(variant)

    for body in operation.body:
        walk(body.definition.get("schema"))
    return sorted(names)


@dataclass
class Fuzzer:
    client: WerkzeugClient
    headers: dict[str, str]
    world: World
    tally: Tally = field(default_factory=Tally)

    def generated(self, operation: Any, mode: str, path_parameters: dict[str, Any] | None) -> None:
        """MAX_EXAMPLES requests made by schemathesis, fitting the schema or not."""
        strategy = self._strategy(operation, mode, path_parameters)
        if strategy is None:
            return

        @_bounded(MAX_EXAMPLES)
        @given(case=strategy)
        def run(case: Any) -> None:
            self.send(case, mode)

        _run(run)

    def mutated(self, operation: Any, path_parameters: dict[str, Any] | None) -> None:
        """A request that fits, sent again with each field set to each value of the dictionary."""
        mutations = [
            ("body", name, value)
            for name in _body_names(operation)
            for value in [*NASTY_VALUES, *NASTY_BY_NAME.get(name, [])]
        ] + [
            ("query", parameter.name, value)
            for parameter in operation.query
            for value in [*NASTY_QUERY, *NASTY_BY_NAME.get(parameter.name, [])]
        ]
        strategy = self._strategy(operation, "positive", path_parameters)
        if not mutations or strategy is None:
            return

        @_bounded(1)
        @given(case=strategy)
        def run(case: Any) -> None:
            for mutation in mutations:
                self.send(case, "mutated", mutation=mutation)

        _run(run)

    def _strategy(
        self, operation: Any, mode: str, path_parameters: dict[str, Any] | None
    ) -> Any | None:
        generation_mode = (
            schemathesis.GenerationMode.NEGATIVE
            if mode == "negative"
            else schemathesis.GenerationMode.POSITIVE
        )
        try:
            return operation.as_strategy(
                generation_mode=generation_mode,
                headers=self.headers,
                path_parameters=path_parameters,
            )
        except Exception:  # nothing of this operation can be made invalid: no negative cases
            return None

    def send(self, case: Any, mode: str, *, mutation: tuple[str, str, Any] | None = None) -> None:
        request = case.as_transport_kwargs(headers=self.headers)
        if mutation is not None:
            self._mutate(request, *mutation)
        if "json" in request:
            text = json.dumps(request.pop("json"))
            request["data"] = text.replace(json.dumps(DEEP), "[" * 5000 + "]" * 5000).encode()
        agent = self.world.agent
        if case.operation.path.startswith("/api/inbound/") and request["path"].endswith(
            f"/{agent.slug}/"
        ):
            # Signed, so that the body itself gets past the signature check and is read.
            request["headers"][HEADER] = sign(agent.webhook_secret, request.get("data") or b"")
        if case.operation.path == "/api/health/":
            record_worker_seen(WORKER)
        self._record(request, mode)

    def _mutate(self, request: dict[str, Any], where: str, name: str, value: Any) -> None:
        if where == "query":
            query = request.get("query_string")
            request["query_string"] = {**(query if isinstance(query, dict) else {}), name: value}
            return
        body = request.get("json")
        body = dict(body) if isinstance(body, dict) else {}
        for key, good in self.world.good_values.items():
            if key in body:
                body[key] = good
        body[name] = value
        request["json"] = body

    def _record(self, request: dict[str, Any], mode: str) -> None:
        tally = self.tally
        method, path = request["method"], request["path"]
        tally.requests += 1
        tally.by_mode[mode] = tally.by_mode.get(mode, 0) + 1
        try:
            response = self.client.open(**request)
        except Exception as exc:
            tally.failures.append(Failure(method, path, "raised", type(exc).__name__, str(exc)))
            return
        status = response.status_code
        tally.statuses[str(status)] = tally.statuses.get(str(status), 0) + 1
        body = response.get_data()
        if status >= 500:
            tally.server_errors += 1
            tally.failures.append(Failure(method, path, status, ">= 500", _excerpt(body, request)))
        elif status >= 400 and not _is_json(response.headers.get("Content-Type", ""), body):
            tally.non_json_4xx += 1
            tally.failures.append(
                Failure(method, path, status, "4xx not JSON", _excerpt(body, request))
            )


def _bounded(examples: int) -> Any:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


def _run(test: Any) -> None:
    # HypothesisException: no case could be generated (no negative one for this operation).
    with contextlib.suppress(HypothesisException):
        test()


def _is_json(content_type: str, body: bytes) -> bool:
    if not content_type.startswith("application/json"):
        return False
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _excerpt(body: bytes, request: dict[str, Any]) -> str:
    sent = {key: request.get(key) for key in ("query_string", "data") if request.get(key)}
    return f"{body[:200]!r} (sent {str(sent)[:300]})"
