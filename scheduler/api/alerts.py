"""The API of alerting's settings (`/api/alerts/`): rules and channels by name, a channel's test
notification, and the notification log. Incidents are `incidents.py`'s.

Reads need `scheduler.view_dashboard`, as the dashboard's panel shows the same; rules and
channels are written with their model permissions, as in the admin. Values are checked by the
alert services (the admin's and the CLI's messages).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.urls import URLPattern, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduler import selectors
from scheduler.api.base import (
    ERRORS_RESPONSE,
    NOT_FOUND_RESPONSE,
    Pages,
    StaffPermission,
    StrictSerializer,
    absolute,
    found,
    paginated,
    validated,
)
from scheduler.models import AlertChannel, AlertRule, NotificationDelivery, Source
from scheduler.observability.pagination import EstimatedCountPaginator
from scheduler.permissions import (
    ADD_ALERT_CHANNEL,
    ADD_ALERT_RULE,
    CHANGE_ALERT_CHANNEL,
    CHANGE_ALERT_RULE,
    DELETE_ALERT_CHANNEL,
    DELETE_ALERT_RULE,
    VIEW_DASHBOARD,
)
from scheduler.services.alerts import (
    NAME_MAX,
    AlertNotFound,
    RuleInput,
    channel_delete,
    channel_save,
    rule_delete,
    rule_save,
    rule_snapshot,
)
from scheduler.services.incidents import channel_send_test

ID_MAX = 2**63 - 1

NAME = OpenApiParameter(
    "name", OpenApiTypes.STR, OpenApiParameter.PATH, description="the rule's or channel's name"
)


@contextmanager
def found_or_404() -> Iterator[None]:
    """A rule, channel or incident gone meanwhile (deleted by someone else): a 404."""
    try:
        yield
    except AlertNotFound as exc:
        raise NotFound(str(exc)) from exc


def _same_name(body: dict[str, Any], name: str) -> None:
    given = body.pop("name", None)
    if given is not None and given.strip() != name:
        raise serializers.ValidationError(
            {"name": [f"is {name!r} (the URL's): delete it and create one by the new name"]}
        )


# --- Rules ---------------------------------------------------------------------------------


class RuleInputSerializer(StrictSerializer):
    """An alert rule to save; values are checked by `rule_save`."""

    name = serializers.CharField(
        required=False, allow_blank=True, help_text="on update: the URL's (rules are not renamed)"
    )
    trigger = serializers.CharField(allow_blank=True, help_text=", ".join(AlertRule.Trigger.values))
    target_type = serializers.CharField(
        required=False, help_text=f"{', '.join(AlertRule.Target.values)} (default all)"
    )
    target = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="what the rule watches: a schedule's name, a catalog task, an agent's slug, ...",
    )
    threshold = serializers.IntegerField(
        required=False, allow_null=True, help_text="N: failures in a row, or a queue's depth"
    )
    duration = serializers.IntegerField(
        required=False, allow_null=True, help_text="D or T in seconds"
    )
    channels = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="names of alert channels"
    )
    repeat_interval = serializers.IntegerField(
        required=False, help_text="seconds before an open incident is told again (0: never)"
    )
    quiet_start = serializers.TimeField(required=False, allow_null=True)
    quiet_end = serializers.TimeField(required=False, allow_null=True)
    quiet_timezone = serializers.CharField(required=False, help_text="IANA zone (default UTC)")
    enabled = serializers.BooleanField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)


class RuleCreateSerializer(RuleInputSerializer):
    name = serializers.CharField(allow_blank=True)


class RuleSerializer(serializers.Serializer[Any]):
    """A rule as `rule_snapshot` gives it (its audit trail and exports say the same)."""

    name = serializers.CharField()
    enabled = serializers.BooleanField()
    trigger = serializers.CharField()
    target_type = serializers.CharField()
    target = serializers.CharField()
    threshold = serializers.IntegerField(allow_null=True)
    duration = serializers.IntegerField(allow_null=True)
    channels = serializers.ListField(child=serializers.CharField())
    repeat_interval = serializers.IntegerField()
    quiet_start = serializers.CharField(allow_null=True)
    quiet_end = serializers.CharField(allow_null=True)
    quiet_timezone = serializers.CharField()
    description = serializers.CharField()
    url = serializers.URLField()

    def to_representation(self, rule: AlertRule) -> dict[str, Any]:
        url = absolute(self.context.get("request"), "api-alert-rule", rule.name)
        return {**rule_snapshot(rule), "url": url}


def _rule_fields(rule: AlertRule) -> dict[str, Any]:
    """The saved rule as `RuleInput`'s fields: what an update leaves as it is."""
    return {
        "name": rule.name,
        "trigger": rule.trigger,
        "target_type": rule.target_type,
        "target": rule.target,
        "threshold": rule.threshold,
        "duration": rule.duration,
        "channels": [channel.name for channel in rule.channels.all()],
        "repeat_interval": rule.repeat_interval,
        "quiet_start": rule.quiet_start,
        "quiet_end": rule.quiet_end,
        "quiet_timezone": rule.quiet_timezone,
        "enabled": rule.enabled,
        "description": rule.description,
    }


