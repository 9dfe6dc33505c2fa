"""The tournaments' API views: parse the request, call one selector or service, shape the answer."""

from __future__ import annotations

from datetime import timedelta

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduler.api import (
    ERRORS_RESPONSE,
    NOT_FOUND_RESPONSE,
    Pages,
    StaffPermission,
    TaskQueuedSerializer,
    field_errors,
    found,
    paginated,
    queued_response,
    validated,
)
from scheduler.permissions import RUN_TASKS
from scheduler.services import task_enqueue
from tournaments.api.serializers import (
    EntryRunSerializer,
    EntrySerializer,
    TournamentListQuerySerializer,
    TournamentSerializer,
    TournamentStartSerializer,
)
from tournaments.models import Entry, Tournament
from tournaments.selectors import (
    tournament_by_id,
    tournament_entry,
    tournament_leaderboard,
    tournaments_listed,
)
from tournaments.services import TournamentError, tournament_start

RUN_DECISION = "tournaments.run_agent_decision"

TOURNAMENT_ID = OpenApiParameter("tournament_id", OpenApiTypes.INT, OpenApiParameter.PATH)
ENTRY_ID = OpenApiParameter(
    "entry_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="one of its entries"
)


def _tournament(tournament_id: str) -> Tournament:
    return found(
        tournament_by_id(tournament_id=int(tournament_id)),
        f"no tournament with id {tournament_id}",
    )


def _entry(tournament: Tournament, entry_id: str) -> Entry:
    return found(
        tournament_entry(tournament_id=tournament.pk, entry_id=int(entry_id)),
        f"tournament {tournament.pk} has no entry {entry_id}",
    )


class TournamentListView(APIView):
    permission_classes = [StaffPermission]
    pagination_class = Pages

    @extend_schema(
        parameters=[TournamentListQuerySerializer],
        responses={200: TournamentSerializer(many=True), 400: ERRORS_RESPONSE},
        description="Tournaments, the latest start first.",
    )
    def get(self, request: Request) -> Response:
        query = validated(TournamentListQuerySerializer, request.query_params)
        return paginated(
            request,
            tournaments_listed(status=query.get("status")),
            lambda page: TournamentSerializer(page, many=True, context={"request": request}).data,
            view=self,
        )


class TournamentDetailView(APIView):
    permission_classes = [StaffPermission]

    @extend_schema(
        parameters=[TOURNAMENT_ID], responses={200: TournamentSerializer, 404: NOT_FOUND_RESPONSE}
    )
    def get(self, request: Request, tournament_id: str) -> Response:
        tournament = _tournament(tournament_id)
        return Response(TournamentSerializer(tournament, context={"request": request}).data)


class TournamentStartView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": "tournaments.change_tournament"}

    @extend_schema(
        parameters=[TOURNAMENT_ID],
        request=TournamentStartSerializer,
        responses={200: TournamentSerializer, 400: ERRORS_RESPONSE, 404: NOT_FOUND_RESPONSE},
        description=(
            "Make a scheduled tournament live now, as the admin's and the CLI's start do. "
            "Started before its start time, it starts now and its end keeps its duration, "
            "unless `ends_at` or `duration` gives a new one. Its periodic task runs its agents "
            "every decision interval until its end. Needs `tournaments.change_tournament`."
        ),
    )
    def post(self, request: Request, tournament_id: str) -> Response:
        tournament = _tournament(tournament_id)
        body = validated(TournamentStartSerializer, request.data)
        seconds = body["duration"]
        try:
            tournament_start(
                tournament=tournament,
                ends_at=body["ends_at"],
                duration=timedelta(seconds=seconds) if seconds is not None else None,
                actor=request.user,
            )
        except TournamentError as exc:
            raise field_errors(exc.errors) from exc
        started = _tournament(tournament_id)
        return Response(TournamentSerializer(started, context={"request": request}).data)


class TournamentLeaderboardView(APIView):
    permission_classes = [StaffPermission]
    pagination_class = Pages

    @extend_schema(
        parameters=[TOURNAMENT_ID],
        responses={200: EntrySerializer(many=True), 404: NOT_FOUND_RESPONSE},
        description=(
            "Its entries by rank, as the latest ranking (`tournaments.update_rankings`) left "
            "them; entries not ranked yet come last, by equity. The same rankings arrive live "
            "as `tournament.leaderboard` events on `/ws/events/?object=tournament:<id>`."
        ),
    )
    def get(self, request: Request, tournament_id: str) -> Response:
        tournament = _tournament(tournament_id)
        return paginated(
            request,
            tournament_leaderboard(tournament_id=tournament.pk),
            lambda page: EntrySerializer(page, many=True, context={"request": request}).data,
            view=self,
        )


class EntryRunView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": RUN_TASKS}

    @extend_schema(
        parameters=[TOURNAMENT_ID, ENTRY_ID],
        request=EntryRunSerializer,
        responses={202: TaskQueuedSerializer, 400: ERRORS_RESPONSE, 404: NOT_FOUND_RESPONSE},
        description=(
            "Queue one decision of the entry (`tournaments.run_agent_decision`), checked against "
            "the catalog as `POST /api/tasks/` checks it. A tick is decided once: a run for a "
            "tick decided already trades nothing. Only in a live tournament. Needs "
            "`scheduler.run_tasks`."
        ),
    )
    def post(self, request: Request, tournament_id: str, entry_id: str) -> Response:
        tournament = _tournament(tournament_id)
        entry = _entry(tournament, entry_id)
        body = validated(EntryRunSerializer, request.data)
        if tournament.status != Tournament.Status.LIVE:
            # A decision outside the tournament's time would trade at prices nobody else had.
            raise field_errors(
                {"tournament": f"{tournament.name} is {tournament.status}: only a live one runs"}
            )
        params = {"entry_id": entry.pk, "recover_from_crash": body["recover_from_crash"]}
        if body["tick"] is not None:
            params["tick"] = body["tick"]
        task_id = task_enqueue(
            task=RUN_DECISION, params=params, owner=("tournament", tournament.pk)
        )
        return queued_response(request, task_id)
