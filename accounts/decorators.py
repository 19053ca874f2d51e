from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from core.roles import Action, permission_check

View = Callable[..., HttpResponse | StreamingHttpResponse]

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def member_required(view: View) -> View:
    """The user is logged in on this tenant and is a member (see TenantMembershipMiddleware)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse | StreamingHttpResponse:
        if getattr(request, "membership", None) is None:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


def action_required(action: Action, *, post: Action | None = None) -> Callable[[View], View]:
    """A member whose role the table (core.roles) allows `action`; a POST (or other write) needs `post`
    when given. The page is refused with 403 otherwise. Views that do several things on POST check the
    one they do with core.roles.permission_check."""

    def decorate(view: View) -> View:
        @wraps(view)
        @member_required
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse | StreamingHttpResponse:
            needed = action if post is None or request.method in SAFE_METHODS else post
            permission_check(request.membership, needed)  # type: ignore[attr-defined]
            return view(request, *args, **kwargs)

        wrapper.required_actions = frozenset({action, post} - {None})  # type: ignore[attr-defined]
        return wrapper

    return decorate


def manager_required(view: View) -> View:
    """Owners and admins, with no action named: kept for code written before the role table. Name the
    action with action_required instead; tests/accounts/test_roles.py refuses pages that name none."""

    @wraps(view)
    @member_required
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse | StreamingHttpResponse:
        if not request.membership.is_manager:  # type: ignore[attr-defined]
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper
