"""Pipeline endpoints: boards, stages, cards, moves (with who moved, from, to and why)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import crud_actions
from core.roles import Action
from kanban.models import ActorKind, Board, Card, CardMove, Stage
from kanban.selectors import card_history
from kanban.services import board_create, card_create, card_delete, card_move, card_update, stage_create, stage_delete


class StageSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Stage
        fields = ["id", "board", "name", "color", "kind", "meaning", "rank"]
        read_only_fields = ["rank"]


class BoardSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    stages = StageSerializer(many=True, read_only=True)

    class Meta:
        model = Board
        fields = ["id", "name", "stages", "created_at"]


class CardSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Card
        fields = [
            "id",
            "board",
            "stage",
            "rank",
            "contact",
            "title",
            "value",
            "currency",
            "owner",
            "tags",
            "next_action_at",
            "notes",
            "source",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["rank", "created_at", "updated_at"]


class MoveSerializer(serializers.Serializer):  # type: ignore[type-arg]
    stage = serializers.IntegerField()
    after = serializers.IntegerField(required=False, allow_null=True, help_text="Put the card right after this card.")
    before = serializers.IntegerField(required=False, allow_null=True, help_text="Or right before this one.")
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class CardMoveSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = CardMove
        fields = ["id", "card", "from_stage", "to_stage", "actor_kind", "actor", "reason", "created_at"]


class BoardViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    serializer_class = BoardSerializer
    queryset = Board.objects.prefetch_related("stages")
    required_actions = crud_actions(read=Action.PIPELINE_VIEW, write=Action.PIPELINE_MANAGE)

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = board_create(name=serializer.validated_data["name"])


class StageViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    """Stages; ?board=<id> filters. DELETE moves nothing: a stage with cards is refused."""

    serializer_class = StageSerializer
    required_actions = crud_actions(read=Action.PIPELINE_VIEW, write=Action.PIPELINE_MANAGE)

    def get_queryset(self) -> QuerySet[Stage]:
        qs = Stage.objects.all()
        board = self.request.query_params.get("board")
        return qs.filter(board_id=board) if board and board.isdigit() else qs

    def perform_create(self, serializer: Any) -> None:
        data = dict(serializer.validated_data)
        serializer.instance = stage_create(**data)

    def perform_destroy(self, instance: Stage) -> None:
        stage_delete(stage=instance)


class CardViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    """Cards; ?board=<id>&stage=<id> filter. Move with POST cards/{id}/move/."""

    serializer_class = CardSerializer
    required_actions = {
        **crud_actions(read=Action.PIPELINE_VIEW, write=Action.CARD_EDIT),
        "move": Action.CARD_EDIT,
        "moves": Action.PIPELINE_VIEW,
    }

    def get_queryset(self) -> QuerySet[Card]:
        qs = Card.objects.prefetch_related("tags").order_by("stage__rank", "rank")
        for param in ("board", "stage"):
            value = self.request.query_params.get(param)
            if value and value.isdigit():
                qs = qs.filter(**{f"{param}_id": int(value)})
        return qs

    def perform_create(self, serializer: Any) -> None:
        data = dict(serializer.validated_data)
        serializer.instance = card_create(actor=self.request.user, actor_kind=ActorKind.API, **data)

    def perform_update(self, serializer: Any) -> None:
        data = {k: v for k, v in serializer.validated_data.items() if k not in ("board", "stage")}
        serializer.instance = card_update(card=serializer.instance, **data)

    def perform_destroy(self, instance: Card) -> None:
        card_delete(card=instance)

    @extend_schema(request=MoveSerializer, responses=CardSerializer)
    @action(detail=True, methods=["post"])
    def move(self, request: Request, pk: str | None = None) -> Response:
        data = MoveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        card = self.get_object()
        try:
            moved = card_move(
                card_id=card.pk,
                to_stage_id=data.validated_data["stage"],
                after_id=data.validated_data.get("after"),
                before_id=data.validated_data.get("before"),
                actor=request.user,
                actor_kind=ActorKind.API,
                reason=data.validated_data["reason"],
            )
        except Stage.DoesNotExist as exc:
            raise ValidationError({"stage": ["No such stage."]}) from exc
        return Response(CardSerializer(moved).data)

    @extend_schema(responses=CardMoveSerializer(many=True))
    @action(detail=True, methods=["get"])
    def moves(self, request: Request, pk: str | None = None) -> Response:
        return Response(CardMoveSerializer(card_history(card=self.get_object()), many=True).data)
