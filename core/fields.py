"""Model fields whose values are encrypted at rest (see core.crypto)."""

from __future__ import annotations

import json
from typing import Any

from django.db import models

from core.crypto import keyring


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    """A string stored encrypted. It cannot be filtered on, except for ``isnull``."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        if value is None or value == "":
            return value
        return self.decode(keyring().decrypt(value))

    def get_prep_value(self, value: Any) -> Any:
        if value is None or value == "":
            return value
        return keyring().encrypt(self.encode(value))

    def get_lookup(self, lookup_name: str) -> Any:
        return super().get_lookup(lookup_name) if lookup_name == "isnull" else None

    def encode(self, value: Any) -> str:
        return str(value)

    def decode(self, text: str) -> Any:
        return text


class EncryptedJSONField(EncryptedTextField):
    """A JSON value (credentials, tokens) stored encrypted."""

    # what django-stubs reads to type the attribute on a model instance
    _pyi_private_set_type: Any
    _pyi_private_get_type: dict[str, Any]  # type: ignore[assignment]

    def encode(self, value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)

    def decode(self, text: str) -> Any:
        return json.loads(text)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value
