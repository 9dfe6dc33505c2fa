"""`/api/workers/`: the workers and their pools (staff), and the controls of one worker
(`scheduler.control_workers`): grow or shrink its pool, set its autoscale range, shut it down
warm. Through the same services, so the same checks and audit, as the dashboard's buttons and
`manage.py scheduler worker`.

Answers: a hostname that no worker answers for is a 404; a worker that refuses (its pool cannot
be resized, it was not started with `--autoscale`, every process is busy) a 409; bad numbers a
400 naming the field; all JSON.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import URLPattern, path, register_converter
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduler import services
from scheduler.api.base import (
    ERRORS_RESPONSE,
    NOT_FOUND_RESPONSE,
    StaffPermission,
    StrictSerializer,
    request_source,
    validated,
)
from scheduler.observability.worker_pools import worker_rows
from scheduler.permissions import CONTROL_WORKERS
from scheduler.services.workers import HOSTNAME_PATTERN

HOSTNAME = OpenApiParameter(
    "hostname", OpenApiTypes.STR, OpenApiParameter.PATH, description="a worker's hostname"
)
REFUSED_RESPONSE = OpenApiResponse(
    description='{"detail": "worker w@h was not started with --autoscale; ..."}: the worker '
    "answered and refused"
)


class WorkerHostnameConverter:
    """A worker hostname as Celery makes them: anything else is a 404 of the resolver."""

    regex = HOSTNAME_PATTERN.pattern

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(WorkerHostnameConverter, "worker_hostname")


class Refused(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "the worker refused"
    default_code = "refused"


def _controlled(call: Any, **kwargs: Any) -> Response:
    """Run a service's control; its refusals as the API's answers."""
    try:
        change = call(**kwargs)
    except services.WorkerNotFound as exc:
        raise NotFound(str(exc)) from exc
    except services.WorkerRefused as exc:
        raise Refused(str(exc)) from exc
    return Response(change.as_dict())


# --- Shapes --------------------------------------------------------------------------------------


class AutoscaleSerializer(serializers.Serializer[Any]):
    max = serializers.IntegerField()
    min = serializers.IntegerField()


class PoolSerializer(serializers.Serializer[Any]):
    kind = serializers.CharField(help_text="prefork, threads, solo, gevent or eventlet")
    processes = serializers.IntegerField(help_text="pool processes (threads) running now")
    max_concurrency = serializers.IntegerField(help_text="the size it was started with")
    autoscale = AutoscaleSerializer(allow_null=True, help_text="null: it does not autoscale")
    pid = serializers.IntegerField(allow_null=True)
    uptime = serializers.IntegerField(allow_null=True, help_text="seconds")
    prefetch_count = serializers.IntegerField(allow_null=True)


class WorkerSerializer(serializers.Serializer[Any]):
    hostname = serializers.CharField()
    answered = serializers.BooleanField(
        help_text="false: heard from lately (a heartbeat) but did not answer `inspect stats`"
    )
    last_seen = serializers.DateTimeField(allow_null=True, help_text="its last heartbeat")
    queues = serializers.ListField(child=serializers.CharField())
    pool = PoolSerializer(allow_null=True)


class PoolChangeSerializer(StrictSerializer):
    grow = serializers.IntegerField(required=False, help_text="processes to add")
    shrink = serializers.IntegerField(required=False, help_text="idle processes to stop")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if len(attrs) != 1:
            raise serializers.ValidationError({"body": ['give one of "grow" or "shrink"']})
        return attrs


class AutoscaleChangeSerializer(StrictSerializer):
    max = serializers.IntegerField(help_text="the most pool processes")
    min = serializers.IntegerField(
        required=False, help_text="the fewest pool processes (left out: kept)"
    )


class WorkerChangeSerializer(serializers.Serializer[Any]):
    hostname = serializers.CharField()
    action = serializers.CharField(help_text="pool_grown, pool_shrunk, autoscaled or shut_down")
    detail = serializers.CharField(help_text="the worker's answer")
    changes = serializers.JSONField(help_text='{"field": [before, after]}, as audited')


# --- Views ---------------------------------------------------------------------------------------


class WorkerListView(APIView):
    """Workers, with their pools as they answer `inspect stats`."""

    permission_classes = [StaffPermission]

    @extend_schema(
        responses={200: WorkerSerializer(many=True)},
        description=(
            "Every worker that answers `inspect stats` within a few seconds, and those heard "
            "from in the last WORKER_HEALTH_WINDOW seconds that did not (`answered` false, "
            "`pool` null), by hostname."
        ),
    )
    def get(self, request: Request) -> Response:
        rows = worker_rows(window=settings.WORKER_HEALTH_WINDOW)
        return Response(WorkerSerializer([row.as_dict() for row in rows], many=True).data)


class WorkerPoolView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": CONTROL_WORKERS}

    @extend_schema(
        parameters=[HOSTNAME],
        request=PoolChangeSerializer,
        responses={
            200: WorkerChangeSerializer,
            400: ERRORS_RESPONSE,
            404: NOT_FOUND_RESPONSE,
            409: REFUSED_RESPONSE,
        },
        description=(
            '{"grow": N} adds N processes to the worker\'s pool, {"shrink": N} stops N idle '
            "ones (one is always left). The worker gets there within a few seconds (GET "
            "/api/workers/ shows it). 409 when it autoscales (change its range instead), runs "
            "a pool that cannot be resized, or refuses. Needs `scheduler.control_workers`."
        ),
    )
    def post(self, request: Request, hostname: str) -> Response:
        body = validated(PoolChangeSerializer, request.data)
        who = {"hostname": hostname, "actor": request.user, "source": request_source(request)}
        if "grow" in body:
            return _controlled(services.worker_pool_grow, n=body["grow"], **who)
        return _controlled(services.worker_pool_shrink, n=body["shrink"], **who)


class WorkerAutoscaleView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": CONTROL_WORKERS}

    @extend_schema(
        parameters=[HOSTNAME],
        request=AutoscaleChangeSerializer,
        responses={
            200: WorkerChangeSerializer,
            400: ERRORS_RESPONSE,
            404: NOT_FOUND_RESPONSE,
            409: REFUSED_RESPONSE,
        },
        description=(
            "Set the range the worker autoscales its pool in. Only a worker started with "
            "`--autoscale=MAX,MIN` can: any other answers 409 saying so. Needs "
            "`scheduler.control_workers`."
        ),
    )
    def post(self, request: Request, hostname: str) -> Response:
        body = validated(AutoscaleChangeSerializer, request.data)
        return _controlled(
            services.worker_autoscale,
            hostname=hostname,
            max_processes=body["max"],
            min_processes=body.get("min"),
            actor=request.user,
            source=request_source(request),
        )


class WorkerShutdownView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": CONTROL_WORKERS}

    @extend_schema(
        parameters=[HOSTNAME],
        request=None,
        responses={202: WorkerChangeSerializer, 404: NOT_FOUND_RESPONSE},
        description=(
            "Shut this worker alone down warm: it stops taking tasks, finishes those it runs, "
            "then exits (its supervisor may start it again). 202: asked. Needs "
            "`scheduler.control_workers`."
        ),
    )
    def post(self, request: Request, hostname: str) -> Response:
        response = _controlled(
            services.worker_shutdown,
            hostname=hostname,
            actor=request.user,
            source=request_source(request),
        )
        response.status_code = status.HTTP_202_ACCEPTED
        return response


urlpatterns: list[URLPattern] = [
    path("workers/", WorkerListView.as_view(), name="api-workers"),
    path(
        "workers/<worker_hostname:hostname>/pool/",
        WorkerPoolView.as_view(),
        name="api-worker-pool",
    ),
    path(
        "workers/<worker_hostname:hostname>/autoscale/",
        WorkerAutoscaleView.as_view(),
        name="api-worker-autoscale",
    ),
    path(
        "workers/<worker_hostname:hostname>/shutdown/",
        WorkerShutdownView.as_view(),
        name="api-worker-shutdown",
    ),
]
