"""A task's retry policy: which failures of its work are tried again, how often, how far apart.

Plain data, importable before Django is set up: an app's error module declares its policy next
to its error classes; `scheduler.services.task_run_with_retries` applies it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures of a task's work are tried again, how many times and how far apart."""

    retryable: tuple[type[BaseException], ...]
    max_retries: int
    # Seconds before the next try, given the error and the retries made so far.
    delay: Callable[[BaseException, int], float]
    # The database failing under the work (a lost connection, a lost race) is worth another try:
    # raised as this error, made from its message, which `retryable` must include.
    database_error: Callable[[str], BaseException]
