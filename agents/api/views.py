"""The agents' API views: parse the request, call one service, shape the answer."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from agents.api.permissions import ADD_MESSAGE, ADD_SESSION, RUN_TASKS
from agents.api.serializers import (
    RUN_ACTIONS,
    InboundMentionSerializer,
    InboundMessageSerializer,
    InboundQueuedSerializer,
    InboundSerializer,
    MentionStoredSerializer,
    MessageAnsweredSerializer,
    MessageInputSerializer,
    MessageQueuedSerializer,
    MessageSerializer,
    RunSerializer,
    SessionListQuerySerializer,
    SessionOpenSerializer,
    SessionSerializer,
)
from agents.dispatch import dispatch_message
from agents.errors import PermanentError, RetryableError
from agents.models import Agent, Mention, Session
from agents.selectors import agent_by_slug, session_by_id, session_messages, sessions_listed
from agents.services import AgentInputError, mention_receive, message_payload, session_open
from agents.signatures import HEADER, SCHEME, TOLERANCE, SignatureError, signature_verify
from scheduler.api import (
    ERRORS_RESPONSE,
    NOT_FOUND_RESPONSE,
    Pages,
    StaffPermission,
    TaskQueuedSerializer,
    absolute,
    field_errors,
    found,
    paginated,
    queued_response,
    validated,
)
from scheduler.core import MalformedJSON, read_json
from scheduler.services import task_enqueue

SESSION_ID = OpenApiParameter("session_id", OpenApiTypes.INT, OpenApiParameter.PATH)
AGENT_SLUG = OpenApiParameter(
    "slug", OpenApiTypes.STR, OpenApiParameter.PATH, description="the agent's slug"
)


class AgentUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "the agent could not answer now, try again later"


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "the body is too large"


class AgentFailed(APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "the agent's brain failed"


def _agent(slug: str) -> Agent:
    return found(agent_by_slug(slug=slug), f"no agent with the slug {slug!r}")


def _session(session_id: int | str) -> Session:
    return found(session_by_id(session_id=int(session_id)), f"no session with id {session_id}")


def _dispatch(
    request: Request, *, session: Session, text: str, source: str, message_id: str
) -> Response:
    try:
        result = dispatch_message(
            session=session,
            text=text,
            source=source,
            message_id=message_id,
        )
    except AgentInputError as exc:
        raise field_errors(exc.errors) from exc
    except RetryableError as exc:  # synchronous mode: the brain's service failed
        raise AgentUnavailable(f"the agent could not answer now: {exc.reason}") from exc
    except PermanentError as exc:  # synchronous mode: e.g. the LLM refused our key
        raise AgentFailed(f"the agent could not answer: {exc.reason}") from exc
    if result["queued"]:
        url = absolute(request, "api-task-detail", result["task_id"])
        return Response({**result, "url": url}, status=status.HTTP_202_ACCEPTED)
    return Response(result, status=status.HTTP_200_OK)


# --- Sessions ------------------------------------------------------------------------------------


class SessionListView(APIView):
    """Open a session with an agent; list sessions (latest activity first)."""

    permission_classes = [StaffPermission]
    required_permissions = {"post": ADD_SESSION}
    pagination_class = Pages

    @extend_schema(
        parameters=[SessionListQuerySerializer],
        responses={200: SessionSerializer(many=True), 400: ERRORS_RESPONSE},
    )
    def get(self, request: Request) -> Response:
        query = validated(SessionListQuerySerializer, request.query_params)
        sessions = sessions_listed(
            agent_slug=query.get("agent"), channel=query.get("channel"), status=query.get("status")
        )
        return paginated(
            request,
            sessions,
            lambda page: SessionSerializer(page, many=True, context={"request": request}).data,
            view=self,
        )

    @extend_schema(
        request=SessionOpenSerializer,
        responses={201: SessionSerializer, 400: ERRORS_RESPONSE},
        description=(
            "A new web session, or the session of an external conversation (one per agent, "
            "channel and external_id: an existing one is answered, reopened if it was closed). "
            "Needs `agents.add_session`."
        ),
    )
    def post(self, request: Request) -> Response:
        body = validated(SessionOpenSerializer, request.data)
        slug = body["agent"]
        agent = agent_by_slug(slug=slug)
        if agent is None:
            raise field_errors({"agent": f"no agent with the slug {slug!r}"})
        try:
            session = session_open(
                agent=agent,
                channel=body["channel"],
                external_id=body["external_id"],
                user=request.user,
            )
        except AgentInputError as exc:
            raise field_errors(exc.errors) from exc
        data = SessionSerializer(_session(session.pk), context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": data["url"]})


class SessionDetailView(APIView):
    permission_classes = [StaffPermission]

    @extend_schema(
        parameters=[SESSION_ID], responses={200: SessionSerializer, 404: NOT_FOUND_RESPONSE}
    )
    def get(self, request: Request, session_id: str) -> Response:
        return Response(SessionSerializer(_session(session_id), context={"request": request}).data)


class SessionMessagesView(APIView):
    """A session's messages, oldest first; say something in it."""

    permission_classes = [StaffPermission]
    required_permissions = {"post": ADD_MESSAGE}
    pagination_class = Pages

    @extend_schema(
        parameters=[SESSION_ID],
        responses={200: MessageSerializer(many=True), 404: NOT_FOUND_RESPONSE},
    )
    def get(self, request: Request, session_id: str) -> Response:
        session = _session(session_id)
        messages = session_messages(session_id=session.pk)
        return paginated(
            request, messages, lambda page: [message_payload(m) for m in page], view=self
        )

    @extend_schema(
        parameters=[SESSION_ID],
        request=MessageInputSerializer,
        responses={
            202: MessageQueuedSerializer,
            200: MessageAnsweredSerializer,
            400: ERRORS_RESPONSE,
            404: NOT_FOUND_RESPONSE,
            502: OpenApiResponse(description="synchronous mode: the agent failed for good"),
            503: OpenApiResponse(description="synchronous mode: the agent's LLM failed"),
        },
        description=(
            "Hand the text to the session's agent. Queued for a worker (202; the reply arrives "
            "on the `/ws/events/?object=session:<id>` websocket and in GET), or, in a "
            "deployment without Celery (CELERY_ENABLED=false), answered at once (200 with the "
            "reply). With `message_id`, a second delivery of the same message is stored and "
            "answered once. Needs `agents.add_message`."
        ),
    )
    def post(self, request: Request, session_id: str) -> Response:
        session = _session(session_id)
        body = validated(MessageInputSerializer, request.data)
        return _dispatch(
            request,
            session=session,
            text=body["text"],
            source=body["source"],
            message_id=body["message_id"],
        )


