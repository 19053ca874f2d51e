"""An OAuth 2.0 identity provider that speaks Google's and Facebook's endpoints, for tests and the demo.

Google: GET /o/oauth2/v2/auth -> 302 to redirect_uri with code+state; POST /token (client secret in the
body or HTTP Basic, PKCE S256 checked when a challenge was sent); GET /oauth2/v2/userinfo (Bearer).
Facebook: GET /dialog/oauth; GET /v21.0/oauth/access_token; GET /v21.0/me (appsecret_proof checked).
The "person" who consents is whoever was set with ``set_identity`` (or ``login_hint`` in the query).

    python -m emulators.oauth --port 8701
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from emulators.base import EmulatorHandler, EmulatorServer


@dataclass
class Identity:
    email: str
    name: str = "Test Person"
    email_verified: bool = True  # Google says whether it confirmed the address; Facebook only returns confirmed ones
    uid: str = field(default_factory=lambda: str(secrets.randbelow(10**12)))


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    identity: Identity
    code_challenge: str | None


class OAuthHandler(EmulatorHandler):
    server: OAuthEmulator

    def do_GET(self) -> None:
        route = {
            "/o/oauth2/v2/auth": self.authorize,
            "/dialog/oauth": self.authorize,
            "/oauth2/v2/userinfo": self.google_userinfo,
            "/v21.0/oauth/access_token": self.facebook_token,
            "/v21.0/me": self.facebook_me,
        }.get(self.path_only)
        if route is None:
            self.send_json(404, {"error": "not_found"})
        else:
            route()

    def do_POST(self) -> None:
        if self.path_only == "/token":
            self.google_token()
        else:
            self.send_json(404, {"error": "not_found"})

    # both providers: the consent screen, auto-approved as the configured identity
    def authorize(self) -> None:
        q = self.query()
        client_id, redirect_uri = q.get("client_id", ""), q.get("redirect_uri", "")
        if client_id not in self.server.clients or not redirect_uri:
            self.send_json(400, {"error": "invalid_request", "error_description": "unknown client or no redirect_uri"})
            return
        identity = Identity(email=q["login_hint"]) if q.get("login_hint") else self.server.identity
        challenge = q.get("code_challenge") if q.get("code_challenge_method", "S256") == "S256" else None
        code = secrets.token_urlsafe(16)
        with self.server.lock:
            self.server.grants[code] = Grant(client_id, redirect_uri, identity, challenge)
        sep = "&" if "?" in redirect_uri else "?"
        self.redirect(f"{redirect_uri}{sep}{urlencode({'code': code, 'state': q.get('state', '')})}")

    def _redeem(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
        basic = self.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        if self.server.clients.get(client_id) != secret:
            return 401, {"error": "invalid_client"}
        with self.server.lock:
            grant = self.server.grants.pop(params.get("code", ""), None)
        if grant is None or grant.client_id != client_id or grant.redirect_uri != params.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        if grant.code_challenge:
            verifier = params.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if not hmac.compare_digest(digest, grant.code_challenge):
                return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        token = secrets.token_urlsafe(24)
        with self.server.lock:
            self.server.tokens[token] = (grant.identity, client_id)
        self.server.redeemed += 1
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3599, "scope": "openid email profile"}

    def _bearer_identity(self, token: str) -> Identity | None:
        with self.server.lock:
            found = self.server.tokens.get(token)
        return found[0] if found else None

    # Google
    def google_token(self) -> None:
        status, payload = self._redeem(self.form())
        self.send_json(status, payload)

    def google_userinfo(self) -> None:
        auth = self.headers.get("Authorization", "")
        identity = self._bearer_identity(auth.removeprefix("Bearer ").strip())
        if identity is None:
            self.send_json(401, {"error": {"code": 401, "message": "Invalid Credentials", "status": "UNAUTHENTICATED"}})
            return
        first, _, last = identity.name.partition(" ")
        self.send_json(
            200,
            {
                "id": identity.uid,
                "email": identity.email,
                "verified_email": identity.email_verified,
                "name": identity.name,
                "given_name": first,
                "family_name": last,
                "picture": "",
            },
        )

    # Facebook
    def facebook_token(self) -> None:
        status, payload = self._redeem(self.query())
        if status != 200:
            payload = {"error": {"message": payload["error"], "type": "OAuthException", "code": 100}}
        self.send_json(status, payload)

    def facebook_me(self) -> None:
        q = self.query()
        with self.server.lock:
            identity, client_id = self.server.tokens.get(q.get("access_token", ""), (None, ""))
        secret = self.server.clients.get(client_id, "")
        proof = hmac.new(secret.encode(), q.get("access_token", "").encode(), hashlib.sha256).hexdigest()
        if identity is None or not hmac.compare_digest(proof, q.get("appsecret_proof", "")):
            self.send_json(
                400, {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}
            )
            return
        first, _, last = identity.name.partition(" ")
        self.send_json(
            200,
            {
                "id": identity.uid,
                "email": identity.email,
                "name": identity.name,
                "first_name": first,
                "last_name": last,
            },
        )


class OAuthEmulator(EmulatorServer):
    def __init__(self, clients: dict[str, str], port: int = 0) -> None:
        super().__init__(OAuthHandler, port)
        self.clients = clients  # client_id -> secret
        self.identity = Identity(email="person@example.com")
        self.grants: dict[str, Grant] = {}
        self.tokens: dict[str, tuple[Identity, str]] = {}  # access token -> (person, client id)
        self.redeemed = 0

    def set_identity(self, email: str, name: str = "Test Person", *, email_verified: bool = True) -> None:
        self.identity = Identity(email=email, name=name, email_verified=email_verified)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8701)
    parser.add_argument("--client", action="append", default=["demo-client:demo-secret"], help="id:secret")
    parser.add_argument("--email", default="person@example.com")
    args = parser.parse_args()
    emulator = OAuthEmulator(dict(c.split(":", 1) for c in args.client), port=args.port)
    emulator.set_identity(args.email)
    print(f"OAuth emulator on {emulator.base_url}")  # noqa: T201
    emulator.serve_forever()


if __name__ == "__main__":
    main()