def _rule_answer(request: Request, name: str, *, code: int = status.HTTP_200_OK) -> Response:
    rule = found(selectors.alert_rule_named(name), f"no rule {name!r}")
    return Response(RuleSerializer(rule, context={"request": request}).data, status=code)


class RuleListView(APIView):
    """Alert rules, by name; create one."""

    permission_classes = [StaffPermission]
    required_permissions = {"get": VIEW_DASHBOARD, "post": ADD_ALERT_RULE}
    pagination_class = Pages

    @extend_schema(responses=RuleSerializer(many=True))
    def get(self, request: Request) -> Response:
        return paginated(
            request,
            selectors.alert_rules(),
            lambda page: RuleSerializer(page, many=True, context={"request": request}).data,
            view=self,
        )

    @extend_schema(
        request=RuleCreateSerializer,
        responses={201: RuleSerializer, 400: ERRORS_RESPONSE},
        description="Needs `scheduler.add_alertrule`.",
    )
    def post(self, request: Request) -> Response:
        body = validated(RuleCreateSerializer, request.data)
        rule = rule_save(RuleInput(**body), actor=request.user, source=Source.API, create=True)
        response = _rule_answer(request, rule.name, code=status.HTTP_201_CREATED)
        response["Location"] = response.data["url"]
        return response


class RuleDetailView(APIView):
    """One alert rule: read, change (PUT: trigger required; PATCH: the fields given; fields left
    out keep their values), delete."""

    permission_classes = [StaffPermission]
    required_permissions = {
        "get": VIEW_DASHBOARD,
        "put": CHANGE_ALERT_RULE,
        "patch": CHANGE_ALERT_RULE,
        "delete": DELETE_ALERT_RULE,
    }

    @extend_schema(parameters=[NAME], responses={200: RuleSerializer, 404: NOT_FOUND_RESPONSE})
    def get(self, request: Request, name: str) -> Response:
        return _rule_answer(request, name)

    @extend_schema(
        parameters=[NAME],
        request=RuleInputSerializer,
        responses={200: RuleSerializer, 400: ERRORS_RESPONSE, 404: NOT_FOUND_RESPONSE},
        description="Needs `scheduler.change_alertrule`.",
    )
    def put(self, request: Request, name: str) -> Response:
        return self._save(request, name, partial=False)

    @extend_schema(
        parameters=[NAME],
        request=RuleInputSerializer,
        responses={200: RuleSerializer, 400: ERRORS_RESPONSE, 404: NOT_FOUND_RESPONSE},
        description="Needs `scheduler.change_alertrule`.",
    )
    def patch(self, request: Request, name: str) -> Response:
        return self._save(request, name, partial=True)

    def _save(self, request: Request, name: str, *, partial: bool) -> Response:
        rule = found(selectors.alert_rule_named(name), f"no rule {name!r}")
        body = validated(RuleInputSerializer, request.data, partial=partial)
        _same_name(body, rule.name)
        fields = {**_rule_fields(rule), **body}
        with found_or_404():
            rule_save(RuleInput(**fields), actor=request.user, source=Source.API, create=False)
        return _rule_answer(request, rule.name)

    @extend_schema(
        parameters=[NAME],
        responses={204: None, 404: NOT_FOUND_RESPONSE},
        description="Needs `scheduler.delete_alertrule`; its incidents go with it.",
    )
    def delete(self, request: Request, name: str) -> Response:
        with found_or_404():
            rule_delete(name=name, actor=request.user, source=Source.API)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Channels ------------------------------------------------------------------------------