# --- Runs ----------------------------------------------------------------------------------------


class AgentRunView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": RUN_TASKS}

    @extend_schema(
        parameters=[AGENT_SLUG],
        request=RunSerializer,
        responses={202: TaskQueuedSerializer, 400: ERRORS_RESPONSE, 404: NOT_FOUND_RESPONSE},
        description=(
            "Queue one run of the agent's `agents.post` (params: topic) or `agents.reply` "
            "(params: time_value, time_unit), checked against the catalog as `POST /api/tasks/` "
            "checks them. Needs `scheduler.run_tasks`."
        ),
    )
    def post(self, request: Request, slug: str) -> Response:
        agent = _agent(slug)
        body = validated(RunSerializer, request.data)
        params = body["params"]
        if not isinstance(params, dict):
            raise field_errors({"params": f"must be a JSON object, not {type(params).__name__}"})
        if params.get("agent", agent.slug) != agent.slug:
            raise field_errors(
                {"params": f"agent: the agent is the one in the URL ({agent.slug!r})"}
            )
        if not agent.is_active:
            raise field_errors({"agent": f"agent {agent.slug!r} is paused"})
        task_id = task_enqueue(
            task=RUN_ACTIONS[body["action"]], params={**params, "agent": agent.slug}
        )
        return queued_response(request, task_id)


# --- Inbound webhooks ----------------------------------------------------------------------------


class InboundThrottle(SimpleRateThrottle):
    """Per agent and sender address; webhook sources burst, so more than the anonymous rate."""

    scope = "agent_inbound"

    def get_rate(self) -> str:
        return str(getattr(settings, "AGENT_INBOUND_THROTTLE_RATE", "600/minute"))

    def get_cache_key(self, request: Request, view: Any) -> str:
        slug = view.kwargs.get("slug", "")
        return self.cache_format % {
            "scope": self.scope,
            "ident": f"{slug}:{self.get_ident(request)}",
        }


