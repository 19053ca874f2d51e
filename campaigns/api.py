"""Campaign and cadence endpoints: create and launch broadcasts, follow their numbers; edit cadences,
start them for contacts (by ids or by a contacts filter), stop them."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import crud_actions
from campaigns.audience import audience_from_phones
from campaigns.cadences import (
    STEP_FIELDS,
    cadence_enroll,
    cadence_pause,
    cadence_resume,
    cadence_save,
    enrollment_pause,
    enrollment_resume,
    enrollment_stop,
    steps_live,
)
from campaigns.live import progress_payload
from campaigns.models import Cadence, CadenceStep, Campaign, CampaignRecipient, CampaignStatus, Enrollment
from campaigns.selectors import (
    cadence_exits,
    cadence_status_counts,
    cadence_step_stats,
    campaign_preview,
    campaign_report,
    campaign_stats,
)
from campaigns.services import (
    campaign_cancel,
    campaign_duplicate,
    campaign_launch,
    campaign_pause,
    campaign_resume,
    campaign_retry_failed,
    campaign_save,
)
from core.roles import Action, permission_check
from crm.selectors import contacts_filter
from inbox.models import Channel
from kanban.models import Stage

CONTENT_FIELDS = ["kind", "body", "template_name", "template_language", "template_variables"]


class CampaignSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    stats = serializers.SerializerMethodField()
    audience = serializers.JSONField(
        required=False,
        help_text='{"segments": [1], "tags": [2, 3], "tags_match": "any"|"all"}, or {"contacts": [ids]}; '
        "{} = everyone. Or give `phones` instead.",
    )
    phones = serializers.CharField(
        required=False,
        write_only=True,
        help_text="A pasted list of phones (one a line): the audience becomes those contacts (made if new); "
        "duplicate and invalid lines are skipped and listed in audience_report.",
    )

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "channel",
            "audience",
            *CONTENT_FIELDS,
            "template_header_variables",
            "template_button_variables",
            "media_kind",
            "media_url",
            "phones",
            "audience_report",
            "scheduled_at",
            "respect_quiet_hours",
            "daily_cap",
            "cap_overflow",
            "failure_window",
            "failure_threshold",
            "dedupe_hours",
            "status",
            "pause_reason",
            "hold_until",
            "hold_reason",
            "duplicated_from",
            "total_recipients",
            "stats",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = [
            "status",
            "pause_reason",
            "hold_until",
            "hold_reason",
            "duplicated_from",
            "audience_report",
            "total_recipients",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_stats(self, campaign: Campaign) -> dict[str, Any]:
        return campaign_stats(campaign)

    def _audience(self, validated: dict[str, Any]) -> dict[str, Any]:
        phones = validated.pop("phones", None)
        if phones is not None:
            try:
                validated["audience"], validated["audience_report"] = audience_from_phones(phones)
            except DjangoValidationError as exc:
                raise ValidationError({"phones": exc.messages}) from exc
        return validated

    def create(self, validated: dict[str, Any]) -> Campaign:
        user = self.context["request"].user
        return campaign_save(created_by=user if user.is_authenticated else None, **self._audience(validated))

    def update(self, campaign: Campaign, validated: dict[str, Any]) -> Campaign:
        return campaign_save(campaign=campaign, **self._audience(validated))


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
        "retry": Action.CAMPAIGN_LAUNCH,
        "pause": Action.CAMPAIGN_MANAGE,
        "cancel": Action.CAMPAIGN_MANAGE,
        "duplicate": Action.CAMPAIGN_MANAGE,
        "recipients": Action.CAMPAIGN_VIEW,
        "preview": Action.CAMPAIGN_VIEW,
        "report": Action.CAMPAIGN_VIEW,
        "progress": Action.CAMPAIGN_VIEW,
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

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def duplicate(self, request: Request, pk: str | None = None) -> Response:
        """A new draft with the same audience, message and rails."""
        copy = campaign_duplicate(campaign=self.get_object(), created_by=request.user)
        return Response(CampaignSerializer(copy, context=self.get_serializer_context()).data, status=201)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        """Send again to the recipients whose send failed (`retried` says how many)."""
        campaign = self.get_object()
        try:
            count = campaign_retry_failed(campaign=campaign)
        except DjangoValidationError as exc:
            raise ValidationError({"detail": exc.messages}) from exc
        data = CampaignSerializer(campaign, context=self.get_serializer_context()).data
        return Response({**data, "retried": count})

    @extend_schema(request=None)
    @action(detail=True, methods=["get"])
    def preview(self, request: Request, pk: str | None = None) -> Response:
        """What the first contacts get, each its own variation and fields (what will be sent)."""
        return Response({"results": campaign_preview(self.get_object())})

    @extend_schema(request=None)
    @action(detail=True, methods=["get"])
    def report(self, request: Request, pk: str | None = None) -> Response:
        """Delivered, read, replied, failed and skipped by reason, opt-outs during the campaign, button
        replies. `url_clicks` is null: the providers do not report URL clicks per message."""
        return Response(campaign_report(self.get_object()))

    @extend_schema(request=None)
    @action(detail=True, methods=["get"])
    def progress(self, request: Request, pk: str | None = None) -> Response:
        """The same payload the WebSocket pushes as `campaign.progress`: counts per state, rate, ETA."""
        return Response(progress_payload(self.get_object().pk))

    @extend_schema(responses=RecipientSerializer(many=True))
    @action(detail=True, methods=["get"], serializer_class=RecipientSerializer)
    def recipients(self, request: Request, pk: str | None = None) -> Response:
        """Who the campaign went to, with each one's state (?status=pending, sending, sent, delivered, read,
        replied, failed, skipped or unknown)."""
        recipients = CampaignRecipient.objects.filter(campaign=self.get_object()).select_related("message")
        if request.query_params.get("status"):
            recipients = recipients.filter(status=request.query_params["status"])
        page = self.paginate_queryset(recipients.order_by("id"))
        return self.get_paginated_response(RecipientSerializer(page, many=True).data)


class StepSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    key = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="The step's identity. Give it to edit that step (it keeps its runs and the contacts waiting "
        "for it); leave it out for a new step. Steps left out of `steps` are removed.",
    )
    channel = serializers.PrimaryKeyRelatedField(
        source="step_channel",
        queryset=Channel.objects.all(),
        required=False,
        allow_null=True,
        help_text="A message step's channel; empty: the cadence's channel.",
    )
    only_in_stage = serializers.PrimaryKeyRelatedField(queryset=Stage.objects.all(), required=False, allow_null=True)

    class Meta:
        model = CadenceStep
        fields = [
            "key",
            "position",
            "action",
            "channel",
            "call_agent",
            "timing",
            "delay_minutes",
            "business_days",
            "at_time",
            "only_if_no_reply",
            "only_in_stage",
            "only_business_days",
            *CONTENT_FIELDS,
        ]
        read_only_fields = ["position"]


class CadenceSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    steps = StepSerializer(many=True, required=False, source="live_steps")

    class Meta:
        model = Cadence
        fields = [
            "id",
            "name",
            "channel",
            "is_active",
            "paused_at",
            "stop_on_reply",
            "respect_quiet_hours",
            "exit_on_won_lost",
            "exit_on_stage_change",
            "goal_stage",
            "enroll_inactive_days",
            "steps",
            "created_at",
        ]
        read_only_fields = ["created_at", "paused_at"]

    def to_representation(self, instance: Cadence) -> dict[str, Any]:
        instance.live_steps = list(steps_live(instance))  # type: ignore[attr-defined]
        return super().to_representation(instance)

    def _save(self, cadence: Cadence | None, validated: dict[str, Any]) -> Cadence:
        steps = validated.pop("live_steps", None)
        if steps is None and cadence is not None:
            steps = [
                {**row, "channel": row.pop("step_channel")}
                for row in steps_live(cadence).values("key", "step_channel", "only_in_stage", *STEP_FIELDS)
            ]
        for step in steps or []:
            if "step_channel" in step:
                step["channel"] = step.pop("step_channel")
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

STATS_RESPONSE = inline_serializer(
    "CadenceStats",
    {
        "statuses": serializers.DictField(child=serializers.IntegerField()),
        "exits": serializers.DictField(child=serializers.IntegerField(), help_text="exit reason code -> contacts"),
        "steps": inline_serializer(
            "CadenceStepStats",
            {
                "key": serializers.UUIDField(),
                "waiting": serializers.IntegerField(),
                "paused": serializers.IntegerField(),
                "sent": serializers.IntegerField(),
                "delivered": serializers.IntegerField(),
                "replied": serializers.IntegerField(),
                "skipped": serializers.IntegerField(),
                "failed": serializers.IntegerField(),
                "problems": serializers.DictField(child=serializers.IntegerField()),
                "exits": serializers.DictField(child=serializers.IntegerField()),
            },
            many=True,
        ),
    },
)


class CadenceViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    """Drip cadences: steps (each a message on its channel or an AI call, on its timing and conditions) run
    one after the other until the contact leaves. Steps keep their `key`: edit one by giving its key."""

    serializer_class = CadenceSerializer
    queryset = Cadence.objects.all()
    required_actions = {
        **crud_actions(read=Action.CADENCE_VIEW, write=Action.CADENCE_MANAGE),
        "enroll": Action.CADENCE_ENROLL,  # several contacts or a filter: cadence.enroll_audience, inside
        "pause": Action.CADENCE_PAUSE,
        "resume": Action.CADENCE_PAUSE,
        "stats": Action.CADENCE_VIEW,
    }

    @extend_schema(
        request=ENROLL_REQUEST, responses=inline_serializer("Enrolled", {"enrolled": serializers.IntegerField()})
    )
    @action(detail=True, methods=["post"])
    def enroll(self, request: Request, pk: str | None = None) -> Response:
        """Start the cadence for {"contacts": [ids]} or every contact matching {"filter": {...}}."""
        data = request.data if isinstance(request.data, dict) else {}
        if "contacts" in data:
            raw = data["contacts"] if isinstance(data["contacts"], list) else []
            ids = [int(i) for i in raw if str(i).isdigit()]
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

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        """Nothing of this cadence runs until it is resumed."""
        cadence = self.get_object()
        cadence_pause(cadence=cadence, actor=request.membership)  # type: ignore[attr-defined]
        return Response(CadenceSerializer(cadence).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        """The cadence runs again; contacts that fell due meanwhile are spread over the next minutes."""
        cadence = self.get_object()
        cadence_resume(cadence=cadence, actor=request.membership)  # type: ignore[attr-defined]
        return Response(CadenceSerializer(cadence).data)

    @extend_schema(responses=STATS_RESPONSE)
    @action(detail=True, methods=["get"])
    def stats(self, request: Request, pk: str | None = None) -> Response:
        """Per step: waiting, sent, delivered, replied, skipped and failed (by code), exits after it (by
        reason code); and the cadence's exits by reason code."""
        cadence = self.get_object()
        steps = [
            {
                "key": row["step"].key,
                **{k: row[k] for k in ("waiting", "paused", "sent", "delivered", "replied", "skipped", "failed")},
                "problems": {p["code"]: p["count"] for p in row["problems"]},
                "exits": {x["reason"]: x["count"] for x in row["exits"]},
            }
            for row in cadence_step_stats(cadence)
        ]
        return Response(
            {
                "statuses": cadence_status_counts(cadence),
                "exits": {x["reason"]: x["count"] for x in cadence_exits(cadence)},
                "steps": steps,
            }
        )


class EnrollmentSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    next_step: serializers.SlugRelatedField[CadenceStep] = serializers.SlugRelatedField(
        slug_field="key", read_only=True
    )
    last_step: serializers.SlugRelatedField[CadenceStep] = serializers.SlugRelatedField(
        slug_field="key", read_only=True
    )
    reason = serializers.CharField(read_only=True, help_text="exit_reason's words and exit_detail, for people")

    class Meta:
        model = Enrollment
        fields = [
            "id",
            "cadence",
            "contact",
            "status",
            "steps_sent",
            "next_step",
            "last_step",
            "next_run_at",
            "exit_reason",
            "exit_detail",
            "reason",
            "started_at",
            "finished_at",
        ]


class EnrollmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """Contacts in cadences. Filter with ?cadence=, ?contact=, ?status=active|paused|completed|stopped|failed,
    ?exit_reason=<code>."""

    serializer_class = EnrollmentSerializer
    required_actions = {
        "list": Action.CADENCE_VIEW,
        "retrieve": Action.CADENCE_VIEW,
        "stop": Action.ENROLLMENT_STOP,
        "pause": Action.ENROLLMENT_PAUSE,
        "resume": Action.ENROLLMENT_PAUSE,
    }

    def get_queryset(self) -> QuerySet[Enrollment]:
        enrollments = Enrollment.objects.select_related("next_step", "last_step")
        for name in ("cadence", "contact"):
            value = self.request.query_params.get(name)
            if value:
                if not value.isdigit():
                    return enrollments.none()
                enrollments = enrollments.filter(**{name: value})
        for name in ("status", "exit_reason"):
            value = self.request.query_params.get(name)
            if value:
                enrollments = enrollments.filter(**{name: value})
        return enrollments

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str | None = None) -> Response:
        enrollment = self.get_object()
        enrollment_stop(enrollment=enrollment, actor=request.membership, who=_("the API"))  # type: ignore[attr-defined]
        enrollment.refresh_from_db()
        return Response(EnrollmentSerializer(enrollment).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        enrollment = self.get_object()
        enrollment_pause(enrollment=enrollment, actor=request.membership)  # type: ignore[attr-defined]
        enrollment.refresh_from_db()
        return Response(EnrollmentSerializer(enrollment).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        enrollment = self.get_object()
        enrollment_resume(enrollment=enrollment, actor=request.membership)  # type: ignore[attr-defined]
        enrollment.refresh_from_db()
        return Response(EnrollmentSerializer(enrollment).data)
