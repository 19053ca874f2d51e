"""A Graph API (WhatsApp Cloud API) emulator: sends, media, templates, documented errors, and signed
webhooks back to the app (statuses after configurable delays, inbound messages on demand).

    python -m emulators.meta --port 8710 --webhook http://localhost:8000/webhooks/whatsapp/ --app-secret S

Control endpoints (JSON): POST /_emulator/inbound, POST /_emulator/errors, POST /_emulator/undeliverable,
POST /_emulator/phone_change, POST /_emulator/preference, GET /_emulator/state.

WhatsApp users as Meta shows them since 2026: every message and status carries the user's business-scoped
user id (BSUID, one per business portfolio: the portfolio of the number's WABA); a user with a username
may have the phone withheld (no `wa_id`, no `from`); a phone change regenerates the BSUID and is reported
as a `user_id_update` change or (Meta's form since Aug 2026) a `system` message.
POST /_emulator/echo, /_emulator/history, /_emulator/history_declined, /_emulator/state_sync (coexistence:
the number is also used in the WhatsApp Business app), GET /_emulator/state.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import random
import re
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

from emulators.base import CallbackQueue, EmulatorServer
from emulators.meta_signup import EmbeddedSignup, SignupHandlerMixin

BSUID = re.compile(r"^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$")
ERROR_TEXT = {
    131062: "Business-scoped User ID recipients are not supported for this message.",
    190: "Error validating access token: Session has expired",
    130429: "Rate limit hit",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    131047: "Re-engagement message",
    131026: "Message undeliverable",
    131050: "User has stopped marketing messages",
    131000: "Something went wrong",
    100: "Invalid parameter",
}
HTTP_OF = {190: 401, 131016: 503, 2: 503}


def graph_error(code: int) -> tuple[int, dict[str, Any]]:
    return HTTP_OF.get(code, 400), {
        "error": {
            "message": ERROR_TEXT.get(code, "Error"),
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": ERROR_TEXT.get(code, "")},
            "fbtrace_id": secrets.token_hex(8),
        }
    }


@dataclass
class PhoneNumber:
    """A number as Meta knows it: its WABA, what it displays, the token that may use it, and the app (None:
    the platform's app) whose webhook receives its events."""

    waba_id: str
    display_phone_number: str
    token: str
    verified_name: str = "Demo"
    app_id: str | None = None
    grants: set[str] = field(default_factory=set)  # more tokens that may use it (Embedded Signup, again)
    on_biz_app: bool = False  # stays on the WhatsApp Business app (coexistence)

    def allows(self, token: str) -> bool:
        return bool(token) and (token == self.token or token in self.grants)


@dataclass
class Customer:
    """A WhatsApp user. `key` never changes (what the BSUIDs derive from, with `generation`, which a
    phone change bumps); `withhold_phone` plays a username user whose phone Meta does not share."""

    key: str
    phone: str = ""  # digits
    username: str = ""
    name: str = "Cliente"
    withhold_phone: bool = False
    generation: int = 0


COUNTRY_OF_PREFIX = {"55": "BR", "1": "US", "44": "GB", "351": "PT", "54": "AR"}


@dataclass
class App:
    secret: str
    webhook_url: str
    tokens: frozenset[str] = frozenset()  # access tokens this app issued


def missing_object(object_id: str) -> tuple[int, dict[str, Any]]:
    """What Graph answers for an id the token may not see (code 100, subcode 33)."""
    status, body = graph_error(100)
    body["error"].update(
        {
            "type": "GraphMethodException",
            "error_subcode": 33,
            "message": f"Unsupported get request. Object with ID '{object_id}' does not exist, cannot be loaded "
            "due to missing permissions, or does not support this operation.",
        }
    )
    return status, body


class MetaHandler(SignupHandlerMixin):
    server: MetaEmulator

    def _authorized(self) -> bool:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        known = self.server.tokens is None or token in self.server.tokens
        known = known or any(n.allows(token) for n in self.server.numbers.values())
        ok = bool(token) and known
        if not ok:
            self.send_json(*graph_error(190))
        return ok

    def do_GET(self) -> None:
        parts = self.path_only.strip("/").split("/")
        if parts == ["_emulator", "state"]:
            self.send_json(200, self.server.snapshot())
            return
        if len(parts) == 2 and parts[1] == "debug_token":
            self._debug_token()
            return
        if self.signup_get(parts):  # Embedded Signup: the SDK, its popup, the code exchange
            return
        if not self._authorized():
            return
        token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if len(parts) == 2 and parts[1] in self.server.numbers:
            number = self.server.numbers[parts[1]]
            if not number.allows(token):
                self.send_json(*missing_object(parts[1]))
                return
            answer: dict[str, Any] = {
                "id": parts[1],
                "display_phone_number": number.display_phone_number,
                "verified_name": number.verified_name,
                "quality_rating": "GREEN",
            }
            if "is_on_biz_app" in self.query().get("fields", "").split(","):
                answer["is_on_biz_app"] = number.on_biz_app
            self.send_json(200, answer)
            return
        if len(parts) == 2 and any(n.waba_id == parts[1] and n.token == token for n in self.server.numbers.values()):
            # GET /{waba-id}?fields=owner_business_info: the business portfolio that owns the WABA.
            self.send_json(
                200,
                {
                    "id": parts[1],
                    "name": "Demo WABA",
                    "owner_business_info": {"id": self.server.portfolio_of_waba(parts[1]), "name": "Demo Business"},
                },
            )
            return
        if len(parts) == 3 and parts[2] == "phone_numbers":
            found = [
                {"id": pnid, "display_phone_number": n.display_phone_number, "verified_name": n.verified_name}
                for pnid, n in self.server.numbers.items()
                if n.waba_id == parts[1] and n.allows(token)
            ]
            if not found:
                self.send_json(*missing_object(parts[1]))
                return
            self.send_json(200, {"data": found, "paging": {"cursors": {"before": "0", "after": "0"}}})
            return
        if parts[0] == "_media" and len(parts) == 2 and parts[1] in self.server.media:
            self.send_bytes(*self.server.media[parts[1]])
            return
        if len(parts) == 3 and parts[2] == "message_templates":
            self._templates_list(parts[1])
            return
        if len(parts) == 2 and parts[1] in self.server.media:
            content, mime = self.server.media[parts[1]]
            self.send_json(
                200,
                {
                    "messaging_product": "whatsapp",
                    "url": f"{self.server.base_url}/_media/{parts[1]}",
                    "mime_type": mime,
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "file_size": len(content),
                    "id": parts[1],
                },
            )
            return
        self.send_json(*graph_error(100))

    def do_POST(self) -> None:
        parts = self.path_only.strip("/").split("/")
        if parts[0] == "_emulator":
            self._control(parts[1] if len(parts) > 1 else "", json.loads(self.body() or b"{}"))
            return
        if self.signup_post_public(parts):  # the Embedded Signup popup's answer
            return
        if not self._authorized():
            return
        if self.signup_post(parts):  # register a number, subscribe an app to a WABA
            return
        if len(parts) == 3 and parts[2] == "messages":
            self._send(parts[1], json.loads(self.body() or b"{}"))
        elif len(parts) == 3 and parts[2] == "media":
            self._upload()
        elif len(parts) == 3 and parts[2] == "message_templates":
            self._template_create(parts[1], json.loads(self.body() or b"{}"))
        else:
            self.send_json(*graph_error(100))

    def _debug_token(self) -> None:
        q = self.query()
        app_id, _, secret = str(q.get("access_token", "")).partition("|")
        app = self.server.apps.get(app_id)
        if app is None or not secret or not hmac.compare_digest(app.secret, secret):
            _status, body = graph_error(190)
            body["error"]["message"] = "Invalid OAuth access token - Cannot parse access token"
            self.send_json(400, body)
            return
        token = str(q.get("input_token", ""))
        grant = self.server.signup.grants.get(token)
        valid = token in app.tokens or (grant is not None and grant.app_id == app_id)
        data: dict[str, Any] = {"app_id": app_id if valid else "", "is_valid": valid, "type": "SYSTEM_USER"}
        if valid and grant is not None:  # a business token from Embedded Signup: the WABA it was granted
            data["scopes"] = ["whatsapp_business_management", "whatsapp_business_messaging"]
            data["granular_scopes"] = [
                {"scope": "whatsapp_business_management", "target_ids": [grant.waba_id]},
                {"scope": "whatsapp_business_messaging", "target_ids": [grant.waba_id]},
            ]
        self.send_json(200, {"data": data})

    # --- the Cloud API ---
    def _send(self, pnid: str, body: dict[str, Any]) -> None:
        number = self.server.numbers.get(pnid)
        token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if number is not None and not number.allows(token):
            self.send_json(*missing_object(pnid))
            return
        if body.get("status") == "read":
            self.server.read_receipts.append(str(body.get("message_id")))
            self.send_json(200, {"success": True})
            return
        code = self.server.next_error()
        if code:
            self.send_json(*graph_error(code))
            return
        to, recipient = str(body.get("to", "")), str(body.get("recipient", ""))
        kind = body.get("type")
        # `to` is a phone; `recipient` a BSUID or parent BSUID (`to` wins when both are given).
        if (not to.isdigit() and not (not to and BSUID.match(recipient))) or not kind or kind not in body:
            self.send_json(*graph_error(100))
            return
        if not to and self.server.customer_by_user_id(pnid, recipient) is None:
            self.send_json(*graph_error(131062))
            return
        wamid = "wamid." + base64.b64encode(secrets.token_bytes(24)).decode()
        self.server.record_send(pnid, wamid, body)
        if self.server.stall_s:  # accepted, but the answer is late (a sender may die waiting for it)
            time.sleep(self.server.stall_s)
        contact = {"input": to, "wa_id": to} if to else {"input": recipient, "user_id": recipient}
        self.send_json(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [contact],
                "messages": [{"id": wamid, "message_status": "accepted"}],
            },
        )

    def _upload(self) -> None:
        raw = self.body()
        message = BytesParser(policy=default_policy).parsebytes(
            f"Content-Type: {self.headers.get('Content-Type')}\r\n\r\n".encode() + raw
        )
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                media_id = str(random.randrange(10**15, 10**16))
                content = part.get_payload(decode=True)
                self.server.media[media_id] = (content if isinstance(content, bytes) else b"", part.get_content_type())
                self.send_json(200, {"id": media_id})
                return
        self.send_json(*graph_error(100))

    def _templates_list(self, waba_id: str) -> None:
        q = self.query()
        items = self.server.templates.get(waba_id, [])
        limit, start = int(q.get("limit", 25)), int(q.get("after") or 0)
        page = items[start : start + limit]
        paging: dict[str, Any] = {"cursors": {"before": str(start), "after": str(start + len(page))}}
        if start + limit < len(items):
            paging["next"] = f"{self.server.base_url}{self.path_only}?after={start + limit}&limit={limit}"
        self.send_json(200, {"data": page, "paging": paging})

    def _template_create(self, waba_id: str, body: dict[str, Any]) -> None:
        template_id = str(random.randrange(10**14, 10**15))
        item = {
            "id": template_id,
            "name": body.get("name"),
            "language": body.get("language"),
            "category": body.get("category"),
            "status": "PENDING",
            "components": body.get("components", []),
            "parameter_format": "POSITIONAL",
        }
        self.server.templates.setdefault(waba_id, []).append(item)
        verdict = "REJECTED" if str(body.get("name", "")).startswith("reject") else "APPROVED"
        item_status_change = {
            "event": verdict,
            "message_template_id": int(template_id),
            "message_template_name": item["name"],
            "message_template_language": item["language"],
            "reason": "INVALID_FORMAT" if verdict == "REJECTED" else "NONE",
        }
        item["status_after_review"] = verdict
        self.server.webhook(waba_id, "message_template_status_update", item_status_change, self.server.delays[0] * 2)
        self.send_json(200, {"id": template_id, "status": "PENDING", "category": body.get("category")})

    # --- control ---
    def _control(self, action: str, body: dict[str, Any]) -> None:
        if action == "inbound":
            self.send_json(200, {"id": self.server.inject_inbound(**body)})
        elif action == "errors":
            self.server.fail_next.extend([int(body["code"])] * int(body.get("count", 1)))
            self.server.error_rate = float(body.get("rate", self.server.error_rate))
            self.send_json(200, {"queued": len(self.server.fail_next)})
        elif action == "phone_change":
            self.send_json(200, {"id": self.server.phone_change(**body)})
        elif action == "preference":
            self.server.preference(**body)
        elif action == "echo":
            self.send_json(200, {"id": self.server.inject_echo(**body)})
        elif action == "history":
            self.send_json(200, {"chunks": self.server.inject_history(**body)})
        elif action == "history_declined":
            self.server.inject_history_declined(**body)
            self.send_json(200, {"ok": True})
        elif action == "state_sync":
            self.server.inject_state_sync(**body)
            self.send_json(200, {"ok": True})
        elif action == "undeliverable":
            self.server.undeliverable[str(body["to"]).lstrip("+")] = int(body.get("code", 131026))
            self.send_json(200, {"ok": True})
        else:
            self.send_json(404, {"error": "unknown control"})


