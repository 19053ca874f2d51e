"""What every API endpoint shares: errors as problem+json (RFC 9457) and pagination."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"


class ProblemJSONRenderer(JSONRenderer):
    media_type = PROBLEM_CONTENT_TYPE


def problem_response(status_code: int, title: str, detail: Any = None, **extra: Any) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status_code}
    if detail is not None:
        body["detail"] = detail
    body.update(extra)
    response = Response(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)
    return response


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Turns every API error into one shape: {type, title, status, detail[, errors]}."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):  # a service refused: 400 with its messages, field by field
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})
    response = exception_handler(exc, context)
    if response is None:
        request = context.get("request")
        logger.exception("unhandled API error", extra={"path": getattr(request, "path", "-")})
        return problem_response(status.HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error")
    assert isinstance(exc, exceptions.APIException)
    title = str(exc.default_detail)
    data = response.data
    extra: dict[str, Any] = {}
    if isinstance(exc, exceptions.ValidationError):
        detail: Any = "One or more fields are invalid."
        extra["errors"] = data
    elif isinstance(data, dict) and "detail" in data:
        detail = data["detail"]
    else:
        detail = data
    problem = problem_response(response.status_code, title, detail, **extra)
    for header in ("WWW-Authenticate", "Retry-After", "Allow"):
        if header in response:
            problem[header] = response[header]
    # Throttled and auth responses are rendered with the negotiated renderer; keep JSON.
    context_request = context.get("request")
    if context_request is not None:
        context_request.accepted_renderer = ProblemJSONRenderer()
        context_request.accepted_media_type = PROBLEM_CONTENT_TYPE
    return problem


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500
