"""Development only: `manage.py stack` (web, workers, beat and an embedded Redis under one
supervisor) and the scheduler's demo schedules for `seed_demo`. Production never imports this
package: only the `stack` and `seed_demo` management commands (and the tests) do.
"""
