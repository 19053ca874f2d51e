from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def plan(request: HttpRequest) -> dict[str, Any]:
    """`{% if features.voice %}`: the plan's features (the navigation hides what the plan leaves out)."""
    features = getattr(request, "plan_features", None)
    if features is None:
        from tenants import usage

        tenant = getattr(request, "tenant", None)
        features = usage.features_of(tenant) if tenant is not None and tenant.schema_name != "public" else {}
    return {"features": _Features(features)}


class _Features(dict[str, bool]):
    def __missing__(self, key: str) -> bool:
        return True  # no plan (or a public page): everything is on
