"""The errors agent work raises, and how long to wait before retrying them.

Tasks catch `RetryableError` and retry (at most `MAX_RETRIES` times, `retry_delay` apart: the
`RETRY_POLICY` their bodies run with); `PermanentError` is recorded with its code and never
retried. Anything else is a bug.

Celery stores a failed task's exception as JSON (type, module and `args`) and rebuilds it with
`exc_type(*args)`, so every class keeps exactly its constructor arguments in `args` and derives
its attributes and its one-line `str()` from them.
"""

from __future__ import annotations

import random
from typing import Any

from django.conf import settings

from scheduler.core import RetryPolicy

MAX_RETRIES = 3
# History rows and dashboard cells show the reason; a runaway message must not fill them.
MAX_REASON_LENGTH = 500


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shorten(text: str) -> str:
    text = _one_line(text)
    if len(text) > MAX_REASON_LENGTH:
        text = text[: MAX_REASON_LENGTH - 1] + "…"
    return text


class AgentError(Exception):
    """Base of the errors agent work raises on purpose."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self.args[-1]) if self.args else ""

    def describe(self) -> str:
        return self.message or "agent error"

    def __str__(self) -> str:
        return _one_line(self.describe())

    @property
    def reason(self) -> str:
        """One line for history rows and the dashboard."""
        return _shorten(str(self))


class RetryableError(AgentError):
    """A failure that may pass: retried with exponential backoff and jitter, at most 3 times."""

    def describe(self) -> str:
        return self.message or "temporary failure"


class RateLimitError(RetryableError):
    """The other side asked us to wait `retry_after` seconds: retried after exactly that delay.

    `service` is optional (it only makes the reason clearer), so `RateLimitError(2.5)` and
    `RateLimitError(2.5, "slow down")` keep working.
    """

    def __init__(self, retry_after: float, message: str = "", service: str = "") -> None:
        delay = float(retry_after)
        if not delay >= 0 or delay == float("inf"):  # negative, NaN or infinite
            delay = 0.0
        if service:
            Exception.__init__(self, delay, message, service)
        else:
            Exception.__init__(self, delay, message)

    @property
    def retry_after(self) -> float:
        return float(self.args[0])

    @property
    def message(self) -> str:
        return str(self.args[1])

    @property
    def service(self) -> str:
        return str(self.args[2]) if len(self.args) > 2 else ""

    def describe(self) -> str:
        by = f" by {self.service}" if self.service else ""
        text = f"rate limited{by}: retry after {self.retry_after:g} s"
        return f"{text} ({self.message})" if self.message else text


class ExternalServiceError(RetryableError):
    """A service we depend on (the LLM, a webhook) failed or did not answer in time."""

    def __init__(self, service: str, message: str = "") -> None:
        Exception.__init__(self, service, message)

    @property
    def service(self) -> str:
        return str(self.args[0])

    @property
    def message(self) -> str:
        return str(self.args[1])

    def describe(self) -> str:
        text = f"external service {self.service} failed"
        return f"{text}: {self.message}" if self.message else text


class DatabaseError(RetryableError):
    """The database was unavailable or a transaction lost a race: worth another try."""

    def describe(self) -> str:
        return f"database error: {self.message}" if self.message else "database error"


class PermanentError(AgentError):
    """A failure that another try cannot fix (bad credentials, bad input): never retried."""

    def __init__(self, error_code: str, message: str = "") -> None:
        Exception.__init__(self, error_code, message)

    @property
    def error_code(self) -> str:
        return str(self.args[0])

    @property
    def message(self) -> str:
        return str(self.args[1])

    def describe(self) -> str:
        text = f"permanent error {self.error_code}"
        return f"{text}: {self.message}" if self.message else text


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, RetryableError)


def retry_delay(exc: BaseException, retries: int, *, base: float = 2.0, cap: float = 60.0) -> float:
    """Seconds to wait before retry number `retries + 1` (`retries` counts those already made).

    A rate limit names its delay and gets exactly that. Anything else gets exponential backoff
    with full jitter, so that many agents failing together do not retry together.
    """
    if isinstance(exc, RateLimitError):
        return exc.retry_after
    exponent = min(max(retries, 0), 60)  # 2.0 ** 1100 overflows; the cap is reached long before
    ceiling = min(cap, base * 2.0**exponent)
    # Jitter spreads load; it is not a secret, so the module's PRNG is right here.
    return max(0.1, random.uniform(0, ceiling))  # noqa: S311


def _configured_delay(exc: BaseException, retries: int) -> float:
    return retry_delay(exc, retries, base=settings.AGENT_RETRY_BASE)


# The tasks' retries (agents' and tournaments'), run by `scheduler.services.task_run_with_retries`.
RETRY_POLICY = RetryPolicy(
    retryable=(RetryableError,),
    max_retries=MAX_RETRIES,
    delay=_configured_delay,
    database_error=DatabaseError,
)


def failure_reason(exc: BaseException) -> str:
    """One line naming any exception, ours or not, for history rows and the dashboard."""
    if isinstance(exc, AgentError):
        return exc.reason
    return _shorten(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def error_fields(exc: BaseException) -> dict[str, Any]:
    """What to record about a failure: its reason, and its code or service when it has one."""
    fields: dict[str, Any] = {
        "error_type": type(exc).__name__,
        "reason": failure_reason(exc),
        "retryable": is_retryable(exc),
    }
    if isinstance(exc, PermanentError):
        fields["error_code"] = exc.error_code
    if isinstance(exc, ExternalServiceError | RateLimitError) and exc.service:
        fields["service"] = exc.service
    if isinstance(exc, RateLimitError):
        fields["retry_after"] = exc.retry_after
    return fields
