"""The REST API under `/api/`: catalog, tasks (run, follow, wait, revoke, retry), schedules.

Views are thin: reads go through `scheduler.selectors`, writes through `scheduler.services`,
whose `ScheduleError` becomes `400 {"field": ["message"]}` (see `errors.py`). Routes are in
`urls.py`; `GET /api/tasks/{id}/?wait=S` is answered by the async front in `waiting.py`.
"""
