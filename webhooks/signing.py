"""Standard Webhooks signing lives in `core.signing` (the AI app's custom HTTP tools sign their requests
the same way, and core is the one place both may import); re-exported here for the webhooks app."""

from core.signing import PREFIX, SignatureInvalid, secret_new, signature, signature_header, verify

__all__ = ["PREFIX", "SignatureInvalid", "secret_new", "signature", "signature_header", "verify"]
