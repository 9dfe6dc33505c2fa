"""The API's views: parse the request, call one selector or service, shape the answer."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduler import selectors, services
from scheduler.api.base import (
    ERRORS_RESPONSE,
    NOT_FOUND_RESPONSE,
    Pages,
    StaffPermission,
    TaskQueuedSerializer,
    found,
    paginated,
    queued_response,
    request_source,
    validated,
)
from scheduler.api.serializers import (
    CatalogEntrySerializer,
    ScheduleInputSerializer,
    ScheduleListQuerySerializer,
    SchedulePauseOnFailureSerializer,
    SchedulePauseSerializer,
    ScheduleSerializer,
    TaskHistoryQuerySerializer,
    TaskResultSerializer,
    TaskRevokedSerializer,
    TaskRevokeSerializer,
    TaskRunSerializer,
    TaskStatusSerializer,
    TaskWaitQuerySerializer,
    schedule_arguments,
)
from scheduler.catalog import load_catalog
from scheduler.models import Source
from scheduler.observability.health import health_report
from scheduler.observability.pagination import EstimatedCountPaginator
from scheduler.permissions import ADD_SCHEDULE, CHANGE_SCHEDULE, DELETE_SCHEDULE, RUN_TASKS

_health_schema = inline_serializer(
    name="Health",
    fields={"status": serializers.CharField(), "checks": serializers.DictField()},
)
TASK_ID = OpenApiParameter(
    "task_id",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="a Celery task id (letters, digits, '-', '_', '.', ':'; at most 255)",
)


class HistoryPages(Pages):
    """Pages of the results history: unfiltered, on a table of millions of rows, `count` is
    the database's estimate rather than a count of every row
    (scheduler/observability/table_rows.py)."""

    django_paginator_class = EstimatedCountPaginator


# The parts of the API the index lists: (key, URL name, what it is). The agents' and the
# tournaments' parts are named by their URL names: this module does not import those apps.
API_PARTS: tuple[tuple[str, str, str], ...] = (
    ("health", "api-health", "database, Redis and worker health (no authentication)"),
    ("catalog", "api-catalog", "the tasks that can be run and scheduled, with their parameters"),
    ("tasks", "api-tasks", "run a catalog task (POST); stored results (GET)"),
    ("schedules", "api-schedule-list", "periodic tasks: list, create, update, run, pause, ..."),
    ("backfills", "api-backfills", "a schedule's runs of a range made now, and their progress"),
    ("dead_letters", "api-dead-letters", "runs that failed their last retry: requeue, discard"),
    ("queues", "api-queues", "queues and their depth: pause, resume and purge one"),
    ("alerts", "api-alert-rules", "alert rules; channels and deliveries beside them"),
    ("incidents", "api-incidents", "incidents: open and past; acknowledge, silence, resolve"),
    ("sessions", "api-session-list", "agents' conversation sessions and their messages"),
    ("tournaments", "api-tournament-list", "tournaments, their leaderboards and entries"),
    ("schema", "api-schema", "the OpenAPI schema of every endpoint"),
    ("docs", "api-docs", "the schema as browsable documentation (a staff session)"),
)


class ApiIndexView(APIView):
    """`/api/`: the API's parts, each with its URL, and where the schema and its docs are."""

    permission_classes = [StaffPermission]

    @extend_schema(
        responses=inline_serializer(
            name="ApiIndex",
            fields={
                "parts": serializers.DictField(),
                "schema": serializers.URLField(),
                "docs": serializers.URLField(),
            },
        )
    )
    def get(self, request: Request) -> Response:
        parts = {
            key: {"url": request.build_absolute_uri(reverse(name)), "description": description}
            for key, name, description in API_PARTS
        }
        return Response(
            {"parts": parts, "schema": parts["schema"]["url"], "docs": parts["docs"]["url"]}
        )


