"""Campaign and cadence endpoints: create and launch broadcasts, follow their numbers; edit cadences,
start them for contacts (by ids or by a contacts filter), stop them."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import crud_actions
from campaigns.models import Cadence, CadenceStep, Campaign, CampaignRecipient, CampaignStatus, Enrollment
from campaigns.selectors import campaign_stats
from campaigns.services import (
    cadence_enroll,
    cadence_save,
    campaign_cancel,
    campaign_launch,
    campaign_pause,
    campaign_resume,
    campaign_save,
    enrollments_stop,
)
from core.roles import Action, permission_check
from crm.selectors import contacts_filter

CONTENT_FIELDS = ["kind", "body", "template_name", "template_language", "template_variables"]


class CampaignSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    stats = serializers.SerializerMethodField()
    audience = serializers.JSONField(
        required=False, help_text='A contacts filter: {"segment": 1} or {"tags": [2]} or {"q": "…"}; {} = everyone.'
    )

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "channel",
            "audience",
            *CONTENT_FIELDS,
            "scheduled_at",
            "respect_quiet_hours",
            "status",
            "total_recipients",
            "stats",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = ["status", "total_recipients", "created_at", "started_at", "finished_at"]

    def get_stats(self, campaign: Campaign) -> dict[str, Any]:
        return campaign_stats(campaign)

    def create(self, validated: dict[str, Any]) -> Campaign:
        user = self.context["request"].user
        return campaign_save(created_by=user if user.is_authenticated else None, **validated)

    def update(self, campaign: Campaign, validated: dict[str, Any]) -> Campaign:
        return campaign_save(campaign=campaign, **validated)


class RecipientSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    message_status = serializers.CharField(source="message.status", default=None, read_only=True)

    class Meta:
        model = CampaignRecipient
        fields = ["id", "contact", "status", "message", "message_status", "reason", "processed_at"]


class CampaignViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    """Broadcasts. Create as a draft, then POST .../launch/ (now, or at scheduled_at). Each contact of the
    audience gets the message once; opted-out contacts are skipped with the reason."""

    serializer_class = CampaignSerializer
    queryset = Campaign.objects.select_related("channel")
    required_actions = {
        **crud_actions(read=Action.CAMPAIGN_VIEW, write=Action.CAMPAIGN_MANAGE),
        "launch": Action.CAMPAIGN_LAUNCH,
        "resume": Action.CAMPAIGN_LAUNCH,
        "pause": Action.CAMPAIGN_MANAGE,
        "cancel": Action.CAMPAIGN_MANAGE,
        "recipients": Action.CAMPAIGN_VIEW,
    }

    def perform_destroy(self, instance: Campaign) -> None:
        if instance.status != CampaignStatus.DRAFT:
            raise ValidationError({"detail": ["Only a draft can be deleted; cancel a launched campaign."]})
        instance.delete()

    def _transition(self, service: Any) -> Response:
        campaign = self.get_object()
        service(campaign=campaign)
        campaign.refresh_from_db()
        return Response(CampaignSerializer(campaign, context=self.get_serializer_context()).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def launch(self, request: Request, pk: str | None = None) -> Response:
        return self._transition(campaign_launch)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        return self._transition(campaign_pause)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        return self._transition(campaign_resume)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        return self._transition(campaign_cancel)

    @extend_schema(responses=RecipientSerializer(many=True))
    @action(detail=True, methods=["get"], serializer_class=RecipientSerializer)
    def recipients(self, request: Request, pk: str | None = None) -> Response:
        """Who the campaign went to, with each one's state (?status=pending|queued|skipped|failed)."""
        recipients = CampaignRecipient.objects.filter(campaign=self.get_object()).select_related("message")
        if request.query_params.get("status"):
            recipients = recipients.filter(status=request.query_params["status"])
        page = self.paginate_queryset(recipients.order_by("id"))
        return self.get_paginated_response(RecipientSerializer(page, many=True).data)


class StepSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = CadenceStep
        fields = ["position", "delay_minutes", *CONTENT_FIELDS]
        read_only_fields = ["position"]


class CadenceSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    steps = StepSerializer(many=True)

    class Meta:
        model = Cadence
        fields = ["id", "name", "channel", "is_active", "stop_on_reply", "respect_quiet_hours", "steps", "created_at"]
        read_only_fields = ["created_at"]

    def _save(self, cadence: Cadence | None, validated: dict[str, Any]) -> Cadence:
        steps = validated.pop("steps", None)
        if steps is None and cadence is not None:
            steps = list(cadence.steps.values(*StepSerializer.Meta.fields))
        return cadence_save(cadence=cadence, steps=steps or [], **validated)

    def create(self, validated: dict[str, Any]) -> Cadence:
        return self._save(None, validated)

    def update(self, cadence: Cadence, validated: dict[str, Any]) -> Cadence:
        return self._save(cadence, validated)


ENROLL_REQUEST = inline_serializer(
    "CadenceEnroll",
    {
        "contacts": serializers.ListField(child=serializers.IntegerField(), required=False),
        "filter": serializers.JSONField(required=False),
    },
)


class CadenceViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    """Drip cadences: steps sent one after the other, each after its wait, until the contact replies or
    opts out. Editing replaces the steps."""

    serializer_class = CadenceSerializer
    queryset = Cadence.objects.prefetch_related("steps")
    required_actions = {
        **crud_actions(read=Action.CADENCE_VIEW, write=Action.CADENCE_MANAGE),
        "enroll": Action.CADENCE_ENROLL,  # several contacts or a filter: cadence.enroll_audience, inside
    }

    @extend_schema(
        request=ENROLL_REQUEST, responses=inline_serializer("Enrolled", {"enrolled": serializers.IntegerField()})
    )
    @action(detail=True, methods=["post"])
    def enroll(self, request: Request, pk: str | None = None) -> Response:
        """Start the cadence for {"contacts": [ids]} or every contact matching {"filter": {...}}."""
        data = request.data if isinstance(request.data, dict) else {}
        if "contacts" in data:
            ids = [int(i) for i in data["contacts"] if str(i).isdigit()]
            if len(set(ids)) > 1:  # a list is an audience, as a filter is; one contact is an agent's call
                permission_check(request.membership, Action.CADENCE_ENROLL_AUDIENCE)  # type: ignore[attr-defined]
            contacts = contacts_filter().filter(pk__in=ids)
        elif isinstance(data.get("filter"), dict):
            permission_check(request.membership, Action.CADENCE_ENROLL_AUDIENCE)  # type: ignore[attr-defined]
            contacts = contacts_filter(data["filter"])
        else:
            raise ValidationError({"contacts": ["Give contact ids, or a filter."]})
        count = cadence_enroll(cadence=self.get_object(), contacts=contacts, enrolled_by=request.user)
        return Response({"enrolled": count}, status=status.HTTP_201_CREATED)


class EnrollmentSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Enrollment
        fields = [
            "id",
            "cadence",
            "contact",
            "status",
            "steps_sent",
            "next_position",
            "next_run_at",
            "reason",
            "started_at",
            "finished_at",
        ]


class EnrollmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """Contacts in cadences. Filter with ?cadence=, ?contact=, ?status=active|completed|stopped|failed."""

    serializer_class = EnrollmentSerializer
    required_actions = {"list": Action.CADENCE_VIEW, "retrieve": Action.CADENCE_VIEW, "stop": Action.ENROLLMENT_STOP}

    def get_queryset(self) -> QuerySet[Enrollment]:
        enrollments = Enrollment.objects.all()
        for name in ("cadence", "contact", "status"):
            value = self.request.query_params.get(name)
            if value:
                enrollments = enrollments.filter(**{name: value})
        return enrollments

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str | None = None) -> Response:
        enrollment = self.get_object()
        enrollments_stop(enrollments=Enrollment.objects.filter(pk=enrollment.pk), reason="Stopped through the API.")
        enrollment.refresh_from_db()
        return Response(EnrollmentSerializer(enrollment).data)