class ChannelInputSerializer(StrictSerializer):
    """An alert channel to save; its settings are checked by its kind."""

    name = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="on update: the URL's (channels are not renamed)",
    )
    kind = serializers.CharField(
        allow_blank=True, help_text="a channel kind: email, webhook, slack, signal, ..."
    )
    config = serializers.JSONField(
        required=False, help_text="the kind's settings, e.g. {'to': [...]} for email"
    )
    enabled = serializers.BooleanField(required=False)


class ChannelCreateSerializer(ChannelInputSerializer):
    name = serializers.CharField(allow_blank=True)


class ChannelSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    kind = serializers.CharField()
    config = serializers.JSONField(help_text="no secrets: a signing key is named, not stored")
    enabled = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField()

    def get_url(self, channel: AlertChannel) -> str:
        return absolute(self.context.get("request"), "api-alert-channel", channel.name)


def _channel_answer(request: Request, name: str, *, code: int = status.HTTP_200_OK) -> Response:
    channel = found(selectors.alert_channel_named(name), f"no channel {name!r}")
    return Response(ChannelSerializer(channel, context={"request": request}).data, status=code)


class ChannelListView(APIView):
    """Alert channels, by name; create one."""

    permission_classes = [StaffPermission]
    required_permissions = {"get": VIEW_DASHBOARD, "post": ADD_ALERT_CHANNEL}
    pagination_class = Pages

    @extend_schema(responses=ChannelSerializer(many=True))
    def get(self, request: Request) -> Response:
        return paginated(
            request,
            selectors.alert_channels(),
            lambda page: ChannelSerializer(page, many=True, context={"request": request}).data,
            view=self,
        )

    @extend_schema(
        request=ChannelCreateSerializer,
        responses={201: ChannelSerializer, 400: ERRORS_RESPONSE},
        description="Needs `scheduler.add_alertchannel`.",
    )
    def post(self, request: Request) -> Response:
        body = validated(ChannelCreateSerializer, request.data)
        channel = channel_save(**body, actor=request.user, source=Source.API, create=True)
        response = _channel_answer(request, channel.name, code=status.HTTP_201_CREATED)
        response["Location"] = response.data["url"]
        return response


class ChannelDetailView(APIView):
    """One alert channel: read, change (kind required; config and enabled left out keep their
    values), delete."""

    permission_classes = [StaffPermission]
    required_permissions = {
        "get": VIEW_DASHBOARD,
        "put": CHANGE_ALERT_CHANNEL,
        "delete": DELETE_ALERT_CHANNEL,
    }

    @extend_schema(parameters=[NAME], responses={200: ChannelSerializer, 404: NOT_FOUND_RESPONSE})
    def get(self, request: Request, name: str) -> Response:
        return _channel_answer(request, name)

    @extend_schema(
        parameters=[NAME],
        request=ChannelInputSerializer,
        responses={200: ChannelSerializer, 400: ERRORS_RESPONSE, 404: NOT_FOUND_RESPONSE},
        description="Needs `scheduler.change_alertchannel`.",
    )
    def put(self, request: Request, name: str) -> Response:
        channel = found(selectors.alert_channel_named(name), f"no channel {name!r}")
        body = validated(ChannelInputSerializer, request.data)
        _same_name(body, channel.name)
        fields = {"config": channel.config, "enabled": channel.enabled, **body}
        with found_or_404():
            channel_save(
                name=channel.name, **fields, actor=request.user, source=Source.API, create=False
            )
        return _channel_answer(request, channel.name)

    @extend_schema(
        parameters=[NAME],
        responses={204: None, 404: NOT_FOUND_RESPONSE},
        description="Needs `scheduler.delete_alertchannel`; its log of deliveries goes with it.",
    )
    def delete(self, request: Request, name: str) -> Response:
        with found_or_404():
            channel_delete(name=name, actor=request.user, source=Source.API)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelTestedSerializer(serializers.Serializer[Any]):
    delivery_id = serializers.IntegerField(help_text="in GET /api/alerts/deliveries/")
    channel = serializers.CharField()
    status = serializers.CharField()