class ApiNotFoundView(APIView):
    """Every path under `/api/` that no endpoint has, whatever the method: a JSON 404.

    Routed last under `/api/`, so that it answers even where Django's `handler404` would not
    (DEBUG=True answers its HTML debug page instead). Authentication and permissions run
    first, as on every endpoint: an anonymous caller learns no more than on a real path.
    """

    permission_classes = [StaffPermission]
    # Not in the schema: it is the absence of an endpoint.
    schema = None

    def _not_found(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        path = request.path
        detail = f"no such API endpoint: {path}"
        if not path.endswith("/"):
            detail += f" (API paths end with a slash: {path}/)"
        raise NotFound(detail)

    get = post = put = patch = delete = head = _not_found

    def options(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        return self._not_found(request)


class HealthView(APIView):
    """Database, Redis and worker health; 200 when healthy, 503 otherwise."""

    permission_classes = [AllowAny]
    authentication_classes = []
    # Load balancers poll it: never throttled.
    throttle_classes = []

    @extend_schema(responses={200: _health_schema, 503: _health_schema}, auth=[])
    def get(self, request: Request) -> Response:
        report = health_report()
        return Response(report.as_dict(), status=200 if report.ok else 503)


class CatalogView(APIView):
    """The tasks that can be run and scheduled, each with the JSON Schema of its parameters."""

    permission_classes = [StaffPermission]

    @extend_schema(responses=CatalogEntrySerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(CatalogEntrySerializer(list(load_catalog()), many=True).data)


class TaskListView(APIView):
    """Run a catalog task now; list stored results (newest first)."""

    permission_classes = [StaffPermission]
    required_permissions = {"post": RUN_TASKS}
    pagination_class = HistoryPages

    @extend_schema(
        parameters=[TaskHistoryQuerySerializer],
        responses={200: TaskResultSerializer(many=True), 400: ERRORS_RESPONSE},
    )
    def get(self, request: Request) -> Response:
        filters = validated(TaskHistoryQuerySerializer, request.query_params)
        results = selectors.task_history(
            task_name=filters.get("task_name"),
            periodic_task_name=filters.get("periodic_task"),
            status=filters.get("status"),
            since=filters.get("since"),
        )
        return paginated(
            request,
            results,
            lambda page: TaskResultSerializer(page, many=True, context={"request": request}).data,
            view=self,
        )

    @extend_schema(
        request=TaskRunSerializer,
        responses={202: TaskQueuedSerializer, 400: ERRORS_RESPONSE},
        description="Queue a catalog task with its parameters; needs `scheduler.run_tasks`.",
    )
    def post(self, request: Request) -> Response:
        body = validated(TaskRunSerializer, request.data)
        task_id = services.task_run(
            task=body["task"],
            params=body["params"],
            queue=body.get("queue"),
            actor=request.user,
            source=Source.API,
        )
        return queued_response(request, task_id)


class UnfinishedTask(Response):
    """A task status the async front (`waiting.task_detail`) may wait on before it is sent."""

    def __init__(self, data: Any, *, task_id: str, wait: float):
        super().__init__(data)
        self.task_id = task_id
        self.wait = wait


class TaskDetailView(APIView):
    permission_classes = [StaffPermission]

    @extend_schema(
        parameters=[TASK_ID, TaskWaitQuerySerializer],
        responses={200: TaskStatusSerializer, 400: ERRORS_RESPONSE},
        description=(
            "The state of a task as Celery's `AsyncResult` reports it. An id Celery does not "
            "know is `PENDING`, as Celery reports it (Celery cannot tell 'queued' from "
            "'unknown'). With `?wait=S` the answer comes as soon as the task finishes "
            "(SUCCESS, FAILURE, REVOKED, SKIPPED), woken by the task's finished event, or "
            "after S seconds with the state it has then."
        ),
    )
    def get(self, request: Request, task_id: str) -> Response:
        query = validated(TaskWaitQuerySerializer, request.query_params)
        task = selectors.task_status(task_id)
        data = TaskStatusSerializer(task).data
        wait = query.get("wait")
        if wait and not task.finished:
            return UnfinishedTask(data, task_id=task_id, wait=wait)
        return Response(data)


class TaskRevokeView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": RUN_TASKS}

    @extend_schema(
        parameters=[TASK_ID],
        request=TaskRevokeSerializer,
        responses={202: TaskRevokedSerializer, 400: ERRORS_RESPONSE, 404: NOT_FOUND_RESPONSE},
        description=(
            "Ask the workers to drop the run if it has not started, or to stop it (SIGTERM) "
            "with terminate; audited (revoked or terminated), and shown live as a "
            "`task.revoked` event. 400 when it has finished already (`task_id`) or runs and "
            "terminate was not asked (`terminate`), 404 when no such task was queued or "
            "stored. Needs `scheduler.run_tasks`."
        ),
    )
    def post(self, request: Request, task_id: str) -> Response:
        body = validated(TaskRevokeSerializer, request.data)
        try:
            outcome = services.task_revoke(
                task_id=task_id,
                terminate=body["terminate"],
                actor=request.user,
                source=request_source(request),
            )
        except services.TaskNotFound as exc:
            raise NotFound(str(exc)) from exc
        return Response(
            {
                "task_id": task_id,
                "status": outcome.status,
                "state": outcome.state,
                "task_name": outcome.task_name,
                "periodic_task_name": outcome.periodic_task_name,
            },
            status=status.HTTP_202_ACCEPTED,
        )


class TaskRetryView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": RUN_TASKS}

    @extend_schema(
        parameters=[TASK_ID],
        request=None,
        responses={202: TaskQueuedSerializer, 400: ERRORS_RESPONSE, 404: NOT_FOUND_RESPONSE},
        description=(
            "Queue a stored run's task again with the same arguments, as a new task "
            "(catalog tasks only). Needs `scheduler.run_tasks`."
        ),
    )
    def post(self, request: Request, task_id: str) -> Response:
        result = found(selectors.task_result(task_id), f"no stored result for task {task_id}")
        return queued_response(
            request,
            services.task_result_retry(result=result, actor=request.user, source=Source.API),
        )


_schedule_id = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH)


@extend_schema_view(
    list=extend_schema(
        parameters=[ScheduleListQuerySerializer], responses={200: ScheduleSerializer(many=True)}
    ),
    create=extend_schema(
        request=ScheduleInputSerializer,
        responses={201: ScheduleSerializer, 400: ERRORS_RESPONSE},
        description="Needs `django_celery_beat.add_periodictask`.",
    ),
    retrieve=extend_schema(
        parameters=[_schedule_id], responses={200: ScheduleSerializer, 404: NOT_FOUND_RESPONSE}
    ),
    update=extend_schema(
        parameters=[_schedule_id],
        request=ScheduleInputSerializer,
        responses={200: ScheduleSerializer, 400: ERRORS_RESPONSE, 404: NOT_FOUND_RESPONSE},
        description=(
            "name, task and schedule are required; other fields left out keep their values. "
            "Needs `django_celery_beat.change_periodictask`."
        ),
    ),
    partial_update=extend_schema(
        parameters=[_schedule_id],
        request=ScheduleInputSerializer,
        responses={200: ScheduleSerializer, 400: ERRORS_RESPONSE, 404: NOT_FOUND_RESPONSE},
        description="Changes the fields given. Needs `django_celery_beat.change_periodictask`.",
    ),
    destroy=extend_schema(
        parameters=[_schedule_id],
        responses={204: None, 404: NOT_FOUND_RESPONSE},
        description="Needs `django_celery_beat.delete_periodictask`.",
    ),
)
class ScheduleViewSet(viewsets.ViewSet):
    """Periodic tasks, through the same services (and errors) as the admin and the CLI."""

    permission_classes = [StaffPermission]
    required_permissions = {
        "create": ADD_SCHEDULE,
        "update": CHANGE_SCHEDULE,
        "partial_update": CHANGE_SCHEDULE,
        "destroy": DELETE_SCHEDULE,
        "run": CHANGE_SCHEDULE,
        "enable": CHANGE_SCHEDULE,
        "disable": CHANGE_SCHEDULE,
        "pause": CHANGE_SCHEDULE,
        "resume": CHANGE_SCHEDULE,
        "pause_on_failure": CHANGE_SCHEDULE,
    }
    # Digits only, and no more than a database integer holds: anything else is a 404.
    lookup_value_regex = "[0-9]{1,18}"
    pagination_class = Pages

    def _context(self) -> dict[str, Any]:
        return {"request": self.request, "now": timezone.now()}

    def _schedule(self, pk: int | str) -> PeriodicTask:
        return found(selectors.schedule_by_id(int(pk)), f"no schedule with id {pk}")

    def _answer(self, pk: int | str, *, code: int = status.HTTP_200_OK) -> Response:
        # Read back through the selector: the row with its schedule and options joined.
        data = ScheduleSerializer(self._schedule(pk), context=self._context()).data
        return Response(data, status=code)

    def list(self, request: Request) -> Response:
        query = validated(ScheduleListQuerySerializer, request.query_params)
        schedules = selectors.periodic_tasks_listed(enabled=query.get("enabled"))
        return paginated(
            request,
            schedules,
            lambda page: ScheduleSerializer(page, many=True, context=self._context()).data,
            view=self,
        )

    def create(self, request: Request) -> Response:
        body = validated(ScheduleInputSerializer, request.data)
        periodic_task = services.schedule_create(
            **schedule_arguments(body), actor=request.user, source=Source.API
        )
        response = self._answer(periodic_task.pk, code=status.HTTP_201_CREATED)
        response["Location"] = response.data["url"]
        return response

    def retrieve(self, request: Request, pk: str) -> Response:
        return self._answer(pk)

    def update(self, request: Request, pk: str) -> Response:
        return self._update(request, pk, partial=False)

    def partial_update(self, request: Request, pk: str) -> Response:
        return self._update(request, pk, partial=True)

    def _update(self, request: Request, pk: str, *, partial: bool) -> Response:
        periodic_task = self._schedule(pk)
        arguments = schedule_arguments(
            validated(ScheduleInputSerializer, request.data, partial=partial)
        )
        if "name" in arguments:
            arguments["new_name"] = arguments.pop("name")
        services.schedule_update(
            name=periodic_task.name, **arguments, actor=request.user, source=Source.API
        )
        return self._answer(periodic_task.pk)

    def destroy(self, request: Request, pk: str) -> Response:
        periodic_task = self._schedule(pk)
        services.schedule_delete(name=periodic_task.name, actor=request.user, source=Source.API)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[_schedule_id],
        request=None,
        responses={202: TaskQueuedSerializer, 404: NOT_FOUND_RESPONSE},
        description="Queue one run now, outside the schedule. Needs `change_periodictask`.",
    )
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str) -> Response:
        periodic_task = self._schedule(pk)
        task_id = services.schedule_run_now(
            name=periodic_task.name, actor=request.user, source=Source.API
        )
        return queued_response(request, task_id)

    @extend_schema(
        parameters=[_schedule_id],
        request=None,
        responses={200: ScheduleSerializer, 404: NOT_FOUND_RESPONSE},
        description="Needs `change_periodictask`.",
    )
    @action(detail=True, methods=["post"])
    def enable(self, request: Request, pk: str) -> Response:
        periodic_task = self._schedule(pk)
        services.schedule_enable(name=periodic_task.name, actor=request.user, source=Source.API)
        return self._answer(periodic_task.pk)

    @extend_schema(
        parameters=[_schedule_id],
        request=None,
        responses={200: ScheduleSerializer, 404: NOT_FOUND_RESPONSE},
        description="Needs `change_periodictask`.",
    )
    @action(detail=True, methods=["post"])
    def disable(self, request: Request, pk: str) -> Response:
        periodic_task = self._schedule(pk)
        services.schedule_disable(name=periodic_task.name, actor=request.user, source=Source.API)
        return self._answer(periodic_task.pk)

    @extend_schema(
        parameters=[_schedule_id],
        request=SchedulePauseSerializer,
        responses={200: ScheduleSerializer, 400: ERRORS_RESPONSE, 404: NOT_FOUND_RESPONSE},
        description=(
            "Pause it (disabled) with a note and, optionally, when it resumes by itself: "
            '{"note": "deploy freeze", "until": "2h"}. An `until` in the past is refused. '
            "Pausing a paused schedule changes its note and end. Needs `change_periodictask`."
        ),
    )
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        periodic_task = self._schedule(pk)
        body = validated(SchedulePauseSerializer, request.data)
        services.schedule_pause(
            name=periodic_task.name,
            note=body["note"],
            until=body["until"],
            tz=settings.TIME_ZONE,
            actor=request.user,
            source=Source.API,
        )
        return self._answer(periodic_task.pk)

    @extend_schema(
        parameters=[_schedule_id],
        request=None,
        responses={200: ScheduleSerializer, 400: ERRORS_RESPONSE, 404: NOT_FOUND_RESPONSE},
        description=(
            "Resume it: enabled, its pause forgotten; the runs it missed while paused are not "
            "made. Needs `change_periodictask`."
        ),
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        periodic_task = self._schedule(pk)
        services.schedule_resume(name=periodic_task.name, actor=request.user, source=Source.API)
        return self._answer(periodic_task.pk)

    @extend_schema(
        parameters=[_schedule_id],
        request=SchedulePauseOnFailureSerializer,
        responses={200: ScheduleSerializer, 400: ERRORS_RESPONSE, 404: NOT_FOUND_RESPONSE},
        description=(
            'Pause it by itself after N failed runs in a row: {"after": 3}; {"after": null}: '
            "never. Needs `change_periodictask`."
        ),
    )
    @action(detail=True, methods=["post"], url_path="pause-on-failure")
    def pause_on_failure(self, request: Request, pk: str) -> Response:
        periodic_task = self._schedule(pk)
        body = validated(SchedulePauseOnFailureSerializer, request.data)
        services.schedule_pause_on_failure(
            name=periodic_task.name, after=body["after"], actor=request.user, source=Source.API
        )
        return self._answer(periodic_task.pk)
