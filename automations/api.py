"""Automation rules (CRUD, a dry run against a sample event) and their run log (read only, newest
first, cursor-paginated). Writes go through automations.services, so pages and API check the same."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import crud_actions
from automations.models import Match, Rule, RuleRun, RunOutcome, Trigger
from automations.services import KIND_OF_TRIGGER, rule_delete, rule_dry_run, rule_save, sample_payload
from core.roles import Action
from crm.models import Contact

RULE_EXAMPLE = {
    "name": "Lead quente",
    "enabled": True,
    "trigger": "tag_added",
    "trigger_config": {"tag_id": 3},
    "match": "all",
    "conditions": [
        {"kind": "business_hours", "inside": True, "days": [0, 1, 2, 3, 4], "start": "09:00", "end": "18:00"}
    ],
    "actions": [
        {"type": "assign_round_robin"},
        {"type": "cadence_enroll", "cadence_id": 2},
        {"type": "voice_call", "agent_id": 4},
    ],
}


class RuleSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    trigger = serializers.ChoiceField(choices=Trigger.choices)
    match = serializers.ChoiceField(choices=Match.choices, default=Match.ALL)
    trigger_config = serializers.DictField(required=False, help_text="tag_id, stage_id, hook_id or keywords")
    conditions = serializers.ListField(child=serializers.DictField(), required=False)
    actions = serializers.ListField(child=serializers.DictField(), allow_empty=False)

    class Meta:
        model = Rule
        fields = [
            "id",
            "name",
            "enabled",
            "trigger",
            "trigger_config",
            "match",
            "conditions",
            "actions",
            "max_runs_per_hour",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]


class RuleRunSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    outcome = serializers.ChoiceField(choices=RunOutcome.choices, read_only=True)

    class Meta:
        model = RuleRun
        fields = [
            "id",
            "rule",
            "event",
            "kind",
            "contact_id",
            "outcome",
            "conditions",
            "actions_done",
            "error",
            "depth",
            "created_at",
        ]
        read_only_fields = fields


class DryRunRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    contact_id = serializers.IntegerField()
    text = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="the message, for message and keyword rules"
    )
    event = serializers.DictField(
        required=False, default=dict, help_text="more of the event: tag_id, stage_id, hook_id..."
    )


DryRunSerializer = inline_serializer(
    "RuleDryRun",
    {
        "fits": serializers.BooleanField(help_text="the event is the one the rule starts from"),
        "matched": serializers.BooleanField(),
        "conditions": serializers.ListField(child=serializers.DictField()),
        "actions": serializers.ListField(child=serializers.CharField(), help_text="what would run; nothing ran"),
        "notes": serializers.ListField(child=serializers.CharField()),
    },
)


class RuleViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    """Automation rules: WHEN `trigger` (narrowed by `trigger_config`) IF `conditions` (all/any) THEN `actions`."""

    serializer_class = RuleSerializer
    queryset = Rule.objects.all()
    required_actions = {**crud_actions(read=Action.RULE_VIEW, write=Action.RULE_MANAGE), "test": Action.RULE_MANAGE}

    @extend_schema(examples=[OpenApiExample("tag quente", value=RULE_EXAMPLE, request_only=True)])
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = rule_save(**serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        rule: Rule = serializer.instance
        current = {
            f: getattr(rule, f)
            for f in (
                "name",
                "enabled",
                "trigger",
                "trigger_config",
                "match",
                "conditions",
                "actions",
                "max_runs_per_hour",
            )
        }
        serializer.instance = rule_save(rule=rule, **{**current, **serializer.validated_data})

    def perform_destroy(self, instance: Rule) -> None:
        rule_delete(rule=instance)

    @extend_schema(request=DryRunRequestSerializer, responses={200: DryRunSerializer})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Dry run: what the rule would do on a sample event about this contact. Nothing changes."""
        rule = self.get_object()
        given = DryRunRequestSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        contact = get_object_or_404(Contact, pk=given.validated_data["contact_id"])
        payload = sample_payload(
            kind=KIND_OF_TRIGGER[rule.trigger],
            contact=contact,
            text=given.validated_data["text"],
            extra=given.validated_data["event"],
        )
        result = rule_dry_run(rule=rule, payload=payload)
        return Response(
            {
                "fits": result.fits,
                "matched": result.matched,
                "conditions": result.conditions,
                "actions": result.actions,
                "notes": result.notes,
            }
        )


class RunPagination(CursorPagination):
    ordering = "-id"
    page_size = 50


class RuleRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """The run log, newest first: whether each rule matched, what each action did, stops and errors."""

    serializer_class = RuleRunSerializer
    pagination_class = RunPagination
    required_actions = {"list": Action.RULE_VIEW, "retrieve": Action.RULE_VIEW}

    @extend_schema(
        parameters=[
            OpenApiParameter("rule", int, description="only this rule's runs"),
            OpenApiParameter("outcome", str, enum=RunOutcome.values),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        found = RuleRun.objects.all()
        rule, outcome = self.request.query_params.get("rule", ""), self.request.query_params.get("outcome", "")
        if rule.isdigit():
            found = found.filter(rule_id=int(rule))
        if outcome in RunOutcome.values:
            found = found.filter(outcome=outcome)
        return found
