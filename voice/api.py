"""Calls (list, retrieve, start one) and voice agents (CRUD, synced with Retell on every write)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import crud_actions
from core.roles import Action
from crm.selectors import contacts_filter
from crm.services import phone_normalize
from voice.models import Call, VoiceAgent
from voice.selectors import calls_filter, voice_agents_active
from voice.services import call_start, voice_agent_create, voice_agent_delete, voice_agent_update


class CallSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Call
        fields = [
            "id",
            "agent",
            "contact",
            "direction",
            "from_number",
            "to_number",
            "retell_call_id",
            "status",
            "started_at",
            "ended_at",
            "duration_ms",
            "disconnection_reason",
            "transcript",
            "transcript_object",
            "recording_url",
            "summary",
            "sentiment",
            "successful",
            "cost_cents",
            "created_at",
        ]
        read_only_fields = fields


class CallStartSerializer(serializers.Serializer):  # type: ignore[type-arg]
    contact_id = serializers.IntegerField()
    agent_id = serializers.IntegerField()


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("contact", int, description="Only this contact's calls."),
            OpenApiParameter("direction", str, enum=["in", "out"]),
            OpenApiParameter("status", str, enum=["registered", "ongoing", "ended", "error", "not_connected"]),
        ]
    )
)
class CallViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """AI voice calls; ?contact=<id>&direction=in|out&status=… filter. POST starts an outbound call."""

    serializer_class = CallSerializer
    required_actions = {"list": Action.CALL_VIEW, "retrieve": Action.CALL_VIEW, "create": Action.CALL_START}

    def get_queryset(self) -> QuerySet[Call]:
        params = self.request.query_params
        contact = params.get("contact", "")
        return calls_filter(
            direction=params.get("direction", ""),
            status=params.get("status", ""),
            contact_id=contact if contact.isdigit() else None,
        )

    @extend_schema(request=CallStartSerializer, responses={201: CallSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = CallStartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        contact = contacts_filter().filter(pk=data.validated_data["contact_id"]).first()
        if contact is None:
            raise ValidationError({"contact_id": [_("No such contact.")]})
        agent = voice_agents_active().filter(pk=data.validated_data["agent_id"]).first()
        if agent is None:
            raise ValidationError({"agent_id": [_("No such active voice agent.")]})
        call = call_start(contact=contact, agent=agent, actor=request.user)
        return Response(CallSerializer(call).data, status=status.HTTP_201_CREATED)


class VoiceAgentSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = VoiceAgent
        fields = [
            "id",
            "name",
            "prompt",
            "begin_message",
            "voice_id",
            "language",
            "from_number",
            "is_active",
            "retell_agent_id",
            "retell_llm_id",
            "created_at",
        ]
        read_only_fields = ["retell_agent_id", "retell_llm_id", "created_at"]

    def validate_from_number(self, value: str) -> str:
        try:
            return phone_normalize(value) if value else ""
        except DjangoValidationError as exc:
            raise ValidationError(_("Enter a valid phone number, e.g. +5511999990000.")) from exc


class VoiceAgentViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    """Voice agents. Every create and update is synced to Retell (LLM + agent); writes need a manager."""

    serializer_class = VoiceAgentSerializer
    queryset = VoiceAgent.objects.all()

    required_actions = crud_actions(read=Action.VOICEAGENT_VIEW, write=Action.VOICEAGENT_MANAGE)

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = voice_agent_create(**serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = voice_agent_update(agent=serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance: VoiceAgent) -> None:
        voice_agent_delete(agent=instance)