class ChannelTestView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": CHANGE_ALERT_CHANNEL}

    @extend_schema(
        parameters=[NAME],
        request=None,
        responses={202: ChannelTestedSerializer, 404: NOT_FOUND_RESPONSE},
        description=(
            "Queue a test notification to the channel (whether it is enabled or not); its "
            "delivery is logged. Needs `scheduler.change_alertchannel`."
        ),
    )
    def post(self, request: Request, name: str) -> Response:
        with found_or_404():
            delivery = channel_send_test(name=name, actor=request.user, source=Source.API)
        return Response(
            {"delivery_id": delivery.pk, "channel": name, "status": delivery.status},
            status=status.HTTP_202_ACCEPTED,
        )


# --- The notification log ------------------------------------------------------------------


class DeliverySerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    incident = serializers.IntegerField(source="incident_id", allow_null=True)
    channel = serializers.CharField(source="channel.name")
    kind = serializers.CharField(help_text=", ".join(NotificationDelivery.Kind.values))
    status = serializers.CharField(help_text=", ".join(NotificationDelivery.Status.values))
    subject = serializers.CharField()
    message = serializers.CharField()
    attempts = serializers.IntegerField()
    response_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    task_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)


class DeliveryQuerySerializer(serializers.Serializer[Any]):
    channel = serializers.CharField(required=False, max_length=NAME_MAX, help_text="its name")
    status = serializers.ChoiceField(
        choices=NotificationDelivery.Status.values, required=False, allow_blank=True
    )
    kind = serializers.ChoiceField(
        choices=NotificationDelivery.Kind.values, required=False, allow_blank=True
    )
    incident = serializers.IntegerField(required=False, min_value=1, max_value=ID_MAX)


class DeliveryPages(Pages):
    """The log grows with every notification: unfiltered, its size is the database's estimate
    (scheduler/observability/pagination.py), as for the results history."""

    django_paginator_class = EstimatedCountPaginator


class DeliveryListView(APIView):
    """The notification log: every notification sent or tried, newest first."""

    permission_classes = [StaffPermission]
    required_permissions = {"get": VIEW_DASHBOARD}
    pagination_class = DeliveryPages

    @extend_schema(
        parameters=[DeliveryQuerySerializer],
        responses={200: DeliverySerializer(many=True), 400: ERRORS_RESPONSE},
    )
    def get(self, request: Request) -> Response:
        query = validated(DeliveryQuerySerializer, request.query_params)
        deliveries = selectors.notification_deliveries(
            channel=query.get("channel", ""),
            status=query.get("status", ""),
            kind=query.get("kind", ""),
            incident=query.get("incident"),
        )
        return paginated(
            request, deliveries, lambda page: DeliverySerializer(page, many=True).data, view=self
        )


# Names are free text: a path, so that one with a "/" can be named too (the channel's test route
# comes first).
urlpatterns: list[URLPattern] = [
    path("alerts/rules/", RuleListView.as_view(), name="api-alert-rules"),
    path("alerts/rules/<path:name>/", RuleDetailView.as_view(), name="api-alert-rule"),
    path("alerts/channels/", ChannelListView.as_view(), name="api-alert-channels"),
    path(
        "alerts/channels/<path:name>/test/",
        ChannelTestView.as_view(),
        name="api-alert-channel-test",
    ),
    path("alerts/channels/<path:name>/", ChannelDetailView.as_view(), name="api-alert-channel"),
    path("alerts/deliveries/", DeliveryListView.as_view(), name="api-alert-deliveries"),
]
