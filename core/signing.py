"""Standard Webhooks signatures (https://www.standardwebhooks.com): `webhook-signature` is
`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed with the base64 part of a `whsec_` secret;
during a rotation one signature per valid secret, separated by spaces."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def secret_new() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(active_secrets: list[str], webhook_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(signature(s, webhook_id, timestamp, body) for s in active_secrets)


class SignatureInvalid(Exception):
    pass


def verify(secret: str, body: bytes, headers: dict[str, str], tolerance_s: int, now: float | None = None) -> None:
    """Check a Standard Webhooks request: the timestamp within `tolerance_s` of now and one `v1,` signature
    in `webhook-signature` matching. Raises SignatureInvalid."""
    import time

    webhook_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not webhook_id or not stamp.isdigit():
        raise SignatureInvalid("missing webhook-id or webhook-timestamp")
    if abs((now or time.time()) - int(stamp)) > tolerance_s:
        raise SignatureInvalid("webhook-timestamp too old or in the future")
    try:
        expected = signature(secret, webhook_id, int(stamp), body)
    except ValueError as exc:
        raise SignatureInvalid("the secret is not a whsec_ secret") from exc
    given = headers.get("webhook-signature", "").split(" ")
    if not any(hmac.compare_digest(candidate, expected) for candidate in given):
        raise SignatureInvalid("no signature matches")
