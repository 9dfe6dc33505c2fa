"""The agents' REST API under `/api/`: sessions and their messages, runs, inbound webhooks.

Views are thin: writes go through `agents.services`, `agents.dispatch` and the scheduler's
`task_enqueue`; an `AgentInputError` becomes `400 {"field": ["message"]}` as the scheduler's
`ScheduleError` does. `POST /api/inbound/{slug}/` is the one endpoint without session or token
authentication: it is authenticated by the timestamped HMAC signature of its body alone
(agents/signatures.py).
"""
