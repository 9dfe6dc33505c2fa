"""How `stack up --with flower` is asked for and checked, before anything starts: the process
order, Flower's address and port, the credentials kept off its command line, a malformed
FLOWER_BASIC_AUTH and an unknown optional process refused. No database and no process: the
real Flower is tests/scheduler/devstack/test_flower.py's (whose module keeps a worker running,
which these tests have no need to wait on when the database is emptied after each test)."""

from __future__ import annotations

import pytest

from scheduler.devstack.stack import (
    StackError,
    StackOptions,
    StackPaths,
    basic_auth_problem,
    build_specs,
    parse_with,
)


def test_the_stack_starts_flower_after_the_worker_on_its_address_and_port(tmp_path) -> None:
    options = StackOptions(
        host="127.0.0.1", port=8123, only=frozenset({"worker"}), flower=True, flower_port=5601
    )
    paths = StackPaths(run_dir=tmp_path, log_dir=tmp_path, redis_dir=tmp_path)

    names = [spec.name for spec in build_specs(options, paths)]

    assert names[-2:] == ["worker", "flower"]
    flower_spec = build_specs(options, paths)[-1]
    assert "--address=127.0.0.1" in flower_spec.argv  # type: ignore[union-attr]
    assert "--port=5601" in flower_spec.argv  # type: ignore[union-attr]
    # The credentials go by the environment, never the command line (`ps` shows it).
    assert not any("auth" in part for part in flower_spec.argv)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "FLOWER_BASIC_AUTH is not set"),
        ("admin", "must be user:password"),
        ("admin:", "must be user:password"),
        (":secret", "must be user:password"),
        ("admin:secret,other", "must be user:password"),
        ("admin:secret", None),
        ("admin:secret,ops:s3:cret", None),
    ],
)
def test_the_basic_auth_is_checked_before_anything_starts(value, problem) -> None:
    found = basic_auth_problem(value)

    assert (found is None) if problem is None else (problem in (found or ""))


def test_an_unknown_optional_process_is_one_clear_error() -> None:
    assert parse_with(["flower"]) == {"flower"}
    with pytest.raises(StackError, match="unknown process 'grafana' in --with; choose from flower"):
        parse_with(["flower,grafana"])
