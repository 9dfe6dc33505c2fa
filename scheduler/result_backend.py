"""Kept so that `scheduler.result_backend.DatabaseBackend` keeps working: it is the documented
default of CELERY_RESULT_BACKEND (README, .env.example) and deployments name it in their
environment. The backend itself is the worker runtime's: scheduler/worker/result_backend.py."""

from __future__ import annotations

from scheduler.worker.result_backend import DatabaseBackend

__all__ = ["DatabaseBackend"]