_inbound_request = PolymorphicProxySerializer(
    component_name="Inbound",
    serializers=[InboundMessageSerializer, InboundMentionSerializer],
    resource_type_field_name="type",
)


class InboundView(APIView):
    """What a channel delivers to an agent, authenticated by the signature of its body alone."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [InboundThrottle]

    @extend_schema(
        auth=[],
        parameters=[
            AGENT_SLUG,
            OpenApiParameter(
                HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=True,
                description=(
                    f"`{SCHEME}`, keyed with the agent's webhook secret; refused when signed "
                    f"more than {TOLERANCE // 60} minutes ago or ahead"
                ),
            ),
        ],
        request=_inbound_request,
        responses={
            202: InboundQueuedSerializer,
            200: OpenApiResponse(
                description="a mention delivered before (MentionStored), or, without Celery, "
                "a message answered at once (MessageAnswered plus `session`)"
            ),
            201: MentionStoredSerializer,
            400: ERRORS_RESPONSE,
            403: OpenApiResponse(
                description="missing, malformed, wrong or stale signature: nothing was stored"
            ),
            404: NOT_FOUND_RESPONSE,
        },
        description=(
            "A message (`type: message`) opens or reuses the session of its conversation and "
            "is handed to the agent: 202 with the task; the same `message_id` delivered again "
            "is accepted and answered once. A mention (`type: mention`) is stored for the "
            "agent's `agents.reply` runs: 201, or 200 when it was delivered before."
        ),
    )
    def post(self, request: Request, slug: str) -> Response:
        agent = _agent(slug)  # slugs are public: a 404 here tells nothing a secret protects
        try:
            raw = request._request.body
        except RequestDataTooBig as exc:
            raise BodyTooLarge() from exc
        # Before the body is parsed or anything is stored: an unsigned request costs one HMAC.
        try:
            signature_verify(agent.webhook_secret, raw, request.headers.get(HEADER))
        except SignatureError as exc:
            raise PermissionDenied(
                f"{HEADER} refused: {exc}. Sign the raw body with the agent's webhook secret "
                f"as {SCHEME}, at most {TOLERANCE // 60} minutes before sending"
            ) from exc
        data = _json_object(raw)
        if validated(InboundSerializer, data)["type"] == "mention":
            return self._mention(agent, data)
        return self._message(request, agent, data)

    def _message(self, request: Request, agent: Agent, data: dict[str, Any]) -> Response:
        fields = validated(InboundMessageSerializer, data)
        try:
            session = session_open(
                agent=agent, channel=fields["channel"], external_id=fields["conversation"]
            )
        except AgentInputError as exc:
            raise field_errors(exc.errors, {"external_id": "conversation"}) from exc
        response = _dispatch(
            request,
            session=session,
            text=fields["text"],
            source=fields["channel"],
            message_id=fields["message_id"],
        )
        response.data = {"session": session.pk, **response.data}
        return response

    def _mention(self, agent: Agent, data: dict[str, Any]) -> Response:
        fields = validated(InboundMentionSerializer, data)
        try:
            mention, created = mention_receive(
                agent=agent,
                external_id=fields["mention_id"],
                content=fields["text"],
                author=fields["author"],
                source=fields["source"],
            )
        except AgentInputError as exc:
            raise field_errors(
                exc.errors, {"external_id": "mention_id", "content": "text"}
            ) from exc
        return Response(
            {"created": created, "mention": _mention_payload(mention)},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = read_json(raw)
    except MalformedJSON as exc:
        raise ParseError(str(exc)) from exc
    if not isinstance(data, dict):
        raise ParseError(f"expected a JSON object, not {type(data).__name__}")
    return data


def _mention_payload(mention: Mention) -> dict[str, Any]:
    return {
        "id": mention.pk,
        "source": mention.source,
        "external_id": mention.external_id,
        "author": mention.author,
        "content": mention.content,
        "received_at": mention.received_at.isoformat(),
        "replied_at": mention.replied_at.isoformat() if mention.replied_at else None,
    }
