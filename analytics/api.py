"""The dashboard's data over the API: the same selectors the page uses, read from the rollups."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from analytics import selectors
from core.roles import Action

PARAMETERS = [
    OpenApiParameter("start", OpenApiTypes.DATE, description="First day (tenant's time zone); default 29 days ago"),
    OpenApiParameter("end", OpenApiTypes.DATE, description="Last day, inclusive; default today"),
    OpenApiParameter("interval", str, enum=list(selectors.INTERVALS), description="Series buckets"),
    OpenApiParameter("channel", int),
    OpenApiParameter("campaign", int),
    OpenApiParameter("agent", int, description="A team member's user id"),
    OpenApiParameter("board", int),
]

LIST = {"type": "array", "items": {"type": "object", "additionalProperties": True}}

REPORTS: dict[str, Callable[[selectors.Filters], Any]] = {
    "summary": selectors.dashboard_summary,
    "series": selectors.dashboard_series,
    "agents": selectors.dashboard_agents,
    "funnel": selectors.dashboard_funnel,
    "campaigns": selectors.dashboard_campaigns,
    "calls": selectors.dashboard_calls,
}


def request_filters(request: Any) -> selectors.Filters:
    params = getattr(request, "query_params", None) or request.GET
    return selectors.filters_parse(params, tz=request.tenant.timezone)


class AnalyticsViewSet(viewsets.ViewSet):
    """Dashboard numbers for a period: KPIs with the previous period, series, agents, funnel, campaigns,
    calls. Owners and admins."""

    required_actions = dict.fromkeys(REPORTS, Action.ANALYTICS_VIEW)

    def _report(self, request: Request, name: str) -> Response:
        try:
            filters = request_filters(request)
        except ValidationError as exc:
            raise ApiValidationError({"period": exc.messages}) from exc
        return Response(REPORTS[name](filters))

    @extend_schema(parameters=PARAMETERS, responses=OpenApiTypes.OBJECT)
    @action(detail=False)
    def summary(self, request: Request) -> Response:
        return self._report(request, "summary")

    @extend_schema(parameters=PARAMETERS, responses=OpenApiTypes.OBJECT)
    @action(detail=False)
    def series(self, request: Request) -> Response:
        return self._report(request, "series")

    @extend_schema(parameters=PARAMETERS, responses={200: LIST})
    @action(detail=False)
    def agents(self, request: Request) -> Response:
        return self._report(request, "agents")

    @extend_schema(parameters=PARAMETERS, responses=OpenApiTypes.OBJECT)
    @action(detail=False)
    def funnel(self, request: Request) -> Response:
        return self._report(request, "funnel")

    @extend_schema(parameters=PARAMETERS, responses={200: LIST})
    @action(detail=False)
    def campaigns(self, request: Request) -> Response:
        return self._report(request, "campaigns")

    @extend_schema(parameters=PARAMETERS, responses={200: LIST})
    @action(detail=False)
    def calls(self, request: Request) -> Response:
        return self._report(request, "calls")
