"""A Twilio emulator: Messages (201), documented errors (21211, 21610, 20003, 20429 with Retry-After),
signed status callbacks (X-Twilio-Signature) and inbound SMS/MMS sent to the app; for voice, the
account's IncomingPhoneNumbers (list, buy, fetch, update VoiceUrl/StatusCallback), AvailablePhoneNumbers
/{ISO}/Local (Brazilian numbers first), OutgoingCallerIds with validation requests, and Calls.json,
which rings a number's VoiceUrl with a signed incoming-call webhook.

    python -m emulators.twilio --port 8711 --account ACxxx:token --number +5511...=http://localhost:8000/webhooks/twilio/inbound/
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import re
import secrets
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from emulators.base import CallbackQueue, EmulatorHandler, EmulatorServer

E164 = re.compile(r"^\+[1-9]\d{7,14}$")
ERRORS = {
    20003: (401, "Authentication Error - invalid username"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    21211: (400, "The 'To' number is not a valid phone number."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21422: (400, "PhoneNumber is not available"),
    21452: (400, "No phone numbers found"),
    21450: (400, "Phone number already verified for your account"),
    21631: (400, "Phone Number Requires an Address"),
    21205: (400, "Url is not a valid URL"),
}
# Numbers on sale, per country (AvailablePhoneNumbers/{ISO}/Local.json); Brazil first.
AVAILABLE = {
    "BR": [
        ("+551140028922", "São Paulo", "SP"),
        ("+551140028933", "São Paulo", "SP"),
        ("+552130031234", "Rio de Janeiro", "RJ"),
        ("+553130045678", "Belo Horizonte", "MG"),
    ],
    "US": [("+14155550123", "San Francisco", "CA"), ("+12125550188", "New York", "NY")],
}


class TwilioHandler(EmulatorHandler):
    server: TwilioEmulator

    def _error(self, code: int) -> None:
        status, message = ERRORS[code]
        headers = {"Retry-After": "1"} if code == 20429 else None
        self.send_json(
            status,
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            headers,
        )

    def _account(self, sid: str) -> bool:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, token = base64.b64decode(auth[6:]).decode().partition(":")
            if user == sid and self.server.accounts.get(sid) == token:
                return True
        self._error(20003)
        return False

    def do_GET(self) -> None:
        parts = self.path_only.strip("/").split("/")
        if parts == ["_emulator", "state"]:
            self.send_json(
                200,
                {
                    "sent": len(self.server.sent),
                    "callbacks_delivered": self.server.callbacks.delivered,
                    "callback_failures": self.server.callbacks.failures[-20:],
                },
            )
            return
        if len(parts) == 2 and parts[0] == "media" and parts[1] in self.server.media:
            self.send_bytes(*self.server.media[parts[1]])
            return
        # /2010-04-01/Accounts/{sid}.json and /2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json
        if len(parts) >= 3 and parts[:2] == ["2010-04-01", "Accounts"]:
            sid = parts[2].removesuffix(".json")
            if not self._account(sid):
                return
            if len(parts) == 3:
                self.send_json(200, self._account_resource(sid))
                return
            if parts[3:] == ["IncomingPhoneNumbers.json"]:
                self._incoming_numbers(sid)
                return
            if len(parts) == 5 and parts[3] == "IncomingPhoneNumbers":
                record = self.server.number_by_sid(sid, parts[4].removesuffix(".json"))
                self.send_json(200, record) if record else self._error(20404)
                return
            if len(parts) == 6 and parts[3] == "AvailablePhoneNumbers" and parts[5] == "Local.json":
                self._available(sid, parts[4])
                return
            if parts[3:] == ["OutgoingCallerIds.json"]:
                self._caller_ids(sid)
                return
        self._error(20404)

    def _available(self, sid: str, iso: str) -> None:
        query = self.query()
        contains = query.get("Contains", "").replace("*", "")
        taken = set(self.server.numbers)
        found = [
            {
                "friendly_name": f"({n[3:5]}) {n[5:9]}-{n[9:]}" if iso == "BR" else n,
                "phone_number": n,
                "lata": None,
                "locality": city,
                "rate_center": None,
                "latitude": None,
                "longitude": None,
                "region": region,
                "postal_code": None,
                "iso_country": iso,
                "address_requirements": "local" if iso == "BR" else "none",
                "beta": False,
                "capabilities": {"voice": True, "SMS": iso != "BR", "MMS": False, "fax": False},
            }
            for n, city, region in AVAILABLE.get(iso, [])
            if n not in taken and contains in n
        ]
        if query.get("AreaCode"):
            found = [f for f in found if str(f["phone_number"]).startswith(f"+55{query['AreaCode']}")]
        base = f"/2010-04-01/Accounts/{sid}/AvailablePhoneNumbers/{iso}/Local.json"
        self.send_json(200, {"available_phone_numbers": found[: int(query.get("PageSize", 50))], "uri": base})

    def _caller_ids(self, sid: str) -> None:
        wanted = self.query().get("PhoneNumber")
        base = f"/2010-04-01/Accounts/{sid}/OutgoingCallerIds.json"
        items = [
            record
            for record in self.server.caller_ids.get(sid, {}).values()
            if not wanted or record["phone_number"] == wanted
        ]
        self.send_json(
            200,
            {
                "outgoing_caller_ids": items,
                "start": 0,
                "end": max(len(items) - 1, 0),
                "page": 0,
                "page_size": 50,
                "first_page_uri": base,
                "next_page_uri": None,
                "previous_page_uri": None,
                "uri": base,
            },
        )

    def _account_resource(self, sid: str) -> dict[str, Any]:
        now = format_datetime(datetime.now(tz=UTC))
        return {
            "sid": sid,
            "owner_account_sid": sid,
            "friendly_name": f"Account {sid[-4:]}",
            "status": "active",
            "type": "Full",
            "date_created": now,
            "date_updated": now,
            "auth_token": "",  # Twilio masks it too
            "uri": f"/2010-04-01/Accounts/{sid}.json",
            "subresource_uris": {},
        }

    def _incoming_numbers(self, sid: str) -> None:
        wanted = self.query().get("PhoneNumber")
        owned = [n for n, owner in self.server.numbers.items() if owner == sid and (not wanted or n == wanted)]
        base = f"/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json"
        self.send_json(
            200,
            {
                "incoming_phone_numbers": [self.server.number_record(sid, n) for n in owned],
                "start": 0,
                "end": max(len(owned) - 1, 0),
                "page": 0,
                "page_size": 50,
                "first_page_uri": base,
                "next_page_uri": None,
                "previous_page_uri": None,
                "uri": base,
            },
        )

    def do_POST(self) -> None:
        parts = self.path_only.strip("/").split("/")
        if parts[:1] == ["_emulator"]:
            body = json.loads(self.body() or b"{}")
            if parts[1:] == ["inbound"]:
                self.send_json(200, {"sid": self.server.inject_inbound(**body)})
            elif parts[1:] == ["errors"]:
                self.server.fail_next.extend([int(body["code"])] * int(body.get("count", 0 if "rate" in body else 1)))
                self.server.error_rate = float(body.get("rate", self.server.error_rate))
                self.server.error_code = int(body["code"])
                self.send_json(200, {"ok": True})
            elif parts[1:] == ["call"]:  # a customer calls one of our numbers: its VoiceUrl is rung
                to = str(body["to"])
                url = self.server.number_settings.get(to, {}).get("voice_url") or self.server.voice_urls.get(to)
                account = self.server.numbers.get(to)
                if not url or not account:
                    self.send_json(404, {"error": "no Voice URL for that number"})
                else:
                    sid = "CA" + secrets.token_hex(16)
                    self.server.ring(account, sid, str(body.get("from_phone") or "+5511987654321"), to, str(url))
                    self.send_json(200, {"sid": sid})
            elif parts[1:] == ["unsubscribed"]:
                self.server.unsubscribed.add(body["to"])
                self.send_json(200, {"ok": True})
            else:
                self.send_json(404, {"error": "unknown control"})
            return
        # /2010-04-01/Accounts/{sid}/Messages.json
        if len(parts) == 4 and parts[0] == "2010-04-01" and parts[1] == "Accounts" and parts[3] == "Messages.json":
            sid = parts[2]
            if self._account(sid):
                self._create(sid, self.form())
            return
        if len(parts) >= 4 and parts[:2] == ["2010-04-01", "Accounts"]:
            sid = parts[2]
            form = self.form()
            if not self._account(sid):
                return
            if parts[3:] == ["IncomingPhoneNumbers.json"]:
                self._buy(sid, form)
                return
            if len(parts) == 5 and parts[3] == "IncomingPhoneNumbers":
                self._update_number(sid, parts[4].removesuffix(".json"), form)
                return
            if parts[3:] == ["OutgoingCallerIds.json"]:  # a validation request (client.validation_requests)
                self._validate_caller_id(sid, form)
                return
            if parts[3:] == ["Calls.json"]:
                self._place_call(sid, form)
                return
        self._error(20404)

    def _buy(self, sid: str, form: dict[str, str]) -> None:
        number = form.get("PhoneNumber", "")
        on_sale = {n for numbers in AVAILABLE.values() for n, _city, _region in numbers}
        if not E164.match(number) or number not in on_sale or number in self.server.numbers:
            self._error(21422)
            return
        if number.startswith("+55") and self.server.require_br_bundle and not form.get("BundleSid"):
            self._error(21631)
            return
        for name in ("VoiceUrl", "StatusCallback", "SmsUrl"):
            if form.get(name) and not form[name].startswith(("http://", "https://")):
                self._error(21205)
                return
        with self.server.lock:
            self.server.numbers[number] = sid
            self.server.number_settings[number] = {
                "friendly_name": form.get("FriendlyName") or number,
                "voice_url": form.get("VoiceUrl"),
                "voice_method": form.get("VoiceMethod") or "POST",
                "status_callback": form.get("StatusCallback"),
                "status_callback_method": form.get("StatusCallbackMethod") or "POST",
                "sms_url": form.get("SmsUrl"),
                "bundle_sid": form.get("BundleSid"),
            }
        self.send_json(201, self.server.number_record(sid, number))

    def _update_number(self, sid: str, number_sid: str, form: dict[str, str]) -> None:
        record = self.server.number_by_sid(sid, number_sid)
        if record is None:
            self._error(20404)
            return
        for name in ("VoiceUrl", "StatusCallback", "SmsUrl"):
            if form.get(name) and not form[name].startswith(("http://", "https://")):
                self._error(21205)
                return
        fields = {
            "FriendlyName": "friendly_name",
            "VoiceUrl": "voice_url",
            "VoiceMethod": "voice_method",
            "StatusCallback": "status_callback",
            "StatusCallbackMethod": "status_callback_method",
            "SmsUrl": "sms_url",
        }
        with self.server.lock:
            settings = self.server.number_settings.setdefault(record["phone_number"], {})
            for form_name, key in fields.items():
                if form_name in form:
                    settings[key] = form[form_name]
        self.send_json(200, self.server.number_record(sid, record["phone_number"]))

    def _validate_caller_id(self, sid: str, form: dict[str, str]) -> None:
        number = form.get("PhoneNumber", "")
        if not E164.match(number):
            self._error(21211)
            return
        if number in self.server.caller_ids.get(sid, {}):
            self._error(21450)
            return
        call_sid = "CA" + secrets.token_hex(16)
        code = f"{random.randint(0, 999999):06d}"
        self.server.pending_caller_ids[(sid, number)] = form.get("FriendlyName") or number
        if self.server.auto_verify_caller_ids:  # the person answers and types the code at once
            self.server.caller_id_verify(sid, number)
        self.send_json(
            201,
            {
                "account_sid": sid,
                "phone_number": number,
                "friendly_name": form.get("FriendlyName") or number,
                "validation_code": code,
                "call_sid": call_sid,
            },
        )

    def _place_call(self, sid: str, form: dict[str, str]) -> None:
        """Calls.json: a call to one of the emulator's numbers rings its VoiceUrl as an incoming call."""
        to, from_ = form.get("To", ""), form.get("From", "")
        if not E164.match(to):
            self._error(21211)
            return
        call_sid = "CA" + secrets.token_hex(16)
        now = format_datetime(datetime.now(tz=UTC))
        record = {
            "sid": call_sid,
            "account_sid": sid,
            "to": to,
            "from": from_,
            "status": "queued",
            "direction": "outbound-api",
            "date_created": now,
            "date_updated": now,
            "uri": f"/2010-04-01/Accounts/{sid}/Calls/{call_sid}.json",
        }
        self.server.placed_calls[call_sid] = record
        target = self.server.number_settings.get(to, {}).get("voice_url") or self.server.voice_urls.get(to)
        if to in self.server.numbers and target:
            self.server.ring(self.server.numbers[to], call_sid, from_, to, str(target))
        self.send_json(201, record)

    def _create(self, account: str, form: dict[str, str]) -> None:
        with self.server.lock:
            code = self.server.fail_next.pop(0) if self.server.fail_next else 0
        if not code and self.server.error_rate and random.random() < self.server.error_rate:
            code = self.server.error_code
        to = form.get("To", "")
        if code:
            self._error(code)
            return
        if not E164.match(to):
            self._error(21211)
            return
        if to in self.server.unsubscribed:
            self._error(21610)
            return
        sid = "SM" + secrets.token_hex(16)
        now = format_datetime(datetime.now(tz=UTC))
        record = {
            "sid": sid,
            "account_sid": account,
            "from": form.get("From"),
            "to": to,
            "body": form.get("Body", ""),
            "status": "queued",
            "direction": "outbound-api",
            "num_segments": "1",
            "num_media": str(1 if form.get("MediaUrl") else 0),
            "price": None,
            "error_code": None,
            "error_message": None,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "messaging_service_sid": None,
            "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
        }
        self.server.sent[sid] = record
        callback = form.get("StatusCallback")
        if callback:
            self.server.schedule_statuses(account, sid, form.get("From", ""), to, callback)
        self.send_json(201, record)


