# mypy: disable-error-code="attr-defined,var-annotated"
# (celery-types stubs TaskResult without the extended columns this test compares)
"""Our result backend writes django-celery-results' rows exactly as the stock backend does."""

from __future__ import annotations

import time
import uuid

import pytest
from celery import states
from celery.app.task import Context
from celery.result import AsyncResult
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_results.backends.database import DatabaseBackend as StockBackend
from django_celery_results.models import TaskResult

from config.celery import app
from scheduler.worker.result_backend import DatabaseBackend

# Columns both backends must write the same (ids and clocks differ by nature).
_COMPARED = [
    field.name
    for field in TaskResult._meta.fields
    if field.name not in {"id", "task_id", "date_created", "date_started", "date_done"}
]


def _request(task_id: str, **extra) -> Context:
    return Context(
        id=task_id,
        task="scheduler.sleep",
        args=[],
        kwargs={"seconds": 0},
        argsrepr="()",
        kwargsrepr="{'seconds': 0}",
        **{"hostname": "worker@test", "periodic_task_name": "nightly sleep", **extra},
    )


def _run(backend, *, outcome: str) -> TaskResult:
    task_id = str(uuid.uuid4())
    request = _request(task_id)
    backend.store_result(
        task_id, {"pid": 1, "hostname": "worker@test"}, states.STARTED, request=request
    )
    if outcome == states.SUCCESS:
        backend.store_result(task_id, {"slept": 0}, states.SUCCESS, request=request)
    else:
        backend.store_result(
            task_id,
            ValueError("boom"),
            states.FAILURE,
            traceback="Traceback: boom",
            request=request,
        )
    return TaskResult.objects.get(task_id=task_id)


def _columns(row: TaskResult) -> dict:
    return {name: getattr(row, name) for name in _COMPARED}


@pytest.mark.django_db
@pytest.mark.parametrize("outcome", [states.SUCCESS, states.FAILURE])
def test_it_writes_the_same_row_as_the_stock_backend(outcome):
    ours = _run(DatabaseBackend(app=app), outcome=outcome)
    stock = _run(StockBackend(app=app), outcome=outcome)

    assert _columns(ours) == _columns(stock)
    assert ours.status == outcome
    assert ours.worker == "worker@test"
    assert ours.periodic_task_name == "nightly sleep"
    for row in (ours, stock):
        assert row.date_started is not None
        assert row.date_created <= row.date_done


@pytest.mark.django_db
def test_it_keeps_the_creation_and_start_dates_when_the_run_finishes():
    backend = DatabaseBackend(app=app)
    task_id = str(uuid.uuid4())
    backend.store_result(task_id, None, states.STARTED, request=_request(task_id))
    started = TaskResult.objects.get(task_id=task_id)

    backend.store_result(task_id, 42, states.SUCCESS, request=_request(task_id))

    done = TaskResult.objects.get(task_id=task_id)
    assert done.pk == started.pk
    assert done.date_created == started.date_created
    assert done.date_started == started.date_started
    assert done.date_done >= started.date_done
    assert done.result == "42"


@pytest.mark.django_db
def test_a_run_stored_only_when_done_has_no_start_date():
    backend = DatabaseBackend(app=app)
    task_id = str(uuid.uuid4())

    backend.store_result(task_id, "ok", states.SUCCESS, request=_request(task_id))

    row = TaskResult.objects.get(task_id=task_id)
    assert row.status == states.SUCCESS
    assert row.date_started is None


