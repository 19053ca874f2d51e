"""Meta's side of Embedded Signup (v4), for the Graph emulator (emulators/meta.py).

- GET /sdk.js: a stand-in for connect.facebook.net's SDK: FB.init, and FB.login, which opens the popup
  below and calls back with {authResponse: {code}} (or {authResponse: null} when the window is closed).
- GET /{version}/dialog/oauth: the popup. The user picks a WABA / number, whether to keep the WhatsApp
  Business app on it (offered when extras.featureType is "whatsapp_business_app_onboarding"), or cancels.
  Its answer posts the session-info message ({type: "WA_EMBEDDED_SIGNUP", event, data}) to the opener,
  from this emulator's origin, then the code to the SDK, and closes.
- GET /{version}/oauth/access_token?client_id&client_secret&code: the code (single use, bound to the app
  that launched the flow, expiring after `code_ttl_s`) for a business token granted that WABA; errors in
  Meta's words and codes.
- POST /{phone-number-id}/register and POST /{waba-id}/subscribed_apps, recorded for tests to read.
"""

from __future__ import annotations

import hmac
import html
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emulators.base import EmulatorHandler

if TYPE_CHECKING:
    from emulators.meta import MetaEmulator, PhoneNumber

COEXISTENCE_FEATURE = "whatsapp_business_app_onboarding"


@dataclass
class SignupNumber:
    """A number a business could pick in Meta's window."""

    phone_number_id: str
    waba_id: str
    display_phone_number: str
    verified_name: str = "Loja Demo"
    business_id: str = "400000000000001"
    business_app: bool = False  # already on the WhatsApp Business app (may keep it: coexistence)


@dataclass
class SignupCode:
    app_id: str
    number: SignupNumber | None  # None: a WABA shared without a number (FINISH_ONLY_WABA)
    waba_id: str
    coexistence: bool
    expires_at: float
    used: bool = False


@dataclass
class Grant:
    """A business token: the app it was issued to and the WABA it may manage."""

    app_id: str
    waba_id: str
    business_id: str


@dataclass
class EmbeddedSignup:
    catalog: list[SignupNumber] = field(default_factory=list)
    config_id: str = ""  # the Facebook Login for Business configuration FB.login must name ("" = any)
    code_ttl_s: float = 30.0
    codes: dict[str, SignupCode] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    registered: dict[str, str] = field(default_factory=dict)  # phone number id -> PIN
    subscribed: dict[str, set[str]] = field(default_factory=dict)  # WABA id -> app ids

    def number(self, pnid: str) -> SignupNumber | None:
        return next((n for n in self.catalog if n.phone_number_id == pnid), None)

    def issue_code(self, *, app_id: str, number: SignupNumber | None, waba_id: str, coexistence: bool) -> str:
        code = "AQ" + secrets.token_urlsafe(48)
        self.codes[code] = SignupCode(app_id, number, waba_id, coexistence, time.time() + self.code_ttl_s)
        return code


def oauth_error(message: str, code: int, subcode: int = 0) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = secrets.token_hex(8)
    return {"error": error}


