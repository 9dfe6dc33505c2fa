from __future__ import annotations

import json
import pickle
import random

import pytest
from celery import Celery
from celery.backends.base import BaseBackend

from agents.errors import (
    MAX_REASON_LENGTH,
    MAX_RETRIES,
    AgentError,
    DatabaseError,
    ExternalServiceError,
    PermanentError,
    RateLimitError,
    RetryableError,
    error_fields,
    failure_reason,
    is_retryable,
    retry_delay,
)

ERRORS: list[tuple[AgentError, str]] = [
    (AgentError("something broke"), "something broke"),
    (AgentError(), "agent error"),
    (RetryableError("flaky network"), "flaky network"),
    (RetryableError(), "temporary failure"),
    (RateLimitError(2.5), "rate limited: retry after 2.5 s"),
    (RateLimitError(2.5, "slow down"), "rate limited: retry after 2.5 s (slow down)"),
    (RateLimitError(2, "HTTP 429", "llm"), "rate limited by llm: retry after 2 s (HTTP 429)"),
    (ExternalServiceError("llm"), "external service llm failed"),
    (
        ExternalServiceError("llm", "timed out after 30 s"),
        "external service llm failed: timed out after 30 s",
    ),
    (DatabaseError("deadlock detected"), "database error: deadlock detected"),
    (DatabaseError(), "database error"),
    (PermanentError("llm_auth"), "permanent error llm_auth"),
    (
        PermanentError("llm_bad_request", "HTTP 400: bad model"),
        "permanent error llm_bad_request: HTTP 400: bad model",
    ),
]
IDS = [f"{type(exc).__name__}-{index}" for index, (exc, _) in enumerate(ERRORS)]


def json_backend() -> BaseBackend:
    return BaseBackend(app=Celery(set_as_current=False), serializer="json")


@pytest.mark.parametrize(("exc", "text"), ERRORS, ids=IDS)
def test_it_says_what_failed_in_one_line(exc: AgentError, text: str) -> None:
    assert str(exc) == text
    assert exc.reason == text


@pytest.mark.parametrize(("exc", "text"), ERRORS, ids=IDS)
def test_it_rebuilds_from_its_args(exc: AgentError, text: str) -> None:
    again = type(exc)(*exc.args)

    assert again.args == exc.args
    assert str(again) == text
    assert vars(again) == vars(exc)


@pytest.mark.parametrize(("exc", "text"), ERRORS, ids=IDS)
def test_it_survives_celery_json_results(exc: AgentError, text: str) -> None:
    backend = json_backend()
    stored = json.loads(json.dumps(backend.prepare_exception(exc, serializer="json")))

    again = backend.exception_to_python(stored)

    assert type(again) is type(exc)
    assert again.args == exc.args
    assert str(again) == text


@pytest.mark.parametrize(("exc", "text"), ERRORS, ids=IDS)
def test_it_survives_pickle(exc: AgentError, text: str) -> None:
    again = pickle.loads(pickle.dumps(exc))  # noqa: S301  (our own bytes)

    assert type(again) is type(exc)
    assert str(again) == text


def test_it_exposes_its_fields() -> None:
    rate = RateLimitError(2.5, "slow down", "llm")
    service = ExternalServiceError("webhook", "HTTP 502")
    permanent = PermanentError("llm_auth", "HTTP 401")

    assert (rate.retry_after, rate.message, rate.service) == (2.5, "slow down", "llm")
    assert RateLimitError(3).service == ""
    assert (service.service, service.message) == ("webhook", "HTTP 502")
    assert (permanent.error_code, permanent.message) == ("llm_auth", "HTTP 401")


def test_it_classifies_retryable_errors() -> None:
    for exc in (
        RetryableError(),
        RateLimitError(1),
        ExternalServiceError("llm"),
        DatabaseError(),
    ):
        assert isinstance(exc, RetryableError)
        assert is_retryable(exc)
    assert not isinstance(PermanentError("x"), RetryableError)
    assert not is_retryable(PermanentError("x"))
    assert not is_retryable(ValueError("x"))
    assert MAX_RETRIES == 3


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf")])
def test_it_never_waits_a_negative_or_endless_rate_limit(value: float) -> None:
    assert RateLimitError(value).retry_after == 0.0


def test_it_keeps_reasons_on_one_short_line() -> None:
    exc = ExternalServiceError("llm", "line one\nline two\t" + "x" * 2000)

    assert "\n" not in str(exc)
    assert str(exc).startswith("external service llm failed: line one line two x")
    assert len(exc.reason) == MAX_REASON_LENGTH
    assert exc.reason.endswith("…")


def test_it_names_foreign_exceptions() -> None:
    assert failure_reason(ValueError("bad\nvalue")) == "ValueError: bad value"
    assert failure_reason(KeyError()) == "KeyError"
    assert failure_reason(PermanentError("x", "y")) == "permanent error x: y"


def test_it_lists_the_fields_to_record() -> None:
    assert error_fields(RateLimitError(2, "HTTP 429", "llm")) == {
        "error_type": "RateLimitError",
        "reason": "rate limited by llm: retry after 2 s (HTTP 429)",
        "retryable": True,
        "service": "llm",
        "retry_after": 2.0,
    }
    assert error_fields(PermanentError("llm_auth", "HTTP 401")) == {
        "error_type": "PermanentError",
        "reason": "permanent error llm_auth: HTTP 401",
        "retryable": False,
        "error_code": "llm_auth",
    }
    assert error_fields(ValueError("boom"))["retryable"] is False


@pytest.mark.parametrize("retries", [0, 1, 2, 3, 10])
def test_it_waits_exactly_what_a_rate_limit_asks(retries: int) -> None:
    assert retry_delay(RateLimitError(2.5), retries) == 2.5


@pytest.mark.parametrize(("retries", "ceiling"), [(0, 2.0), (1, 4.0), (2, 8.0), (3, 16.0)])
def test_it_backs_off_exponentially_with_jitter(retries: int, ceiling: float) -> None:
    random.seed(1234)
    delays = [retry_delay(ExternalServiceError("llm"), retries) for _ in range(500)]

    assert all(0.1 <= delay <= ceiling for delay in delays)
    assert max(delays) > ceiling * 0.9  # full jitter reaches up to the ceiling...
    assert min(delays) < ceiling * 0.1 + 0.1  # ...and down to (almost) nothing
    assert len(set(delays)) > 400  # jitter: retries of many agents do not line up


def test_it_uses_the_upper_bound_of_the_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)

    assert retry_delay(DatabaseError(), 0) == 2.0
    assert retry_delay(DatabaseError(), 2) == 8.0
    assert retry_delay(DatabaseError(), 2, base=1.0) == 4.0
    assert retry_delay(DatabaseError(), 10) == 60.0
    assert retry_delay(DatabaseError(), 10, cap=5.0) == 5.0
    assert retry_delay(DatabaseError(), 5000) == 60.0  # no overflow


def test_it_waits_at_least_a_tenth_of_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: low)

    assert retry_delay(RetryableError(), 0) == 0.1
    assert retry_delay(RetryableError(), -3) == 0.1
