"""The tournaments' REST API under `/api/`: tournaments, their leaderboards, and one decision of
an entry run now.

Reads need staff; a run needs `scheduler.run_tasks` and is queued through the scheduler's
`task_enqueue` (the catalog checks its parameters as `POST /api/tasks/` does).
"""
