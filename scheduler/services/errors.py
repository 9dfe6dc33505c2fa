"""What the services raise, and who may act: one place for the errors every interface maps
(a field error to a 400 or a form error, not-found to a 404 or exit code 1)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

User = AbstractBaseUser | AnonymousUser | None


class ScheduleError(ValueError):
    """Input that cannot be saved. `errors` maps a field name to its messages.

    `param_errors`: when the `params` field is wrong, its messages per parameter (a dotted path,
    as `ParameterError` gives them), for a form that shows each next to its own input.
    """

    def __init__(
        self, errors: dict[str, list[str]], *, param_errors: dict[str, list[str]] | None = None
    ):
        self.errors = errors
        self.param_errors = param_errors or {}
        super().__init__("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items()))

    @classmethod
    def on(cls, field: str, message: str) -> ScheduleError:
        return cls({field: [message]})


class ScheduleNotFound(LookupError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"no periodic task named {name!r}")


class OwnerNotFound(LookupError):
    """No object of another app with that key (`--agent nobody`), or no such kind of owner."""


class TaskNotFound(LookupError):
    def __init__(self, task_id: str):
        self.task_id = task_id
        super().__init__(f"no task with id {task_id!r} was queued or stored")


class DeadLetterNotFound(LookupError):
    def __init__(self, dead_letter_id: object):
        self.dead_letter_id = dead_letter_id
        super().__init__(f"no dead letter with id {dead_letter_id}")


class DeadLetterResolved(ValueError):
    """The dead letter was requeued or discarded already (an API's 409)."""

    def __init__(self, dead_letter_id: object, status: str):
        self.dead_letter_id = dead_letter_id
        self.status = status
        super().__init__(f"dead letter {dead_letter_id} was {status} already")


class WorkerNotFound(LookupError):
    """No worker by that hostname answered (unknown, stopped, or too busy): a 404, exit code 1."""

    def __init__(self, hostname: str, message: str):
        self.hostname = hostname
        super().__init__(message)


class WorkerRefused(ValueError):
    """The worker answered, and refused the control (a 409, exit code 1): a pool that cannot be
    resized, autoscale on a worker started without `--autoscale`, all processes busy."""

    def __init__(self, hostname: str, message: str):
        self.hostname = hostname
        super().__init__(message)


class QueueNotFound(LookupError):
    """A queue name that is not one of ours (config/queues.py)."""

    def __init__(self, queue: str, known: list[str]):
        self.queue = queue
        super().__init__(f"no queue named {queue!r} (queues: {', '.join(known)})")
