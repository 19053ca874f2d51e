"""A Twilio Messages emulator: create messages (201), documented errors (21211, 21610, 20003, 20429 with
Retry-After), signed status callbacks (X-Twilio-Signature) and inbound SMS/MMS sent to the app.

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
        self._error(20404)

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
                "incoming_phone_numbers": [
                    {
                        "sid": "PN" + hashlib.md5(n.encode()).hexdigest(),  # noqa: S324 (an id, not a hash)
                        "account_sid": sid,
                        "phone_number": n,
                        "friendly_name": n,
                        "capabilities": {"sms": True, "mms": True, "voice": True},
                        "uri": f"{base[:-5]}/{n}.json",
                    }
                    for n in owned
                ],
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
        self._error(20404)

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
        self.callbacks = CallbackQueue()

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
