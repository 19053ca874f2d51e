"""Assistants over the API (CRUD; the channels they answer on as ids), custom HTTP tools (CRUD, a test
call, a new secret; the secret is in the answer only when made), the AI's lead suggestions (list,
accept, dismiss), the agents' copilot on a conversation, and suggested FAQ pairs (list, approve into a
knowledge base, dismiss)."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import crud_actions
from ai import copilot
from ai.client import AIError
from ai.faq import faq_approve, faq_dismiss
from ai.http_tools import http_tool_delete, http_tool_save, http_tool_secret_rotate, http_tool_test
from ai.leads import suggestion_accept, suggestion_dismiss
from ai.models import Assistant, AssistantBinding, FaqStatus, FaqSuggestion, HttpTool, LeadSuggestion, Tool
from ai.services import ai_settings_current, assistant_delete, assistant_save
from core.roles import Action
from inbox.models import Channel
from inbox.selectors import conversations_visible_to
from knowledge.selectors import knowledge_bases_list

logger = logging.getLogger(__name__)


class AssistantSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    channels = serializers.PrimaryKeyRelatedField(
        many=True, required=False, queryset=Channel.objects.all(), help_text="Channels this assistant answers on."
    )
    allowed_tools = serializers.ListField(child=serializers.ChoiceField(choices=Tool.choices), required=False)
    http_tools = serializers.PrimaryKeyRelatedField(
        many=True, required=False, queryset=HttpTool.objects.all(), help_text="Custom HTTP tools it may call."
    )

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
            "http_tools",
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


def _django_error(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})


class HttpToolSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = HttpTool
        fields = ["id", "name", "description", "url", "arguments_schema", "timeout_s", "is_active", "created_at"]
        read_only_fields = ["created_at"]


class HttpToolTestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    arguments = serializers.JSONField(required=False, default=dict)


class HttpToolViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    """Custom HTTP tools (owners and admins). The signing secret is answered once, as `secret`, when the
    tool is created or its secret renewed; never again."""

    serializer_class = HttpToolSerializer
    queryset = HttpTool.objects.all()
    required_actions = {
        **crud_actions(read=Action.ASSISTANT_MANAGE, write=Action.ASSISTANT_MANAGE),
        "test": Action.ASSISTANT_MANAGE,
        "rotate_secret": Action.ASSISTANT_MANAGE,
    }

    def _save(self, serializer: Any, instance: HttpTool | None) -> str:
        try:
            tool, secret = http_tool_save(actor=self.request.membership, tool=instance, **serializer.validated_data)  # type: ignore[attr-defined]
        except DjangoValidationError as exc:
            raise _django_error(exc) from exc
        serializer.instance = tool
        return secret

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        secret = self._save(serializer, None)
        return Response({**serializer.data, "secret": secret}, status=201)

    def perform_update(self, serializer: Any) -> None:
        self._save(serializer, serializer.instance)

    def perform_destroy(self, instance: HttpTool) -> None:
        http_tool_delete(actor=self.request.membership, tool=instance)  # type: ignore[attr-defined]

    @extend_schema(request=HttpToolTestSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Call the tool with {"arguments": {...}} (no conversation, no contact); the answer the model would get."""
        body = HttpToolTestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        member = request.membership  # type: ignore[attr-defined]
        result = http_tool_test(actor=member, tool=self.get_object(), arguments=body.validated_data["arguments"])
        return Response(result)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        return Response({"secret": http_tool_secret_rotate(actor=request.membership, tool=self.get_object())})  # type: ignore[attr-defined]


class LeadSuggestionSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = LeadSuggestion
        fields = [
            "id",
            "conversation",
            "card",
            "board",
            "from_stage",
            "stage",
            "intent",
            "interest",
            "confidence",
            "reason",
            "score",
            "status",
            "decided_by",
            "decided_at",
            "created_at",
        ]
        read_only_fields = fields


class LeadSuggestionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """The AI's classifications of conversations and what became of them (?status=pending, ?card=<id>)."""

    serializer_class = LeadSuggestionSerializer
    required_actions = {
        "list": Action.PIPELINE_VIEW,
        "retrieve": Action.PIPELINE_VIEW,
        "accept": Action.CARD_EDIT,
        "dismiss": Action.CARD_EDIT,
    }

    def get_queryset(self) -> Any:
        found = LeadSuggestion.objects.all()
        params = self.request.query_params
        if params.get("status"):
            found = found.filter(status=params["status"])
        if str(params.get("card", "")).isdigit():
            found = found.filter(card_id=int(params["card"]))
        return found

    def _decide(self, decide: Any) -> Response:
        suggestion = self.get_object()
        try:
            decided = decide(suggestion_id=suggestion.pk, user=self.request.user, actor=self.request.membership)  # type: ignore[attr-defined]
        except DjangoValidationError as exc:
            raise _django_error(exc) from exc
        return Response(LeadSuggestionSerializer(decided).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(suggestion_accept)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def dismiss(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(suggestion_dismiss)


class CopilotRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    task = serializers.ChoiceField(choices=copilot.TASKS)
    draft = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="The agent's text (improve, shorten, translate)."
    )
    target = serializers.ChoiceField(
        choices=list(copilot.LANGUAGES), required=False, default="", help_text="The language of a translation."
    )


class CopilotSourceSerializer(serializers.Serializer):  # type: ignore[type-arg]
    chunk_id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    document_name = serializers.CharField()
    score = serializers.FloatField()
    text = serializers.CharField()


class CopilotResultSerializer(serializers.Serializer):  # type: ignore[type-arg]
    text = serializers.CharField()
    mode = serializers.ChoiceField(choices=["model", "retrieval"])
    sources = CopilotSourceSerializer(many=True)


class CopilotUnavailableError(exceptions.APIException):
    status_code = 422
    default_code = "copilot_unavailable"


class ModelUnavailableError(exceptions.APIException):
    status_code = 503
    default_detail = _("The AI server did not answer. Try again in a moment.")
    default_code = "model_unavailable"


class CopilotView(APIView):
    """The copilot on one conversation the caller may open: a suggested reply grounded in the knowledge
    (with its sources), a summary, the draft improved, shortened or translated. Nothing is sent: the
    caller sends the text with `POST /conversations/{id}/messages/` if it wants to."""

    required_actions = {"post": Action.COPILOT_USE}

    @extend_schema(
        request=CopilotRequestSerializer,
        responses={
            200: CopilotResultSerializer,
            422: OpenApiResponse(description="The task cannot run here (no model, no assistant, an empty draft)."),
            503: OpenApiResponse(description="The AI server did not answer."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        visible = conversations_visible_to(user=request.user, role=request.membership.role)  # type: ignore[attr-defined]
        conversation = get_object_or_404(visible, pk=pk)
        body = CopilotRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = body.validated_data
        try:
            result = copilot.copilot_run(
                actor=request.membership,  # type: ignore[attr-defined]
                conversation=conversation,
                row=ai_settings_current(),
                task=fields["task"],
                draft=fields["draft"],
                target=fields["target"],
            )
        except copilot.CopilotUnavailable as exc:
            raise CopilotUnavailableError(str(exc)) from exc
        except AIError as exc:
            logger.warning(
                "copilot %s in conversation %s: the model failed (%s %s)", fields["task"], pk, exc.status, exc.code
            )
            raise ModelUnavailableError() from exc
        return Response(CopilotResultSerializer(result).data)


class FaqSuggestionSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = FaqSuggestion
        fields = [
            "id",
            "conversation",
            "question",
            "answer",
            "status",
            "qa_pair",
            "decided_by",
            "decided_at",
            "created_at",
        ]
        read_only_fields = fields


class FaqApproveSerializer(serializers.Serializer):  # type: ignore[type-arg]
    knowledge_base = serializers.IntegerField(help_text="The knowledge base the pair goes into.")
    question = serializers.CharField(required=False, help_text="The question as edited; the suggestion's by default.")
    answer = serializers.CharField(required=False, help_text="The answer as edited; the suggestion's by default.")


class FaqSuggestionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """Question and answer pairs suggested from resolved conversations (?status=pending), for a manager to
    approve into a knowledge base (edited or as they are) or dismiss."""

    serializer_class = FaqSuggestionSerializer
    required_actions = {
        "list": Action.FAQ_REVIEW,
        "retrieve": Action.FAQ_REVIEW,
        "approve": Action.FAQ_REVIEW,
        "dismiss": Action.FAQ_REVIEW,
    }

    def get_queryset(self) -> Any:
        found = FaqSuggestion.objects.order_by("-created_at", "-pk")
        status = self.request.query_params.get("status")
        if status in FaqStatus.values:
            found = found.filter(status=status)
        return found

    @extend_schema(request=FaqApproveSerializer, responses=FaqSuggestionSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        suggestion = self.get_object()
        body = FaqApproveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = body.validated_data
        kb = knowledge_bases_list().filter(pk=fields["knowledge_base"]).first()
        if kb is None:
            raise ValidationError({"knowledge_base": [_("No such knowledge base in this workspace.")]})
        try:
            approved = faq_approve(
                actor=request.membership,  # type: ignore[attr-defined]
                user=request.user,
                suggestion_id=suggestion.pk,
                knowledge_base=kb,
                question=fields.get("question", suggestion.question),
                answer=fields.get("answer", suggestion.answer),
            )
        except DjangoValidationError as exc:
            raise _django_error(exc) from exc
        return Response(FaqSuggestionSerializer(approved).data)

    @extend_schema(request=None, responses=FaqSuggestionSerializer)
    @action(detail=True, methods=["post"])
    def dismiss(self, request: Request, pk: str | None = None) -> Response:
        suggestion = self.get_object()
        try:
            dismissed = faq_dismiss(actor=request.membership, user=request.user, suggestion_id=suggestion.pk)  # type: ignore[attr-defined]
        except DjangoValidationError as exc:
            raise _django_error(exc) from exc
        return Response(FaqSuggestionSerializer(dismissed).data)
