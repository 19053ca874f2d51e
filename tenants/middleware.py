from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone, translation
from django_tenants.middleware.main import TenantMainMiddleware

from tenants.models import Tenant
from tenants.selectors import tenant_for_hostname

ALWAYS_OPEN_PATHS = ("/health", "/static/", "/manifest.webmanifest", "/sw.js", "/offline/")


class TenantMiddleware(TenantMainMiddleware):
    """Routes a request to its tenant's schema; the main domain is the public schema."""

    def get_tenant(self, domain_model: object, hostname: str) -> Tenant:
        tenant = tenant_for_hostname(hostname)
        if tenant is None:
            raise domain_model.DoesNotExist  # type: ignore[attr-defined]
        return tenant

    def no_tenant_found(self, request: HttpRequest, hostname: str) -> HttpResponse:
        return _render_in_visitor_language(request, "tenants/not_found.html", {"hostname": hostname}, status=404)


def _render_in_visitor_language(
    request: HttpRequest, template: str, context: dict[str, object], status: int
) -> HttpResponse:
    """Pages answered before LocaleMiddleware runs: in the visitor's language (cookie or Accept-Language)."""
    with translation.override(translation.get_language_from_request(request)):
        return render(request, template, context, status=status)


class TenantActiveMiddleware:
    """A suspended tenant gets a clear page; an active one gets its language and timezone."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant: Tenant | None = getattr(request, "tenant", None)
        if tenant is None or tenant.schema_name == "public":
            return self.get_response(request)
        if not tenant.is_active and not request.path.startswith(ALWAYS_OPEN_PATHS):
            return _render_in_visitor_language(request, "tenants/suspended.html", {"tenant": tenant}, status=403)
        timezone.activate(ZoneInfo(tenant.timezone))
        if not request.COOKIES.get("django_language"):
            # The tenant's language is the default; a user's own choice (cookie) wins in LocaleMiddleware.
            request.META["HTTP_ACCEPT_LANGUAGE"] = tenant.language
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


# The pages of each plan feature (path prefixes). A feature the plan leaves out answers 403 with a clear
# page (or problem+json under /api/); the navigation hides its links (tenants.context_processors).
FEATURE_PATHS: tuple[tuple[str, str], ...] = (
    ("/calls/", "voice"),
    ("/voice/", "voice"),
    ("/ai/", "ai"),
    ("/knowledge/", "ai"),  # what the assistants answer from: nothing else reads it
    ("/channels/qr/new/", "qr"),
    ("/settings/api-tokens/", "api"),
    ("/settings/webhooks/inbound/", ""),  # incoming hooks are not outgoing webhooks
    ("/settings/webhooks/", "webhooks"),
    ("/api/v1/calls/", "voice"),
    ("/api/v1/voice-", "voice"),
    ("/api/v1/assistants/", "ai"),
    ("/api/v1/knowledge-", "ai"),
    ("/api/v1/qa-pairs/", "ai"),
    ("/api/v1/ai-tools/", "ai"),
    ("/api/v1/faq-suggestions/", "ai"),
    ("/api/v1/lead-suggestions/", "ai"),
    ("/api/v1/webhook-", "webhooks"),
)
FEATURE_PATH_PARTS: tuple[tuple[str, str], ...] = (("/copilot/", "ai"), ("/bot/", "ai"))


def features_of_path(path: str, *, token_auth: bool = False) -> list[str]:
    """The plan features a request needs. The REST API needs `api` when called with a token (the pages'
    own calls, signed in by session, need only their page's feature)."""
    needed = ["api"] if path.startswith("/api/") and token_auth else []
    for prefix, feature in FEATURE_PATHS:
        if path.startswith(prefix):
            return needed + ([feature] if feature else [])
    if path.startswith(("/conversations/", "/api/v1/conversations/")):
        needed += [feature for part, feature in FEATURE_PATH_PARTS if part in path][:1]
    return needed


class PlanFeatureMiddleware:
    """Refuses the pages (and token API) of a feature the tenant's plan does not include."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from tenants import usage

        tenant: Tenant | None = getattr(request, "tenant", None)
        if tenant is None or tenant.schema_name == "public":
            return self.get_response(request)
        features = usage.features_of(tenant)
        request.plan_features = features  # type: ignore[attr-defined]  # the navigation reads it
        auth = request.headers.get("Authorization", "")
        needed = features_of_path(request.path, token_auth=auth.split(" ")[0].lower() in ("token", "bearer"))
        feature = next((f for f in needed if not features.get(f, True)), "")
        if feature:
            message = usage.feature_refusal(feature)
            if request.path.startswith("/api/"):
                return JsonResponse(
                    {
                        "type": "about:blank",
                        "title": "Permission denied",
                        "status": 403,
                        "detail": message,
                        "code": usage.FEATURE_CODE,
                    },
                    status=403,
                    content_type="application/problem+json",
                )
            return render(request, "tenants/feature_off.html", {"message": message}, status=403)
        return self.get_response(request)
