"""What the agents' API and pages need beyond staff (names as `user.has_perm` takes them).

Reads need staff only, as in the scheduler's API; opening a session and saying something in it
need the model permissions that say so, as the admin would ask; running an agent's tasks needs
`scheduler.run_tasks`, as running any catalog task does.
"""

from __future__ import annotations

from scheduler.permissions import RUN_TASKS

ADD_SESSION = "agents.add_session"
ADD_MESSAGE = "agents.add_message"

__all__ = ["ADD_MESSAGE", "ADD_SESSION", "RUN_TASKS"]
