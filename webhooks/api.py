"""Webhook endpoints (CRUD, rotate the secret, send a test event) and their deliveries (list, replay).
The signing secret is answered once, by create and rotate; custom header values are never answered."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import crud_actions
from core.roles import Action
from webhooks.catalog import EVENT_TYPES
from webhooks.models import Attempt, Delivery, Endpoint
from webhooks.services import (
    delivery_replay,
    endpoint_create,
    endpoint_delete,
    endpoint_rotate_secret,
    endpoint_update,
    send_test_event,
)


def _drf(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(getattr(exc, "message_dict", None) or {"detail": exc.messages})


class EndpointSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    events = serializers.ListField(child=serializers.ChoiceField(choices=sorted(EVENT_TYPES)), allow_empty=False)
    headers = serializers.DictField(child=serializers.CharField(), write_only=True, required=False)
    header_names = serializers.SerializerMethodField()

    class Meta:
        model = Endpoint
        fields = [
            "id",
            "url",
            "description",
            "events",
            "enabled",
            "headers",
            "header_names",
            "disabled_reason",
            "failing_since",
            "created_at",
        ]
        read_only_fields = ["disabled_reason", "failing_since", "created_at"]

    def get_header_names(self, endpoint: Endpoint) -> list[str]:
        return sorted(endpoint.headers)


class EndpointCreatedSerializer(EndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text="whsec_…: shown once, keep it to verify signatures.")

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]


class AttemptSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Attempt
        fields = ["number", "started_at", "duration_ms", "status_code", "response_body", "error"]
        read_only_fields = fields


class DeliverySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    attempt_log = AttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "endpoint",
            "webhook_id",
            "event_type",
            "payload",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "created_at",
            "delivered_at",
            "attempt_log",
        ]
        read_only_fields = fields


class EndpointViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    """Outgoing webhook endpoints. The secret (whsec_…) comes back only from create and rotate-secret."""

    serializer_class = EndpointSerializer
    queryset = Endpoint.objects.all()
    required_actions = {
        **crud_actions(read=Action.WEBHOOK_MANAGE, write=Action.WEBHOOK_MANAGE),
        "rotate_secret": Action.WEBHOOK_MANAGE,
        "test": Action.WEBHOOK_MANAGE,
    }

    @extend_schema(responses={201: EndpointCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = EndpointSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            endpoint, secret = endpoint_create(
                url=data["url"],
                events=data["events"],
                description=data.get("description", ""),
                headers=data.get("headers"),
            )
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        answer = EndpointSerializer(endpoint).data
        return Response({**answer, "secret": secret}, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer: Any) -> None:
        data = serializer.validated_data
        try:
            serializer.instance = endpoint_update(serializer.instance, **data)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc

    def perform_destroy(self, instance: Endpoint) -> None:
        endpoint_delete(instance)

    @extend_schema(
        request=None, responses={200: inline_serializer("RotatedSecret", {"secret": serializers.CharField()})}
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        """A new secret; the previous one keeps signing (a second signature) for 24 hours."""
        return Response({"secret": endpoint_rotate_secret(self.get_object())})

    @extend_schema(request=None, responses={202: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Send a `webhook.test` event to this endpoint."""
        return Response(DeliverySerializer(send_test_event(self.get_object())).data, status=status.HTTP_202_ACCEPTED)


class DeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """The delivery log, newest first; ?endpoint=<id>&status=pending|succeeded|failed. POST …/replay/ sends
    one again with the same webhook id."""

    serializer_class = DeliverySerializer
    required_actions = {
        "list": Action.WEBHOOK_MANAGE,
        "retrieve": Action.WEBHOOK_MANAGE,
        "replay": Action.WEBHOOK_MANAGE,
    }

    def get_queryset(self) -> QuerySet[Delivery]:
        found = Delivery.objects.prefetch_related("attempt_log")
        endpoint, state = self.request.query_params.get("endpoint", ""), self.request.query_params.get("status", "")
        if endpoint.isdigit():
            found = found.filter(endpoint_id=int(endpoint))
        if state:
            found = found.filter(status=state)
        return found

    @extend_schema(request=None, responses={202: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: str | None = None) -> Response:
        try:
            delivery = delivery_replay(self.get_object())
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