class TwilioEmulator(EmulatorServer):
    def __init__(
        self,
        *,
        accounts: dict[str, str],
        inbound_urls: dict[str, str] | None = None,
        port: int = 0,
        delays: tuple[float, float] = (0.05, 0.1),
        numbers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(TwilioHandler, port)
        self.accounts = accounts  # sid -> auth token
        self.inbound_urls = inbound_urls or {}  # our number -> the app's inbound webhook
        # number -> the account that owns it (by default the first account owns every inbound number)
        first = next(iter(accounts), "")
        self.numbers: dict[str, str] = numbers if numbers is not None else dict.fromkeys(self.inbound_urls, first)
        self.delays = delays
        self.sent: dict[str, dict[str, Any]] = {}
        self.media: dict[str, tuple[bytes, str]] = {}
        self.fail_next: list[int] = []
        self.error_rate, self.error_code = 0.0, 20429  # errors "at a set rate", on top of fail_next
        self.unsubscribed: set[str] = set()
        self.undeliverable: dict[str, int] = {}
        self.number_settings: dict[str, dict[str, Any]] = {}  # number -> voice_url, status_callback, ...
        self.voice_urls: dict[str, str] = {}  # number -> a VoiceUrl set up front (CLI --voice)
        self.caller_ids: dict[str, dict[str, dict[str, Any]]] = {}  # account -> number -> OutgoingCallerId
        self.pending_caller_ids: dict[tuple[str, str], str] = {}
        self.auto_verify_caller_ids = True
        self.require_br_bundle = False  # True: buying a +55 number without a BundleSid fails (21631)
        self.placed_calls: dict[str, dict[str, Any]] = {}
        self.callbacks = CallbackQueue()

    def number_record(self, account: str, number: str) -> dict[str, Any]:
        """An IncomingPhoneNumber resource as Twilio returns it."""
        settings = self.number_settings.get(number, {})
        sid = "PN" + hashlib.md5(number.encode()).hexdigest()  # noqa: S324 (an id, not a hash)
        now = format_datetime(datetime.now(tz=UTC))
        uri = f"/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{sid}.json"
        return {
            "sid": sid,
            "account_sid": account,
            "address_requirements": "local" if number.startswith("+55") else "none",
            "address_sid": None,
            "api_version": "2010-04-01",
            "beta": False,
            "bundle_sid": settings.get("bundle_sid"),
            "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "date_created": now,
            "date_updated": now,
            "emergency_status": "Inactive",
            "friendly_name": settings.get("friendly_name") or number,
            "identity_sid": None,
            "origin": "twilio",
            "phone_number": number,
            "sms_application_sid": None,
            "sms_method": "POST",
            "sms_url": settings.get("sms_url") or self.inbound_urls.get(number, ""),
            "status": "in-use",
            "status_callback": settings.get("status_callback") or "",
            "status_callback_method": settings.get("status_callback_method") or "POST",
            "trunk_sid": None,
            "uri": uri,
            "voice_application_sid": None,
            "voice_caller_id_lookup": False,
            "voice_fallback_method": "POST",
            "voice_fallback_url": None,
            "voice_method": settings.get("voice_method") or "POST",
            "voice_receive_mode": "voice",
            "voice_url": settings.get("voice_url") or self.voice_urls.get(number, ""),
            "subresource_uris": {"assigned_add_ons": f"{uri[:-5]}/AssignedAddOns.json"},
        }

    def number_by_sid(self, account: str, number_sid: str) -> dict[str, Any] | None:
        for number, owner in list(self.numbers.items()):
            if owner == account:
                record = self.number_record(account, number)
                if record["sid"] == number_sid:
                    return record
        return None

    def caller_id_verify(self, account: str, number: str) -> None:
        """The person at `number` answered Twilio's verification call and typed the code."""
        name = self.pending_caller_ids.pop((account, number), number)
        sid = "PN" + hashlib.md5(f"cid{number}".encode()).hexdigest()  # noqa: S324 (an id, not a hash)
        now = format_datetime(datetime.now(tz=UTC))
        self.caller_ids.setdefault(account, {})[number] = {
            "sid": sid,
            "account_sid": account,
            "friendly_name": name,
            "phone_number": number,
            "date_created": now,
            "date_updated": now,
            "uri": f"/2010-04-01/Accounts/{account}/OutgoingCallerIds/{sid}.json",
        }

    def ring(self, account: str, call_sid: str, from_: str, to: str, url: str, delay: float = 0.05) -> None:
        """An incoming call on our number: POST the signed voice webhook, as Twilio does."""
        params = {
            "CallSid": call_sid,
            "AccountSid": account,
            "From": from_,
            "To": to,
            "Caller": from_,
            "Called": to,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        self._post_signed(account, url, params, delay)

    def _post_signed(self, account: str, url: str, params: dict[str, str], delay: float) -> None:
        signature = RequestValidator(self.accounts[account]).compute_signature(url, params)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
        self.callbacks.schedule(delay, url, urlencode(params).encode(), headers)

    def schedule_statuses(self, account: str, sid: str, from_: str, to: str, url: str) -> None:
        base = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": account,
            "From": from_,
            "To": to,
            "ApiVersion": "2010-04-01",
        }
        if to in self.undeliverable:
            steps = [("sent", {}), ("undelivered", {"ErrorCode": str(self.undeliverable[to])})]
        else:
            steps = [("sent", {}), ("delivered", {"RawDlrDoneDate": datetime.now(tz=UTC).strftime("%y%m%d%H%M")})]
        for (status, extra), delay in zip(steps, self.delays, strict=False):
            self._post_signed(account, url, {**base, "MessageStatus": status, "SmsStatus": status, **extra}, delay)

    def inject_inbound(
        self, *, to: str, from_phone: str, body: str = "", media: str = "", mime: str = "image/jpeg", delay: float = 0.0
    ) -> str:
        account = self.numbers.get(to) or next(sid for sid in self.accounts)
        url = self.inbound_urls[to]
        sid = "SM" + secrets.token_hex(16)
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": account,
            "From": from_phone,
            "To": to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }
        if media:
            media_id = "ME" + secrets.token_hex(16)
            self.media[media_id] = (base64.b64decode(media), mime)
            params.update(
                {"NumMedia": "1", "MediaUrl0": f"{self.base_url}/media/{media_id}", "MediaContentType0": mime}
            )
        self._post_signed(account, url, params, delay)
        return sid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8711)
    parser.add_argument("--account", action="append", required=True, help="SID:AUTH_TOKEN")
    parser.add_argument("--number", action="append", default=[], help="+E164=INBOUND_WEBHOOK_URL")
    parser.add_argument("--delays", default="0.5,1.5")
    args = parser.parse_args()
    accounts = dict(a.split(":", 1) for a in args.account)
    numbers = dict(n.split("=", 1) for n in args.number)
    delays = tuple(float(x) for x in args.delays.split(","))
    emulator = TwilioEmulator(accounts=accounts, inbound_urls=numbers, port=args.port, delays=delays)  # type: ignore[arg-type]
    print(f"Twilio emulator on {emulator.base_url}")  # noqa: T201
    emulator.serve_forever()


if __name__ == "__main__":
    main()
