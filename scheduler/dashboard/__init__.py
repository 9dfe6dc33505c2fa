"""The staff dashboard: its pages (views), the account page, the Prometheus metrics view, and
the time zones people see (middleware, context processor, and the CLI's `--tz`).

The names other apps use are re-exported here. Modules inside `scheduler/` import by full path.
"""

from __future__ import annotations

from scheduler.dashboard.timezones import (
    UnknownZone,
    activate_command_zone,
    add_display_zone_option,
)
from scheduler.dashboard.views import dashboard_access

__all__ = ["UnknownZone", "activate_command_zone", "add_display_zone_option", "dashboard_access"]
