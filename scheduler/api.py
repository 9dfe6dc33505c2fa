from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduler.health import health_report

_health_schema = inline_serializer(
    name="Health",
    fields={"status": serializers.CharField(), "checks": serializers.DictField()},
)


class HealthView(APIView):
    """Database, Redis and worker health; 200 when healthy, 503 otherwise."""

    permission_classes = [AllowAny]

    @extend_schema(responses={200: _health_schema, 503: _health_schema})
    def get(self, request: Request) -> Response:
        report = health_report()
        return Response(report.as_dict(), status=200 if report.ok else 503)
