"""Calls (list, retrieve, start one), voice agents (CRUD, synced with Retell on every write), voice numbers
(with their preflight) and voice campaigns (create, launch, pause, resume, stats)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import crud_actions
from core.roles import Action
from crm.selectors import contacts_filter
from crm.services import phone_normalize
from voice.campaigns import (
    voice_campaign_launch,
    voice_campaign_pause,
    voice_campaign_resume,
    voice_campaign_save,
)
from voice.models import Call, VoiceAgent, VoiceCampaign, VoiceNumber, VoiceOutcome, VoiceRecipientStatus
from voice.numbers import voice_number_preflight
from voice.outbound import call_queue
from voice.selectors import calls_filter, voice_agents_active, voice_campaign_stats
from voice.services import (
    voice_agent_create,
    voice_agent_delete,
    voice_agent_drift,
    voice_agent_sync,
    voice_agent_update,
)


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
            "fallback_cause",
            "twilio_status",
            "attempt",
            "due_at",
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
            OpenApiParameter(
                "status", str, enum=["queued", "registered", "ongoing", "ended", "error", "not_connected"]
            ),
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
        call = call_queue(contact=contact, agent=agent, actor=request.user)  # placed by the `voice` queue
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
            "direction",
            "llm_model",
            "voicemail_action",
            "voicemail_message",
            "is_active",
            "status",
            "status_reason",
            "published_version",
            "synced_at",
            "numbers",
            "retell_agent_id",
            "retell_llm_id",
            "created_at",
        ]
        read_only_fields = [
            "status",
            "status_reason",
            "published_version",
            "synced_at",
            "numbers",
            "retell_agent_id",
            "retell_llm_id",
            "created_at",
        ]

    numbers = serializers.SlugRelatedField(many=True, read_only=True, slug_field="e164")  # type: ignore[var-annotated]

    def validate_from_number(self, value: str) -> str:
        try:
            return phone_normalize(value) if value else ""
        except DjangoValidationError as exc:
            raise ValidationError(_("Enter a valid phone number, e.g. +5511999990000.")) from exc


class DriftSerializer(serializers.Serializer):  # type: ignore[type-arg]
    field = serializers.CharField()
    ours = serializers.JSONField(allow_null=True)
    remote = serializers.JSONField(allow_null=True)


class VoiceAgentViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    """Voice agents. Every create and update is synced to Retell (LLM + agent); writes need a manager."""

    serializer_class = VoiceAgentSerializer
    queryset = VoiceAgent.objects.all()

    required_actions = {
        **crud_actions(read=Action.VOICEAGENT_VIEW, write=Action.VOICEAGENT_MANAGE),
        "sync": Action.VOICEAGENT_MANAGE,
        "drift": Action.VOICEAGENT_MANAGE,
    }

    @extend_schema(request=None, responses={200: VoiceAgentSerializer})
    @action(detail=True, methods=["post"])
    def sync(self, request: Request, pk: str | None = None) -> Response:
        """Create or update the agent's LLM and agent on Retell and publish it; 400 with the reason on refusal."""
        agent = voice_agent_sync(agent=self.get_object())
        return Response(VoiceAgentSerializer(agent).data)

    @extend_schema(responses={200: DriftSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def drift(self, request: Request, pk: str | None = None) -> Response:
        """Where the agent on Retell differs from ours (empty: in step)."""
        found = voice_agent_drift(agent=self.get_object())
        return Response(DriftSerializer([d.__dict__ for d in found], many=True).data)

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = voice_agent_create(**serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = voice_agent_update(agent=serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance: VoiceAgent) -> None:
        voice_agent_delete(agent=instance)


class VoiceNumberSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = VoiceNumber
        fields = [
            "id",
            "e164",
            "friendly_name",
            "agent",
            "twilio_sid",
            "voice_url",
            "status_callback_url",
            "retell_imported_at",
            "caller_id_verified_at",
            "last_test_call_at",
            "created_at",
        ]
        read_only_fields = fields


class CheckSerializer(serializers.Serializer):  # type: ignore[type-arg]
    key = serializers.CharField()
    ok = serializers.BooleanField()
    label = serializers.CharField()  # type: ignore[assignment]
    fix = serializers.CharField()


class VoiceNumberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """The tenant's voice numbers; GET {id}/preflight/ answers "can this number take calls?", check by check."""

    serializer_class = VoiceNumberSerializer
    queryset = VoiceNumber.objects.all()
    required_actions = {
        "list": Action.VOICENUMBER_VIEW,
        "retrieve": Action.VOICENUMBER_VIEW,
        "preflight": Action.VOICENUMBER_VIEW,
    }

    @extend_schema(responses={200: CheckSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def preflight(self, request: Request, pk: str | None = None) -> Response:
        checks = voice_number_preflight(number=self.get_object())
        return Response(CheckSerializer([c.__dict__ for c in checks], many=True).data)


STATS_SCHEMA = inline_serializer(
    "VoiceCampaignStats",
    {
        "recipients": inline_serializer(
            "VoiceCampaignRecipientCounts",
            {state: serializers.IntegerField() for state in [*VoiceRecipientStatus.values, "total"]},
        ),
        "outcomes": inline_serializer(
            "VoiceCampaignOutcomeCounts", {outcome: serializers.IntegerField() for outcome in VoiceOutcome.values}
        ),
        "calls": serializers.IntegerField(help_text="Calls the campaign made, retries included."),
        "calls_in_progress": serializers.IntegerField(
            help_text="Queued, registered or ongoing; at most max_concurrent."
        ),
        "answered": serializers.IntegerField(help_text="Calls that ended with someone on the line (no voicemail)."),
    },
)


class VoiceCampaignSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    agent = serializers.PrimaryKeyRelatedField(queryset=VoiceAgent.objects.all())  # type: ignore[var-annotated]
    number = serializers.PrimaryKeyRelatedField(  # type: ignore[var-annotated]
        queryset=VoiceNumber.objects.all(),
        required=False,
        allow_null=True,
        help_text="The voice number the calls come from (imported into Retell); empty: the agent's own number.",
    )
    audience = serializers.JSONField(
        required=False,
        help_text='{"segment": id, "tags": [ids]} (any of the tags), or {"contacts": [ids]}; {} = every contact '
        "with a phone. Or give `contacts` instead.",
    )
    contacts = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        write_only=True,
        help_text='The contacts to call, by id: the same as audience={"contacts": [...]}.',
    )
    stats = serializers.SerializerMethodField()

    class Meta:
        model = VoiceCampaign
        fields = [
            "id",
            "name",
            "agent",
            "number",
            "audience",
            "contacts",
            "max_concurrent",
            "retries",
            "retry_delay_minutes",
            "status",
            "launched_at",
            "finished_at",
            "created_at",
            "updated_at",
            "stats",
        ]
        read_only_fields = ["status", "launched_at", "finished_at", "created_at", "updated_at"]
        extra_kwargs = {
            "max_concurrent": {"help_text": "Calls in progress at once, at most (1-20)."},
            "retries": {"help_text": "Calls again after a no-answer, a busy line or a voicemail (0-5)."},
            "retry_delay_minutes": {"help_text": "Minutes before a retry (1 minute to 7 days)."},
        }

    @extend_schema_field(STATS_SCHEMA)  # type: ignore[untyped-decorator]
    def get_stats(self, campaign: VoiceCampaign) -> dict[str, Any]:
        return voice_campaign_stats(campaign)

    def _values(self, validated: dict[str, Any], campaign: VoiceCampaign | None = None) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if campaign is not None:
            values = {
                "name": campaign.name,
                "agent": campaign.agent,
                "number": campaign.number,
                "audience": campaign.audience,
                "max_concurrent": campaign.max_concurrent,
                "retries": campaign.retries,
                "retry_delay_minutes": campaign.retry_delay_minutes,
            }
        contacts = validated.pop("contacts", None)
        if contacts is not None:
            if validated.get("audience"):
                raise ValidationError({"contacts": [_("Give `contacts` or `audience`, not both.")]})
            validated["audience"] = {"contacts": contacts}
        return {**values, **validated}

    def create(self, validated: dict[str, Any]) -> VoiceCampaign:
        return voice_campaign_save(**self._values(validated))

    def update(self, campaign: VoiceCampaign, validated: dict[str, Any]) -> VoiceCampaign:
        return voice_campaign_save(campaign=campaign, **self._values(validated, campaign))


class VoiceCampaignViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    """Voice campaigns: AI calls to an audience, at most `max_concurrent` at once, a no-answer, busy line or
    voicemail called again `retries` times after `retry_delay_minutes`. Create (or edit) a draft, then
    POST .../launch/; .../pause/ starts no new call, .../resume/ goes on; .../stats/ counts."""

    serializer_class = VoiceCampaignSerializer
    queryset = VoiceCampaign.objects.select_related("agent", "number")
    required_actions = {
        **crud_actions(read=Action.CAMPAIGN_VIEW, write=Action.CAMPAIGN_MANAGE),
        "launch": Action.CAMPAIGN_LAUNCH,
        "resume": Action.CAMPAIGN_LAUNCH,
        "pause": Action.CAMPAIGN_MANAGE,
        "stats": Action.CAMPAIGN_VIEW,
    }

    def _transition(self, service: Any) -> Response:
        campaign = self.get_object()
        service(campaign=campaign)  # a refusal (launched already, agent unpublished) is a 400 with the reason
        campaign.refresh_from_db()
        return Response(VoiceCampaignSerializer(campaign, context=self.get_serializer_context()).data)

    @extend_schema(request=None, responses={200: VoiceCampaignSerializer})
    @action(detail=True, methods=["post"])
    def launch(self, request: Request, pk: str | None = None) -> Response:
        """Fix the audience (each contact once) and start the first calls; the rest follow as calls end."""
        return self._transition(voice_campaign_launch)

    @extend_schema(request=None, responses={200: VoiceCampaignSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        """No new call starts; the calls in progress end as they will."""
        return self._transition(voice_campaign_pause)

    @extend_schema(request=None, responses={200: VoiceCampaignSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        return self._transition(voice_campaign_resume)

    @extend_schema(responses={200: STATS_SCHEMA})
    @action(detail=True, methods=["get"])
    def stats(self, request: Request, pk: str | None = None) -> Response:
        """Recipients by state and outcome, the campaign's calls, those in progress and those answered."""
        return Response(voice_campaign_stats(self.get_object()))
