from __future__ import annotations

from typing import Any

from django.db import connection
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.services import api_token_authenticate


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Token <key>`` (or ``Bearer <key>``). A key only works on its own tenant."""

    keywords = ("token", "bearer")

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        tenant = getattr(connection, "tenant", None)
        token = api_token_authenticate(raw=header[1], tenant=tenant) if tenant is not None else None
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return "Token"