class MetaEmulator(EmulatorServer):
    def __init__(
        self,
        *,
        app_secret: str,
        webhook_url: str,
        port: int = 0,
        tokens: set[str] | None = None,
        delays: tuple[float, float, float] = (0.05, 0.1, 0.2),
        auto_read: bool = True,
        numbers: dict[str, PhoneNumber] | None = None,
        apps: dict[str, App] | None = None,
    ) -> None:
        super().__init__(MetaHandler, port)
        self.app_secret, self.webhook_url, self.tokens = app_secret, webhook_url, tokens
        self.numbers: dict[str, PhoneNumber] = dict(numbers or {})
        self.apps: dict[str, App] = dict(apps or {})
        self.delays, self.auto_read = delays, auto_read
        self.sent: dict[str, dict[str, Any]] = {}
        self.media: dict[str, tuple[bytes, str]] = {}
        self.templates: dict[str, list[dict[str, Any]]] = {}
        self.fail_next: list[int] = []
        self.error_rate, self.error_code = 0.0, 130429
        self.undeliverable: dict[str, int] = {}
        self.read_receipts: list[str] = []
        self.stall_s = 0.0
        self.callbacks = CallbackQueue()
        self.portfolios: dict[str, str] = {}  # WABA id -> business portfolio id (a default is derived)
        self.parent_ids = False  # linked portfolios: also send parent BSUIDs
        self.customers: dict[str, Customer] = {}
        self._by_phone: dict[str, Customer] = {}
        self._by_username: dict[str, Customer] = {}
        self.captured: list[dict[str, Any]] | None = None
        self.signup = EmbeddedSignup()

    @contextmanager
    def capture(self) -> Iterator[list[dict[str, Any]]]:
        """Webhooks built inside are kept (as the bodies Meta would post) instead of being delivered, so
        a test can post them through the app's intake itself."""
        self.captured = []
        try:
            yield self.captured
        finally:
            self.captured = None

    # --- WhatsApp users and their business-scoped ids ---
    def portfolio_of_waba(self, waba_id: str) -> str:
        return self.portfolios.get(waba_id) or "8" + hashlib.sha256(waba_id.encode()).hexdigest()[:14].translate(
            str.maketrans("abcdef", "123456")
        )

    def portfolio_of_number(self, pnid: str) -> str:
        number = self.numbers.get(pnid)
        return self.portfolio_of_waba(number.waba_id if number else pnid)

    def customer(self, *, phone: str = "", username: str = "") -> Customer:
        """The user with this phone (or, without one, this username), made when new."""
        phone, username = phone.lstrip("+"), username.lstrip("@")
        with self.lock:
            found = self._by_phone.get(phone) if phone else self._by_username.get(username) if username else None
            if found is None:
                found = Customer(key=phone or f"u:{username}", phone=phone, username=username)
                self.customers[found.key] = found
                if phone:
                    self._by_phone[phone] = found
            if username and found.username != username:
                found.username = username
            if found.username:
                self._by_username[found.username] = found
            return found

    def _rephone(self, customer: Customer, new_phone: str) -> None:
        with self.lock:
            self._by_phone.pop(customer.phone, None)
            customer.phone = new_phone
            self._by_phone[new_phone] = customer

    def user_id(self, pnid: str, customer: Customer, generation: int | None = None) -> str:
        """The customer's BSUID in the portfolio of this number: country, period, digits."""
        gen = customer.generation if generation is None else generation
        country = next(
            (
                c
                for prefix, c in sorted(COUNTRY_OF_PREFIX.items(), key=lambda kv: -len(kv[0]))
                if customer.key.startswith(prefix)
            ),
            "BR",
        )
        seed = f"{self.portfolio_of_number(pnid)}|{customer.key}|{gen}".encode()
        return f"{country}.{int(hashlib.sha256(seed).hexdigest()[:15], 16)}"

    def parent_user_id(self, customer: Customer, generation: int | None = None) -> str:
        gen = customer.generation if generation is None else generation
        digits = int(hashlib.sha256(f"parent|{customer.key}|{gen}".encode()).hexdigest()[:15], 16)
        return f"{self.user_id('', customer, gen)[:2]}.ENT.{digits}"

    def customer_by_user_id(self, pnid: str, user_id: str) -> Customer | None:
        with self.lock:
            known = list(self.customers.values())
        for customer in known:
            if user_id in (self.user_id(pnid, customer), self.parent_user_id(customer)):
                return customer
        return None

    def _ids(self, pnid: str, customer: Customer) -> dict[str, str]:
        ids = {"user_id": self.user_id(pnid, customer)}
        if self.parent_ids:
            ids["parent_user_id"] = self.parent_user_id(customer)
        return ids

    def _contact_card(self, pnid: str, customer: Customer, *, username: bool = True) -> dict[str, Any]:
        profile: dict[str, Any] = {"name": customer.name}
        if username and customer.username:
            profile["username"] = customer.username
        card: dict[str, Any] = {"profile": profile, **self._ids(pnid, customer)}
        if customer.phone and not customer.withhold_phone:
            card["wa_id"] = customer.phone
        return card

    def next_error(self) -> int:
        with self.lock:
            if self.fail_next:
                return self.fail_next.pop(0)
        return self.error_code if self.error_rate and random.random() < self.error_rate else 0

    def sign(self, body: bytes, secret: str | None = None) -> str:
        key = (secret if secret is not None else self.app_secret).encode()
        return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()

    def webhook(self, entry_id: str, field: str, value: dict[str, Any], delay: float) -> None:
        """Post a signed change, as Meta does: to the webhook of the app the number is on (the platform's
        app unless the number was connected with an app of its own), signed with that app's secret."""
        pnid = str((value.get("metadata") or {}).get("phone_number_id", ""))
        number = self.numbers.get(pnid) or next((n for n in self.numbers.values() if n.waba_id == entry_id), None)
        if entry_id == "waba" and number is not None:
            entry_id = number.waba_id
        app = self.apps.get(number.app_id or "") if number is not None else None
        secret, url = (app.secret, app.webhook_url) if app is not None else (self.app_secret, self.webhook_url)
        envelope = {
            "object": "whatsapp_business_account",
            "entry": [{"id": entry_id, "time": int(time.time()), "changes": [{"field": field, "value": value}]}],
        }
        if self.captured is not None:
            self.captured.append(envelope)
            return
        body = json.dumps(envelope).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": self.sign(body, secret)}
        self.callbacks.schedule(delay, url, body, headers)

    def _metadata(self, pnid: str) -> dict[str, str]:
        number = self.numbers.get(pnid)
        display = re.sub(r"\D", "", number.display_phone_number) if number else "15550001111"
        return {"display_phone_number": display, "phone_number_id": pnid}

    def record_send(self, pnid: str, wamid: str, body: dict[str, Any]) -> None:
        to, recipient = str(body.get("to", "")), str(body.get("recipient", ""))
        with self.lock:
            self.sent[wamid] = {"phone_number_id": pnid, **body}
        customer = self.customer(phone=to) if to else self.customer_by_user_id(pnid, recipient)
        assert customer is not None  # _send refused an unknown BSUID
        shown_phone = customer.phone if customer.phone and (to or not customer.withhold_phone) else ""
        base: dict[str, Any] = {"id": wamid, "recipient_id": shown_phone or self.user_id(pnid, customer)}
        if body.get("biz_opaque_callback_data"):
            base["biz_opaque_callback_data"] = body["biz_opaque_callback_data"]
        ids = {f"recipient_{k}": v for k, v in self._ids(pnid, customer).items()}
        if (to or recipient) in self.undeliverable or customer.phone in self.undeliverable:
            code = self.undeliverable.get(to or recipient) or self.undeliverable[customer.phone]
            if not to:  # a failed send to a BSUID names it; one to a phone does not (and has no contacts)
                base.update(ids)
            failed = {
                **base,
                "status": "failed",
                "timestamp": str(int(time.time())),
                "errors": [
                    {
                        "code": code,
                        "title": ERROR_TEXT.get(code, "Error"),
                        "message": ERROR_TEXT.get(code, ""),
                        "error_data": {"details": ERROR_TEXT.get(code, "")},
                    }
                ],
            }
            self.webhook(
                "waba",
                "messages",
                {"messaging_product": "whatsapp", "metadata": self._metadata(pnid), "statuses": [failed]},
                self.delays[0],
            )
            return
        steps = ["sent", "delivered"] + (["read"] if self.auto_read else [])
        for step, delay in zip(steps, self.delays, strict=False):
            status = {
                **base,
                **ids,
                "status": step,
                "timestamp": str(int(time.time() + delay)),
                "pricing": {"billable": True, "pricing_model": "PMP", "category": "service", "type": "regular"},
            }
            card = self._contact_card(pnid, customer, username=step != "sent")  # username: delivered/read only
            if to:
                card["wa_id"] = to
            self.webhook(
                "waba",
                "messages",
                {
                    "messaging_product": "whatsapp",
                    "metadata": self._metadata(pnid),
                    "contacts": [card],
                    "statuses": [status],
                },
                delay,
            )

    def inject_inbound(
        self,
        *,
        phone_number_id: str,
        from_phone: str = "",
        type: str = "text",
        text: str = "",
        name: str = "Cliente",
        content: dict[str, Any] | None = None,
        media: str = "",
        mime: str = "image/jpeg",
        delay: float = 0.0,
        username: str = "",
        withhold_phone: bool | None = None,
    ) -> str:
        """A customer writes to the business: a signed `messages` webhook. `media` (base64) is served back.
        The user is known by phone, or by `username` alone; `withhold_phone` plays a username user whose
        phone Meta does not share (no `wa_id`, no `from`: only the BSUID, `from_user_id`)."""
        wamid = "wamid." + base64.b64encode(secrets.token_bytes(24)).decode()
        customer = self.customer(phone=from_phone, username=username)
        customer.name = name
        if withhold_phone is not None:
            customer.withhold_phone = withhold_phone
        card = self._contact_card(phone_number_id, customer)
        message: dict[str, Any] = {"id": wamid, "timestamp": str(int(time.time())), "type": type}
        if "wa_id" in card:
            message["from"] = card["wa_id"]
        message["from_user_id"] = card["user_id"]
        if "parent_user_id" in card:
            message["from_parent_user_id"] = card["parent_user_id"]
        if type == "text":
            message["text"] = {"body": text}
        elif content is not None:
            message[type] = content
        if media:
            media_id = str(random.randrange(10**15, 10**16))
            self.media[media_id] = (base64.b64decode(media), mime)
            message[type] = {**message.get(type, {}), "id": media_id, "mime_type": mime, "sha256": "x"}
        value = {
            "messaging_product": "whatsapp",
            "metadata": self._metadata(phone_number_id),
            "contacts": [card],
            "messages": [message],
        }
        self.webhook("waba", "messages", value, delay)
        return wamid

    def phone_change(
        self, *, phone_number_id: str, phone: str, new_phone: str, form: str = "system", share_phone: bool = True
    ) -> str:
        """The user changes number: Meta regenerates their BSUID and says so, as a `system` message
        (`user_changed_number`, or `user_changed_user_id` when the phone may not be shared) or, in the
        `form="user_id_update"`, as a `user_id_update` change. Returns the new BSUID."""
        customer = self.customer(phone=phone)
        previous, previous_parent = self.user_id(phone_number_id, customer), self.parent_user_id(customer)
        customer.generation += 1
        self._rephone(customer, new_phone.lstrip("+"))
        current, parent = self.user_id(phone_number_id, customer), self.parent_user_id(customer)
        now = str(int(time.time()))
        if form == "user_id_update":
            item: dict[str, Any] = {"user_id": {"previous": previous, "current": current}, "timestamp": now}
            if self.parent_ids:
                item["parent_user_id"] = {"previous": previous_parent, "current": parent}
            if share_phone:
                item["wa_id"] = customer.phone
            value = {
                "messaging_product": "whatsapp",
                "metadata": self._metadata(phone_number_id),
                "user_id_update": [item],
            }
            self.webhook("waba", "user_id_update", value, 0.0)
            return current
        system: dict[str, Any] = {
            "type": "user_changed_number" if share_phone else "user_changed_user_id",
            "previous_user_id": previous,
            "user_id": current,
        }
        if share_phone:
            system["body"] = f"User {customer.name} changed from {phone.lstrip('+')} to {customer.phone}"
            system["wa_id"] = customer.phone
        else:
            system["body"] = f"User {customer.name} changed their user ID"
        if self.parent_ids:
            system.update(previous_parent_user_id=previous_parent, parent_user_id=parent)
        message: dict[str, Any] = {
            "id": "wamid." + base64.b64encode(secrets.token_bytes(24)).decode(),
            "timestamp": now,
            "type": "system",
            "system": system,
            "from_user_id": previous,
        }
        if share_phone:
            message["from"] = phone.lstrip("+")
        value = {"messaging_product": "whatsapp", "metadata": self._metadata(phone_number_id), "messages": [message]}
        self.webhook("waba", "messages", value, 0.0)
        return current

    def preference(self, *, phone_number_id: str, phone: str = "", username: str = "", value: str = "stop") -> None:
        """The user stops (or resumes) marketing messages: a `user_preferences` change, with `wa_id` only
        when the phone may be shared (a username user's carries the BSUID alone)."""
        customer = self.customer(phone=phone, username=username)
        pref: dict[str, Any] = {
            **self._ids(phone_number_id, customer),
            "detail": "User requested to stop marketing messages" if value == "stop" else "User resumed",
            "category": "marketing_messages",
            "value": value,
            "timestamp": int(time.time()),
        }
        if customer.phone and not customer.withhold_phone:
            pref["wa_id"] = customer.phone
        change = {
            "messaging_product": "whatsapp",
            "metadata": self._metadata(phone_number_id),
            "contacts": [self._contact_card(phone_number_id, customer)],
            "user_preferences": [pref],
        }
        self.webhook("waba", "user_preferences", change, 0.0)

    # --- coexistence: the number is also used in the WhatsApp Business app -------------------------

    def _value(self, pnid: str, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"messaging_product": "whatsapp", "metadata": self._metadata(pnid), key: items}

    def echo_value(
        self,
        *,
        phone_number_id: str,
        to_phone: str,
        text: str = "",
        type: str = "text",
        content: dict[str, Any] | None = None,
        to_user_id: str = "",
    ) -> tuple[str, dict[str, Any]]:
        """The smb_message_echoes value for a message the owner sent from the WhatsApp Business app on the
        phone (from = the business's number, to = the customer), and its wamid."""
        wamid = "wamid." + base64.b64encode(secrets.token_bytes(24)).decode()
        echo: dict[str, Any] = {
            "from": self._metadata(phone_number_id)["display_phone_number"],
            "to": to_phone.lstrip("+"),
            "id": wamid,
            "timestamp": str(int(time.time())),
            "type": type,
            type: {"body": text} if type == "text" else (content or {}),
        }
        if to_user_id:
            echo["to_user_id"] = to_user_id
        return wamid, self._value(phone_number_id, "message_echoes", [echo])

    def inject_echo(self, *, delay: float = 0.0, **fields: Any) -> str:
        """The owner types a message on the phone: a signed smb_message_echoes webhook. Returns its wamid."""
        wamid, value = self.echo_value(**fields)
        self.webhook("waba", "smb_message_echoes", value, delay)
        return wamid

    def history_values(
        self, *, phone_number_id: str, threads: list[dict[str, Any]], chunk_size: int = 2
    ) -> list[dict[str, Any]]:
        """The `history` webhook values Meta sends for a business that shares its chat history: messages
        grouped in phases by age (0: the last day, 1: days 1-90, 2: days 90-180), each phase in chunks of
        at most `chunk_size` messages, with chunk_order and the overall progress (100 on the last).

        threads: [{"customer": "+55...", "messages": [{"text": ..., "age_s": seconds ago,
        "from_business": bool, "status": "READ", "id": optional wamid}]}]"""
        business = self._metadata(phone_number_id)["display_phone_number"]
        now = int(time.time())
        by_phase: dict[int, list[tuple[str, dict[str, Any]]]] = {0: [], 1: [], 2: []}
        for thread in threads:
            customer = str(thread["customer"]).lstrip("+")
            for item in thread["messages"]:
                age = int(item.get("age_s", 3600))
                phase = 0 if age <= 86400 else (1 if age <= 90 * 86400 else 2)
                message: dict[str, Any] = {
                    "from": business if item.get("from_business") else customer,
                    "id": item.get("id") or "wamid." + base64.b64encode(secrets.token_bytes(24)).decode(),
                    "timestamp": str(now - age),
                    "type": "text",
                    "text": {"body": str(item.get("text", ""))},
                    "history_context": {
                        "status": str(item.get("status", "READ" if item.get("from_business") else "DELIVERED"))
                    },
                }
                if item.get("from_business"):
                    message["to"] = customer
                by_phase[phase].append((customer, message))
        chunks: list[tuple[int, int, list[tuple[str, dict[str, Any]]]]] = []
        for phase in (0, 1, 2):
            items = sorted(by_phase[phase], key=lambda pair: int(pair[1]["timestamp"]))
            for order, start in enumerate(range(0, len(items), chunk_size), start=1):
                chunks.append((phase, order, items[start : start + chunk_size]))
            if not items:
                chunks.append((phase, 1, []))  # a phase without messages still reports its progress
        values = []
        for index, (phase, order, items) in enumerate(chunks, start=1):
            grouped: dict[str, list[dict[str, Any]]] = {}
            for customer, message in items:
                grouped.setdefault(customer, []).append(message)
            history = {
                "metadata": {"phase": phase, "chunk_order": order, "progress": index * 100 // len(chunks)},
                "threads": [{"id": customer, "messages": messages} for customer, messages in grouped.items()],
            }
            values.append(self._value(phone_number_id, "history", [history]))
        return values

    def inject_history(
        self,
        *,
        phone_number_id: str,
        threads: list[dict[str, Any]],
        chunk_size: int = 2,
        deliveries: int = 1,
        delay: float = 0.0,
    ) -> int:
        """Send the history webhooks (each chunk `deliveries` times, as Meta's retries may). Returns how
        many chunks."""
        values = self.history_values(phone_number_id=phone_number_id, threads=threads, chunk_size=chunk_size)
        for attempt in range(deliveries):
            for index, value in enumerate(values):
                self.webhook("waba", "history", value, delay + 0.05 * (index + attempt * len(values)))
        return len(values)

    def history_declined_value(self, *, phone_number_id: str) -> dict[str, Any]:
        """What Meta sends when the business chose not to share its chat history."""
        title = "History sharing is turned off by the business"
        error = {"code": 2593109, "title": title, "message": title, "error_data": {"details": title}}
        return self._value(phone_number_id, "history", [{"errors": [error]}])

    def inject_history_declined(self, *, phone_number_id: str, delay: float = 0.0) -> None:
        self.webhook("waba", "history", self.history_declined_value(phone_number_id=phone_number_id), delay)

    def state_sync_value(self, *, phone_number_id: str, contacts: list[dict[str, Any]]) -> dict[str, Any]:
        """smb_app_state_sync: contacts [{"phone", "full_name", "first_name", "action": add|remove,
        "timestamp"}]; a removal carries only the number, as Meta's does."""
        items = []
        for contact in contacts:
            action = str(contact.get("action", "add"))
            entry: dict[str, Any] = {"phone_number": str(contact["phone"]).lstrip("+")}
            if action == "add":
                entry.update(full_name=contact.get("full_name", ""), first_name=contact.get("first_name", ""))
            items.append(
                {
                    "type": "contact",
                    "contact": entry,
                    "action": action,
                    "metadata": {"timestamp": str(int(contact.get("timestamp") or time.time()))},
                }
            )
        return self._value(phone_number_id, "state_sync", items)

    def inject_state_sync(self, *, phone_number_id: str, contacts: list[dict[str, Any]], delay: float = 0.0) -> None:
        value = self.state_sync_value(phone_number_id=phone_number_id, contacts=contacts)
        self.webhook("waba", "smb_app_state_sync", value, delay)

    def snapshot(self) -> dict[str, Any]:
        return {
            "sent": len(self.sent),
            "sent_to": dict(Counter(str(m.get("to") or m.get("recipient", "")) for m in list(self.sent.values()))),
            "callbacks_pending": self.callbacks.pending(),
            "callbacks_delivered": self.callbacks.delivered,
            "callback_failures": self.callbacks.failures[-20:],
            "read_receipts": len(self.read_receipts),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8710)
    parser.add_argument("--webhook", required=True)
    parser.add_argument("--app-secret", required=True)
    parser.add_argument("--delays", default="0.5,1.5,3", help="seconds to sent, delivered, read")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before a send is answered")
    parser.add_argument("--no-callbacks", action="store_true", help="record sends, post no status webhooks")
    args = parser.parse_args()
    delays = tuple(float(x) for x in args.delays.split(","))
    emulator = MetaEmulator(app_secret=args.app_secret, webhook_url=args.webhook, port=args.port, delays=delays)  # type: ignore[arg-type]
    emulator.stall_s = args.latency
    if args.no_callbacks:
        emulator.callbacks.schedule = lambda *a, **k: None  # type: ignore[method-assign]
    print(f"Meta Graph emulator on {emulator.base_url} -> {args.webhook}")  # noqa: T201
    emulator.serve_forever()


if __name__ == "__main__":
    main()
