"""Assistants over the API (CRUD; the channels they answer on as ids)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ValidationError

from accounts.permissions import crud_actions
from ai.models import Assistant, AssistantBinding, Tool
from ai.services import assistant_delete, assistant_save
from core.roles import Action
from inbox.models import Channel


class AssistantSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    channels = serializers.PrimaryKeyRelatedField(
        many=True, required=False, queryset=Channel.objects.all(), help_text="Channels this assistant answers on."
    )
    allowed_tools = serializers.ListField(child=serializers.ChoiceField(choices=Tool.choices), required=False)

    class Meta:
        model = Assistant
        fields = [
            "id",
            "name",
            "is_active",
            "instructions",
            "sections",
            "tone",
            "language",
            "model",
            "temperature",
            "max_tokens",
            "greeting",
            "fallback_message",
            "retrieval_template",
            "refused_topics",
            "no_unlisted_prices",
            "business_hours_start",
            "business_hours_end",
            "business_days",
            "out_of_hours",
            "out_of_hours_message",
            "reply_delay_s",
            "debounce_s",
            "handoff_keywords",
            "handoff_after_turns",
            "handoff_min_score",
            "handoff_message",
            "allowed_tools",
            "knowledge_base_ids",
            "channels",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def to_representation(self, instance: Assistant) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["channels"] = list(
            AssistantBinding.objects.filter(assistant=instance, stage__isnull=True).values_list("channel_id", flat=True)
        )
        return data


class AssistantViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    """AI assistants (personas). Reading is for every member; writes need an owner or admin."""

    serializer_class = AssistantSerializer
    queryset = Assistant.objects.all()
    required_actions = crud_actions(read=Action.ASSISTANT_VIEW, write=Action.ASSISTANT_MANAGE)

    def _save(self, serializer: Any, instance: Assistant | None) -> None:
        data = dict(serializer.validated_data)
        channels = data.pop("channels", None)
        try:
            serializer.instance = assistant_save(assistant=instance, channels=channels, **data)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}) from exc

    def perform_create(self, serializer: Any) -> None:
        self._save(serializer, None)

    def perform_update(self, serializer: Any) -> None:
        self._save(serializer, serializer.instance)

    def perform_destroy(self, instance: Assistant) -> None:
        assistant_delete(assistant=instance)
