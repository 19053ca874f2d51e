"""Alerts over the API: the list (newest first, cursor-paginated, open or closed, by kind), one alert,
and resolve / dismiss. Writes go through alerts.services, which checks the role table."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from alerts import kinds
from alerts.models import Alert, Resolution
from alerts.selectors import STATES, alerts_filtered
from alerts.services import alert_dismiss, alert_resolve
from core.roles import Action


class AlertSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    title = serializers.SerializerMethodField(help_text="in the caller's language")
    happened = serializers.SerializerMethodField()
    fix = serializers.SerializerMethodField(help_text="what to do about it")
    link = serializers.SerializerMethodField(help_text="path of the page where the fix is ('' when none)")
    level = serializers.SerializerMethodField(help_text="warning | error")
    is_open = serializers.BooleanField(read_only=True)
    resolution = serializers.ChoiceField(choices=Resolution.choices, read_only=True, allow_blank=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "kind",
            "key",
            "detail",
            "title",
            "happened",
            "fix",
            "link",
            "level",
            "count",
            "first_raised_at",
            "last_seen_at",
            "is_open",
            "dismissed_at",
            "resolved_at",
            "resolution",
        ]
        read_only_fields = fields

    def _worded(self, alert: Alert) -> kinds.Worded:
        cache: dict[int, kinds.Worded] = self.__dict__.setdefault("_worded_cache", {})
        if alert.pk not in cache:
            cache[alert.pk] = kinds.word(alert.kind, alert.detail)
        return cache[alert.pk]

    def get_title(self, alert: Alert) -> str:
        return self._worded(alert).title

    def get_happened(self, alert: Alert) -> str:
        return self._worded(alert).happened

    def get_fix(self, alert: Alert) -> str:
        return self._worded(alert).fix

    def get_link(self, alert: Alert) -> str:
        return self._worded(alert).link

    def get_level(self, alert: Alert) -> str:
        return self._worded(alert).level


class AlertPagination(CursorPagination):
    ordering = ("-last_seen_at", "-id")
    page_size = 50


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """Tenant alerts: one per cause while open (`count` says how often it happened since
    `first_raised_at`); closed ones stay as history (`resolution`: cleared by itself or resolved)."""

    serializer_class = AlertSerializer
    pagination_class = AlertPagination
    required_actions = {
        "list": Action.ALERT_VIEW,
        "retrieve": Action.ALERT_VIEW,
        "resolve": Action.ALERT_MANAGE,
        "dismiss": Action.ALERT_MANAGE,
    }

    @extend_schema(
        parameters=[
            OpenApiParameter("state", str, enum=list(STATES), description="open (default), resolved or all"),
            OpenApiParameter("kind", str, description="only this kind, e.g. channel.needs_rescan"),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        if getattr(self, "action", None) != "list":
            return Alert.objects.all()
        state = self.request.query_params.get("state", "open")
        return alerts_filtered(
            state=state if state in STATES else "open", kind=self.request.query_params.get("kind", "")
        )

    @extend_schema(request=None, responses={200: AlertSerializer})
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        """Close the alert by hand: its cause is fixed. If the cause comes back, a new alert opens."""
        alert = self.get_object()
        alert_resolve(actor=request.membership, alert=alert, user=request.user)  # type: ignore[attr-defined]
        return Response(self.get_serializer(alert).data)

    @extend_schema(request=None, responses={200: AlertSerializer})
    @action(detail=True, methods=["post"])
    def dismiss(self, request: Request, pk: str | None = None) -> Response:
        """Seen: out of the bell, still open until its cause is gone."""
        alert = self.get_object()
        alert_dismiss(actor=request.membership, alert=alert, user=request.user)  # type: ignore[attr-defined]
        return Response(self.get_serializer(alert).data)
