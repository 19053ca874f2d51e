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
    code = ""  # a service's refusal code (usage_limit, opted_out...), kept at the top for clients
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):  # a service refused: 400 with its messages, field by field
        code = str(getattr(exc, "code", "") or "")
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
        if isinstance(data, dict) and set(data) == {"detail", "code"}:  # a view passed the service's refusal on
            found = data["code"]
            code = str(found[0] if isinstance(found, list) and found else found or "")
        if code and isinstance(data, dict) and isinstance(data.get("detail"), list) and data["detail"]:
            detail = " ".join(str(d) for d in data["detail"])
    elif isinstance(data, dict) and "detail" in data:
        detail = data["detail"]
    else:
        detail = data
    if code:
        extra["code"] = code
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


PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An error (RFC 9457). `errors` holds the field-by-field messages of a 400.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "example": "about:blank"},
        "title": {"type": "string", "example": "Invalid input."},
        "status": {"type": "integer", "example": 400},
        "detail": {},
        "errors": {"type": "object", "additionalProperties": True},
    },
}
PROBLEM_STATUSES = {
    "400": "Invalid input: `errors` says what, field by field.",
    "401": "No token, or a token that is revoked or belongs to another workspace.",
    "403": "Your role may not do this.",
    "404": "Not found in this workspace.",
    "429": "Too many requests: wait for `Retry-After` seconds.",
}


def problem_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular post-processing hook: every operation documents the one error shape, for each
    status the API answers with it."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path in result.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():  # an operation's own error statuses (422...) too
                if str(code)[:1] in ("4", "5") and not response.get("content"):
                    response["content"] = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
            for code, description in PROBLEM_STATUSES.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                    },
                )
    return result


class NextCursorDocumented(PageNumberPagination):
    """How a list that pages itself by cursor (`?cursor=` the `next_cursor` of the previous page, `?limit=`)
    is documented: the view builds the page; this class only describes it to the schema."""

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["results", "next_cursor"],
            "properties": {"results": schema, "next_cursor": {"type": "string", "nullable": True}},
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "The `next_cursor` of the previous page."},
            {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer"},
             "description": "Items per page, up to 200 (30 by default)."},
        ]  # fmt: skip


def not_found_handler(request: Any, exception: Exception | None = None) -> Any:
    """The tenant site's 404 (`handler404`): a URL under the API that names no endpoint answers in the API's
    error shape; any other gets the usual page."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if not request.path.startswith("/api/"):
        return page_not_found(request, exception)
    title = str(exceptions.NotFound.default_detail)
    body = {"type": "about:blank", "title": title, "status": 404, "detail": title}
    return JsonResponse(body, status=404, content_type=PROBLEM_CONTENT_TYPE)
