from __future__ import annotations

import re

from tests.processes import BASE_DIR

_READ = re.compile(r"""env(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]+)["']""")


def _variables_read_by(path) -> set[str]:
    return set(_READ.findall(path.read_text()))


def test_every_variable_the_settings_read_is_documented_in_env_example():
    read = set()
    for path in (BASE_DIR / "config" / "settings").glob("*.py"):
        read |= _variables_read_by(path)
    read |= {"DJANGO_SUPERUSER_PASSWORD"}  # read by `stack up`
    documented = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (BASE_DIR / ".env.example").read_text(), re.M)
    )

    assert read, "the pattern found no variable: it no longer matches how settings read them"
    assert read - documented == set()
