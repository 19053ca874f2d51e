from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection, models

from core.crypto import DecryptionError, key_id_of, keyring, new_key_spec, parse_keys
from core.fields import EncryptedJSONField, EncryptedTextField

OLD = new_key_spec("old")
NEW = new_key_spec("new")


class Vault(models.Model):
    """A throwaway model with encrypted columns; its table is made for these tests only."""

    secret = EncryptedTextField(null=True, blank=True)
    creds = EncryptedJSONField(null=True, blank=True)

    class Meta:
        app_label = "core"
        db_table = "test_encryption_vault"

    def __str__(self) -> str:
        return f"vault {self.pk}"


@pytest.fixture
def vault_table(db: Any) -> None:
    # made inside the test's transaction, so it is rolled back with it
    with connection.schema_editor() as editor:
        editor.create_model(Vault)


def raw_column(pk: int, column: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM test_encryption_vault WHERE id = %s", [pk])  # noqa: S608
        return str(cursor.fetchone()[0])


def test_roundtrip_and_nonce_is_random(settings: Any) -> None:
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    ring = keyring()
    a, b = ring.encrypt("EAAG-token"), ring.encrypt("EAAG-token")
    assert a != b  # a fresh nonce each time
    assert ring.decrypt(a) == ring.decrypt(b) == "EAAG-token"
    assert key_id_of(a) == "new"


def test_tampered_value_raises_instead_of_returning_ciphertext(settings: Any) -> None:
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    token = keyring().encrypt("secret")
    head, body = token.rsplit(":", 1)
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(DecryptionError):
        keyring().decrypt(f"{head}:{flipped}")
    with pytest.raises(DecryptionError):
        keyring().decrypt("plain text that was never encrypted")


def test_unknown_key_raises(settings: Any) -> None:
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    token = keyring().encrypt("x")
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    with pytest.raises(DecryptionError, match="no key"):
        keyring().decrypt(token)


def test_bad_key_configuration_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured):
        parse_keys(["k1:too-short"])
    with pytest.raises(ImproperlyConfigured):
        parse_keys([])


def test_field_stores_ciphertext_and_reads_plaintext(settings: Any, vault_table: None) -> None:
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    row = Vault.objects.create(secret="twilio-auth-token", creds={"token": "EAAG", "waba": 1})
    stored = raw_column(row.pk, "secret")
    assert stored.startswith("v1:new:") and "twilio-auth-token" not in stored
    assert "EAAG" not in raw_column(row.pk, "creds")
    again = Vault.objects.get(pk=row.pk)
    assert again.secret == "twilio-auth-token"
    assert again.creds == {"token": "EAAG", "waba": 1}
    assert Vault.objects.filter(secret__isnull=False).count() == 1


def test_rotation_reencrypts_with_the_newest_key(settings: Any, vault_table: None) -> None:
    configured = list(settings.FIELD_ENCRYPTION_KEYS)  # rows other tests committed (channel credentials) use these
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    row = Vault.objects.create(secret="s3cret", creds={"a": 1})
    assert key_id_of(raw_column(row.pk, "secret")) == "old"

    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD, *configured]  # new key first, old ones still readable
    assert Vault.objects.get(pk=row.pk).secret == "s3cret"
    call_command("rotate_encryption_keys", verbosity=0)
    assert key_id_of(raw_column(row.pk, "secret")) == "new"
    assert key_id_of(raw_column(row.pk, "creds")) == "new"

    settings.FIELD_ENCRYPTION_KEYS = [NEW]  # the old key can now be retired
    assert Vault.objects.get(pk=row.pk).creds == {"a": 1}
