"""The staff dashboard: its pages (views), the account page, the Prometheus metrics view, and
the time zones people see (middleware, context processor; the CLI's `--tz` is scheduler/cli's).

The names other apps use are re-exported here. Modules inside `scheduler/` import by full path.
"""

from __future__ import annotations

from scheduler.dashboard.alerts import alerts_config
from scheduler.dashboard.views import dashboard_access

__all__ = ["alerts_config", "dashboard_access"]
