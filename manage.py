#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

from __future__ import annotations

import os
import sys

CALLER_TZ = "SCHEDULER_CALLER_TZ"


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    # Django sets TZ to TIME_ZONE as it loads the settings; commands show times in the TZ of
    # the person who ran them (scheduler.cli.time_zone.command_zone), so it is kept first.
    os.environ.setdefault(CALLER_TZ, os.environ.get("TZ", ""))
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db import OperationalError

    # Bad configuration is the operator's to fix: one line naming it, not a traceback. The
    # settings are read first: Django's command line would swallow their error and fail later,
    # with a traceback of its own ("Models aren't loaded yet").
    try:
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018 (loads the settings)
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"Configuration error: {exc}\n")
        sys.exit(2)
    except OperationalError as exc:
        from django.db import connection

        name = connection.settings_dict.get("NAME")
        sys.stderr.write(f"Database error ({connection.vendor} {name}): {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