SDK_JS = """// The Meta emulator's stand-in for connect.facebook.net/en_US/sdk.js (FB.init, FB.login).
(function () {
  var BASE = %(base)s;
  var appId = null, version = "v21.0", pending = null; // pending: {callback} of the login in progress
  function finish(response, login) {
    if (!pending || (login && pending !== login)) return;
    var callback = pending.callback; pending = null; callback(response);
  }
  window.addEventListener("message", function (event) {
    if (event.origin !== BASE) return;
    var data = event.data;
    if (typeof data === "string") { try { data = JSON.parse(data); } catch (e) { return; } }
    if (!data || data.type !== "EMULATOR_FB_LOGIN") return;
    finish(data.code ? { status: "connected", authResponse: { code: data.code, userID: data.user_id || "",
      expiresIn: 0, graphDomain: "facebook" } } : { status: "unknown", authResponse: null });
  });
  window.FB = {
    init: function (opts) { appId = opts.appId; version = opts.version || version; },
    login: function (callback, opts) {
      var login = { callback: callback };
      pending = login;
      opts = opts || {};
      var query = new URLSearchParams({
        app_id: appId || "", config_id: opts.config_id || "", response_type: opts.response_type || "token",
        override_default_response_type: String(!!opts.override_default_response_type),
        extras: JSON.stringify(opts.extras || {}), origin: location.origin
      });
      var popup = window.open(BASE + "/" + version + "/dialog/oauth?" + query.toString(), "fb_login",
        "width=640,height=720");
      var timer = setInterval(function () {
        if (!popup || popup.closed) {
          clearInterval(timer);
          setTimeout(function () { finish({ status: "unknown", authResponse: null }, login); }, 400);
        }
      }, 200);
    }
  };
  if (typeof window.fbAsyncInit === "function") window.fbAsyncInit();
})();
"""

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Embedded Signup (Meta emulator)</title>
<style>body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:34rem}label{display:block;margin:.4rem 0}
button{margin:.6rem .4rem 0 0;padding:.5rem 1rem}.muted{color:#666;font-size:.9rem}</style></head><body>
<h1>Connect your WhatsApp</h1><p class="muted">Meta emulator: Embedded Signup %(version)s for app %(app)s</p>
%(body)s</body></html>"""


def _page(version: str, app_id: str, body: str) -> bytes:
    return (PAGE % {"version": html.escape(version), "app": html.escape(app_id), "body": body}).encode()


class SignupHandlerMixin(EmulatorHandler):
    """Routes of Embedded Signup; a base of MetaHandler."""

    server: MetaEmulator

    def signup_get(self, parts: list[str]) -> bool:
        if parts == ["sdk.js"]:
            body = (SDK_JS % {"base": json.dumps(self.server.base_url)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript; charset=utf-8")
            self.send_header("Access-Control-Allow-Origin", "*")  # pages load it with crossorigin="anonymous"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return True
        if len(parts) == 3 and parts[1:] == ["dialog", "oauth"]:
            self._signup_dialog(parts[0])
            return True
        if len(parts) == 3 and parts[1:] == ["oauth", "access_token"]:
            self._signup_exchange()
            return True
        return False

    def signup_post_public(self, parts: list[str]) -> bool:
        if len(parts) == 3 and parts[1:] == ["dialog", "oauth"]:
            self._signup_answer(parts[0])
            return True
        return False

    def signup_post(self, parts: list[str]) -> bool:
        """Bearer-authorized: register a number, subscribe the token's app to a WABA."""
        if len(parts) != 3 or parts[2] not in ("register", "subscribed_apps"):
            return False
        from emulators.meta import graph_error, missing_object

        token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        signup = self.server.signup
        if parts[2] == "register":
            number = self.server.numbers.get(parts[1])
            if number is None or not number.allows(token):
                self.send_json(*missing_object(parts[1]))
                return True
            body = json.loads(self.body() or b"{}")
            failure = self.server.next_error()  # POST /_emulator/errors makes a register fail, as Meta may
            if failure:
                self.send_json(*graph_error(failure))
                return True
            pin = str(body.get("pin", ""))
            if body.get("messaging_product") != "whatsapp" or not (len(pin) == 6 and pin.isdigit()):
                self.send_json(*graph_error(100))
                return True
            signup.registered[parts[1]] = pin
        else:
            grant = signup.grants.get(token)
            if grant is None or grant.waba_id != parts[1]:
                self.send_json(*missing_object(parts[1]))
                return True
            signup.subscribed.setdefault(parts[1], set()).add(grant.app_id)
        self.send_json(200, {"success": True})
        return True

    # --- the popup ---
    def _signup_dialog(self, version: str) -> None:
        q = self.query()
        app_id, origin = q.get("app_id", ""), q.get("origin", "")
        problem = ""
        if app_id not in self.server.apps:
            problem = "Invalid App ID: the app_id in FB.init is not a Meta app."
        elif self.server.signup.config_id and q.get("config_id") != self.server.signup.config_id:
            problem = "Invalid configuration: config_id is not a Facebook Login for Business configuration of this app."
        elif q.get("response_type") != "code" or q.get("override_default_response_type") != "true":
            problem = "Embedded Signup needs response_type 'code' with override_default_response_type."
        elif not origin.startswith(("http://", "https://")):
            problem = "No origin to answer to."
        if problem:
            self.send_response(400)
            raw = _page(version, app_id, f"<p>{html.escape(problem)}</p>")
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            return
        try:
            extras = json.loads(q.get("extras") or "{}")
        except ValueError:
            extras = {}
        coexistence_offered = isinstance(extras, dict) and extras.get("featureType") == COEXISTENCE_FEATURE
        rows = "".join(
            f'<label><input type="radio" name="number" value="{html.escape(n.phone_number_id)}"'
            f"{' checked' if i == 0 else ''}> {html.escape(n.verified_name)} · {html.escape(n.display_phone_number)}"
            f' <span class="muted">(WABA {html.escape(n.waba_id)}'
            f"{', on the WhatsApp Business app' if n.business_app else ''})</span></label>"
            for i, n in enumerate(self.server.signup.catalog)
        )
        keep = (
            '<label><input type="checkbox" name="business_app" value="1"> Keep using the WhatsApp Business app'
            " on this phone (coexistence)</label>"
            if coexistence_offered
            else ""
        )
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
            for k, v in (("app_id", app_id), ("origin", origin), ("coexistence_offered", str(coexistence_offered)))
        )
        body = (
            f'<form method="post">{hidden}<fieldset><legend>WhatsApp Business Account and number</legend>{rows}'
            f"</fieldset>{keep}"
            '<button name="action" value="finish" data-testid="es-finish">Finish</button>'
            '<button name="action" value="only_waba">Finish without a number</button>'
            '<button name="action" value="error">Fail with an error</button>'
            '<button name="action" value="cancel" data-testid="es-cancel">Cancel</button></form>'
        )
        raw = _page(version, app_id, body)
        self.send_bytes(raw, "text/html; charset=utf-8")

    def _signup_answer(self, version: str) -> None:
        form = self.form()
        signup = self.server.signup
        app_id, origin, action = form.get("app_id", ""), form.get("origin", ""), form.get("action", "cancel")
        number = signup.number(form.get("number", ""))
        keep_app = form.get("business_app") == "1" and form.get("coexistence_offered") == "True"
        code = None
        if action == "finish" and number is not None and app_id in self.server.apps:
            coexistence = keep_app and number.business_app
            event = "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING" if coexistence else "FINISH"
            data: dict[str, Any] = {
                "phone_number_id": number.phone_number_id,
                "waba_id": number.waba_id,
                "business_id": number.business_id,
            }
            code = signup.issue_code(app_id=app_id, number=number, waba_id=number.waba_id, coexistence=coexistence)
        elif action == "only_waba" and number is not None and app_id in self.server.apps:
            event, data = "FINISH_ONLY_WABA", {"waba_id": number.waba_id, "business_id": number.business_id}
            code = signup.issue_code(app_id=app_id, number=None, waba_id=number.waba_id, coexistence=False)
        elif action == "error":
            event = "ERROR"
            data = {
                "error_message": "An unexpected error occurred. Please try again later.",
                "error_id": "524126",
                "session_id": secrets.token_hex(8),
                "timestamp": str(int(time.time())),
            }
        else:
            event, data = "CANCEL", {"current_step": "PHONE_NUMBER_SETUP"}
        session = {"type": "WA_EMBEDDED_SIGNUP", "event": event, "data": data, "version": "3"}
        login = {"type": "EMULATOR_FB_LOGIN", "code": code}
        # the session-info message first, then the code for FB.login's callback, as Meta's window does
        script = (
            f"<script>(function(){{var o=window.opener, origin={json.dumps(origin)};"
            f"if(o){{o.postMessage(JSON.stringify({json.dumps(session)}),origin);"
            f"o.postMessage(JSON.stringify({json.dumps(login)}),origin);}}"
            "setTimeout(function(){window.close();},100);})();</script>"
        )
        raw = _page(version, app_id, "<p>Done. This window closes.</p>" + script)
        self.send_bytes(raw, "text/html; charset=utf-8")

    # --- the code exchange ---
    def _signup_exchange(self) -> None:
        from emulators.meta import PhoneNumber

        q = self.query()
        signup = self.server.signup
        app = self.server.apps.get(q.get("client_id", ""))
        if app is None:
            self.send_json(400, oauth_error("Error validating application. Invalid application ID.", 101))
            return
        if not hmac.compare_digest(app.secret, q.get("client_secret", "")):
            self.send_json(400, oauth_error("Error validating client secret.", 1))
            return
        with self.server.lock:
            grant_code = signup.codes.get(q.get("code", ""))
            if grant_code is None or grant_code.app_id != q.get("client_id"):
                self.send_json(400, oauth_error("Invalid verification code format.", 100))
                return
            if grant_code.used:
                self.send_json(400, oauth_error("This authorization code has been used.", 100, 36009))
                return
            if time.time() > grant_code.expires_at:
                self.send_json(400, oauth_error("This authorization code has expired.", 100, 36007))
                return
            grant_code.used = True
            token = "EAAB" + secrets.token_urlsafe(32)
            number = grant_code.number
            business_id = number.business_id if number else ""
            signup.grants[token] = Grant(app_id=grant_code.app_id, waba_id=grant_code.waba_id, business_id=business_id)
            if number is not None:
                known: PhoneNumber | None = self.server.numbers.get(number.phone_number_id)
                if known is None:
                    known = PhoneNumber(
                        waba_id=number.waba_id,
                        display_phone_number=number.display_phone_number,
                        token=token,
                        verified_name=number.verified_name,
                    )
                    self.server.numbers[number.phone_number_id] = known
                else:
                    known.grants.add(token)
                known.on_biz_app = grant_code.coexistence
        self.send_json(200, {"access_token": token, "token_type": "bearer"})