@pytest.mark.django_db
def test_each_state_is_one_statement_and_the_schedule_state_rides_along():
    backend = DatabaseBackend(app=app)
    task_id = str(uuid.uuid4())

    with CaptureQueriesContext(connection) as queries:
        backend.store_result(task_id, None, states.STARTED, request=_request(task_id))
        backend.store_result(task_id, 1, states.SUCCESS, request=_request(task_id))

    writes = [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"].upper()]
    results = [sql for sql in writes if "django_celery_results_taskresult" in sql]
    assert len(results) == 2
    assert all("ON CONFLICT" in sql.upper() for sql in writes)
    assert not [q for q in queries.captured_queries if q["sql"].upper().startswith("SELECT")]
    if connection.vendor == "postgresql":
        # The state's upsert is part of the result's statement.
        assert len(writes) == 2
        assert all("scheduler_schedulestate" in sql for sql in writes)
    else:
        assert len(writes) == 4


@pytest.mark.django_db
def test_a_run_of_no_periodic_task_is_one_statement_and_no_state():
    from scheduler.models import ScheduleState

    backend = DatabaseBackend(app=app)
    task_id = str(uuid.uuid4())
    request = _request(task_id, periodic_task_name=None)

    with CaptureQueriesContext(connection) as queries:
        backend.store_result(task_id, 1, states.SUCCESS, request=request)

    writes = [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"].upper()]
    assert len(writes) == 1
    assert "scheduler_schedulestate" not in writes[0]
    assert not ScheduleState.objects.exists()


@pytest.mark.django_db
def test_results_read_back_through_async_result():
    assert isinstance(app.backend, DatabaseBackend)
    task_id = str(uuid.uuid4())
    app.backend.store_result(task_id, {"pong": True}, states.SUCCESS, request=_request(task_id))

    result = AsyncResult(task_id, app=app)

    assert result.state == states.SUCCESS
    assert result.result == {"pong": True}
    assert result.date_done is not None


@pytest.mark.django_db
def test_the_statement_is_compiled_once_per_kind_of_state(monkeypatch):
    from scheduler.worker import result_backend

    monkeypatch.setattr(result_backend, "_statements", {})
    backend = DatabaseBackend(app=app)
    for _ in range(3):
        ours = _run(backend, outcome=states.SUCCESS)

    assert sorted(result_backend._statements) == [("default", False, True), ("default", True, True)]
    assert _columns(ours) == _columns(_run(StockBackend(app=app), outcome=states.SUCCESS))


# --- in workers: a STARTED row waits for the run's end ----------------------------------------


@pytest.fixture
def deferring():
    from scheduler.live.publisher import publisher
    from scheduler.worker.result_backend import defer_started

    defer_started()
    yield publisher()
    defer_started(False)
    publisher().flush(timeout=5)


@pytest.mark.django_db(transaction=True)
def test_a_short_run_is_written_once_with_its_start(deferring):
    backend = DatabaseBackend(app=app)
    task_id = str(uuid.uuid4())
    before = timezone.now()

    with CaptureQueriesContext(connection) as queries:
        backend.store_result(task_id, None, states.STARTED, request=_request(task_id))
        assert not TaskResult.objects.filter(task_id=task_id).exists()
        backend.store_result(task_id, 1, states.SUCCESS, request=_request(task_id))

    writes = [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"].upper()]
    assert len([sql for sql in writes if "django_celery_results_taskresult" in sql]) == 1
    row = TaskResult.objects.get(task_id=task_id)
    assert row.status == states.SUCCESS
    assert before <= row.date_started <= row.date_done
    assert deferring.flush(timeout=5)  # the deferred write finds nothing left to do
    assert TaskResult.objects.get(task_id=task_id).status == states.SUCCESS


@pytest.mark.django_db(transaction=True)
def test_a_long_run_shows_started_soon_and_keeps_its_start(deferring):
    backend = DatabaseBackend(app=app)
    task_id = str(uuid.uuid4())
    backend.store_result(task_id, None, states.STARTED, request=_request(task_id))

    deadline = time.monotonic() + 5
    while not TaskResult.objects.filter(task_id=task_id).exists():
        assert time.monotonic() < deadline, "STARTED never written"
        time.sleep(0.01)
    started = TaskResult.objects.get(task_id=task_id)
    assert started.status == states.STARTED
    backend.store_result(task_id, 2, states.SUCCESS, request=_request(task_id))

    done = TaskResult.objects.get(task_id=task_id)
    assert done.status == states.SUCCESS
    assert done.date_started == started.date_started
    assert done.date_created == started.date_created


@pytest.mark.django_db
@pytest.mark.parametrize("later", [states.STARTED, states.RETRY, states.PENDING, states.FAILURE])
def test_it_never_turns_a_stored_success_into_another_state(later):
    backend = DatabaseBackend(app=app)
    task_id = str(uuid.uuid4())
    request = _request(task_id)
    backend.store_result(task_id, {"slept": 0}, states.SUCCESS, request=request)

    # A redelivered copy of the same run: its worker writes STARTED (or worse) again.
    backend.store_result(task_id, {"pid": 2}, later, request=request)

    row = TaskResult.objects.get(task_id=task_id)
    assert row.status == states.SUCCESS
    assert AsyncResult(task_id, app=app, backend=backend).result == {"slept": 0}


@pytest.mark.django_db
def test_the_stock_backend_would_regress_it():
    # Why ours differs: django-celery-results overwrites whatever is stored.
    backend = StockBackend(app=app)
    task_id = str(uuid.uuid4())
    request = _request(task_id)
    backend.store_result(task_id, {"slept": 0}, states.SUCCESS, request=request)
    backend.store_result(task_id, {"pid": 2}, states.STARTED, request=request)
    assert TaskResult.objects.get(task_id=task_id).status == states.STARTED


@pytest.mark.django_db
def test_it_still_moves_every_other_state_forward():
    backend = DatabaseBackend(app=app)
    task_id = str(uuid.uuid4())
    request = _request(task_id)
    for state in (states.STARTED, states.RETRY, states.STARTED, states.FAILURE, states.SUCCESS):
        backend.store_result(task_id, {"at": state}, state, request=request)
        assert TaskResult.objects.get(task_id=task_id).status == state


def test_it_retries_writes_that_failed_on_a_broken_connection_only():
    from django.db import IntegrityError, InterfaceError, OperationalError

    backend = DatabaseBackend(app=app)
    assert backend.exception_safe_to_retry(OperationalError("server closed the connection"))
    assert backend.exception_safe_to_retry(InterfaceError("connection already closed"))
    assert not backend.exception_safe_to_retry(IntegrityError("duplicate key"))
    assert not backend.exception_safe_to_retry(ValueError("not JSON"))
    assert app.conf.result_backend_always_retry is True


@pytest.mark.django_db
@pytest.mark.parametrize("ended", [states.FAILURE, states.REVOKED, "SKIPPED"])
def test_a_late_started_never_lands_on_a_run_that_ended(ended):
    backend = DatabaseBackend(app=app)
    task_id = str(uuid.uuid4())
    request = _request(task_id)
    backend.store_result(task_id, {"why": ended}, ended, request=request)

    backend.store_result(task_id, {"pid": 2}, states.STARTED, request=request)  # a copy's start

    assert TaskResult.objects.get(task_id=task_id).status == ended
    # A run that goes on to end is stored, as a retry of the task would be.
    backend.store_result(task_id, {"slept": 0}, states.SUCCESS, request=request)
    assert TaskResult.objects.get(task_id=task_id).status == states.SUCCESS


@pytest.mark.django_db(transaction=True)
def test_a_started_row_that_is_not_written_is_not_built_either(deferring, monkeypatch):
    backend = DatabaseBackend(app=app)
    task_id = str(uuid.uuid4())
    built = []
    real = backend._row_values

    def row_values(*args, **kwargs):
        built.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(backend, "_row_values", row_values)

    backend.store_result(task_id, {"pid": 1}, states.STARTED, request=_request(task_id))
    backend.store_result(task_id, {"slept": 0}, states.SUCCESS, request=_request(task_id))
    assert deferring.flush(timeout=5)

    assert built == [states.SUCCESS]


@pytest.mark.django_db(transaction=True)
def test_a_deferred_started_row_is_the_stock_backends_row(deferring):
    task_id = str(uuid.uuid4())
    DatabaseBackend(app=app).store_result(
        task_id, {"pid": 1, "hostname": "worker@test"}, states.STARTED, request=_request(task_id)
    )
    assert deferring.flush(timeout=5)  # written once its delay has passed
    ours = TaskResult.objects.get(task_id=task_id)

    stock_id = str(uuid.uuid4())
    StockBackend(app=app).store_result(
        stock_id, {"pid": 1, "hostname": "worker@test"}, states.STARTED, request=_request(stock_id)
    )
    stock = TaskResult.objects.get(task_id=stock_id)
    assert _columns(ours) == _columns(stock)
    assert ours.date_started is not None


def _prepared_result_writes() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s",
            ['%INSERT INTO "django_celery_results_taskresult"%'],
        )
        return [statement for (statement,) in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("prepared", [True, False])
def test_on_postgresql_result_writes_are_prepared_once_per_connection(settings, prepared):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's (SQLite's driver caches its own)")
    settings.DB_PREPARED_STATEMENTS = prepared
    connection.close()  # a new session: nothing prepared yet
    backend = DatabaseBackend(app=app)
    ids = [str(uuid.uuid4()) for _ in range(3)]

    for task_id in ids:
        backend.store_result(task_id, {"n": 1}, states.SUCCESS, request=_request(task_id))

    written = _prepared_result_writes()
    if prepared:
        # One statement (the result's upsert with the state's) however many runs it wrote.
        assert len(written) == 1
        assert "scheduler_schedulestate" in written[0]
    else:
        assert written == []
    rows = TaskResult.objects.filter(task_id__in=ids)
    assert sorted(row.status for row in rows) == [states.SUCCESS] * 3
    assert all(row.result == '{"n": 1}' for row in rows)


@pytest.mark.django_db(transaction=True)
def test_a_lost_prepared_statement_turns_preparing_off_and_the_write_still_lands(
    settings, caplog, monkeypatch
):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    from scheduler.worker import result_backend

    settings.DB_PREPARED_STATEMENTS = True
    monkeypatch.setattr(result_backend, "_not_prepared", set())
    connection.close()
    backend = DatabaseBackend(app=app)
    first, second, third = (str(uuid.uuid4()) for _ in range(3))
    backend.store_result(first, 1, states.SUCCESS, request=_request(first))
    assert len(_prepared_result_writes()) == 1
    # What a pooler in transaction mode does: the next write reaches a server connection that
    # never saw the statement, while psycopg believes it prepared.
    connection.connection.pgconn.exec_(b"DEALLOCATE ALL")

    backend.store_result(second, 2, states.SUCCESS, request=_request(second))
    backend.store_result(third, 3, states.SUCCESS, request=_request(third))

    assert "DB_PREPARED_STATEMENTS=false" in caplog.text
    assert _prepared_result_writes() == []  # no longer prepared in this process
    stored = dict(TaskResult.objects.values_list("task_id", "result"))
    assert (stored[first], stored[second], stored[third]) == ("1", "2", "3")
