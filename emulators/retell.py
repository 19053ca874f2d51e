"""A Retell AI emulator: Retell LLMs and agents (create, update, get, delete, publish, versions), phone
numbers (import, get; create-phone-call can refuse a number not imported), phone calls (create-phone-call,
register-phone-call, get-call), JSON errors with Retell's status codes, error injection, and for each
created call the signed webhooks Retell sends to the agent's webhook_url: call_started, call_ended
(transcript, duration, disconnection reason, recording) and call_analyzed (call_analysis). A call that
never connects (dial_busy, dial_no_answer, ...) ends `not_connected` with call_ended only, as Retell's do;
POST /_emulator/outcomes scripts how the next calls to a number end.

Webhooks are signed as Retell signs them: `x-retell-signature: v=<ms>,d=<hex HMAC-SHA256(api key, body + v)>`,
with the API key that created the call.

    python -m emulators.retell --port 8712 [--key KEY ...]   # no --key: any bearer key is accepted
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import random
import re
import secrets
import time
from typing import Any
from urllib.parse import unquote

from emulators.base import CallbackQueue, EmulatorHandler, EmulatorServer

E164 = re.compile(r"^\+[1-9]\d{7,14}$")
MESSAGES = {
    400: "Bad Request",
    401: "Unauthorized: invalid API key",
    404: "Not Found",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
}
DEMO_TRANSCRIPT = [
    ("agent", "Olá! Aqui é a assistente virtual. Posso falar um minutinho com você?"),
    ("user", "Pode sim, pode falar."),
    ("agent", "Vi que você se interessou pelo nosso plano. Quer agendar uma demonstração?"),
    ("user", "Quero, na quinta de manhã."),
    ("agent", "Perfeito, agendado para quinta às dez. Obrigada e até logo!"),
]


# Retell's disconnection reasons of a call that never connected: its status is `not_connected`, it has no
# transcript and no recording, and no call_started is sent (docs.retellai.com, "Debug call disconnection").
NOT_CONNECTED_REASONS = frozenset(
    {
        "dial_busy",
        "dial_failed",
        "dial_no_answer",
        "invalid_destination",
        "telephony_provider_permission_denied",
        "telephony_provider_unavailable",
        "sip_routing_error",
        "marked_as_spam",
        "user_declined",
    }
)
VOICEMAIL_GREETING = "Você ligou para a caixa postal. Deixe o seu recado após o sinal."


def sign(body: bytes, api_key: str, now_ms: int | None = None) -> str:
    timestamp = int(time.time() * 1000) if now_ms is None else now_ms
    digest = hmac.new(api_key.encode(), body + str(timestamp).encode(), hashlib.sha256).hexdigest()
    return f"v={timestamp},d={digest}"


class RetellHandler(EmulatorHandler):
    server: RetellEmulator

    def _error(self, status: int, message: str = "") -> None:
        self.send_json(status, {"status": status, "error_message": message or MESSAGES.get(status, "Error")})

    def _key(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else ""
        if key and (self.server.api_keys is None or key in self.server.api_keys):
            return key
        self._error(401)
        return None

    def _injected(self) -> bool:
        route = self.path_only.strip("/").split("/")
        name = route[1] if route[:1] == ["v2"] and len(route) > 1 else route[0]
        with self.server.lock:
            delay = self.server.delay_next.pop(0) if self.server.delay_next else 0.0
            by_path = self.server.fail_paths.get(name) or []
            status = by_path.pop(0) if by_path else 0
            if not status:
                status = self.server.fail_next.pop(0) if self.server.fail_next else 0
        if delay:
            time.sleep(delay)  # a slow Retell: the answer comes (the work is done) after the client may have left
        if not status and self.server.error_rate and random.random() < self.server.error_rate:
            status = self.server.error_status
        if status:
            self._error(status)
        return bool(status)

    def _json(self, raw: bytes) -> dict[str, Any] | None:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._error(400, "Invalid JSON body")
            return None
        if not isinstance(body, dict):
            self._error(400, "Invalid JSON body")
            return None
        return body

    def do_GET(self) -> None:
        parts = self.path_only.strip("/").split("/")
        self.body()
        if parts == ["_emulator", "state"]:
            self.send_json(
                200,
                {
                    "llms": len(self.server.llms),
                    "agents": len(self.server.agents),
                    "calls": len(self.server.calls),
                    "callbacks_delivered": self.server.callbacks.delivered,
                    "callback_failures": self.server.callbacks.failures[-20:],
                },
            )
            return
        if self._key() is None or self._injected():
            return
        key = self.headers.get("Authorization", "")[7:]
        store = {
            "get-agent": self.server.agents,
            "get-retell-llm": self.server.llms,
            "get-phone-number": self.server.phone_numbers,
        }
        if len(parts) == 2 and parts[0] in store:
            found = store[parts[0]].get(unquote(parts[1]))
            if found and found.get("_key") == key:
                self.send_json(200, _public(found))
            else:
                self._error(404)
        elif len(parts) == 2 and parts[0] == "get-agent-versions":
            versions = self.server.agent_versions.get(parts[1])
            self.send_json(200, versions) if versions else self._error(404)
        elif parts == ["list-retell-llms"]:
            self.send_json(200, [_public(llm) for llm in self.server.llms.values() if llm["_key"] == key])
        elif parts == ["list-agents"]:
            self.send_json(200, [_public(a) for a in self.server.agents.values() if a["_key"] == key])
        elif len(parts) == 3 and parts[:2] == ["v2", "get-call"]:
            call = self.server.calls.get(parts[2])
            self.send_json(200, call) if call else self._error(404)
        else:
            self._error(404)

    def do_PATCH(self) -> None:
        parts = self.path_only.strip("/").split("/")
        raw = self.body()  # read it all first, so an error answer leaves the keep-alive connection usable
        key = self._key()
        if key is None or self._injected():
            return
        body = self._json(raw)
        if body is None:
            return
        store = {"update-agent": self.server.agents, "update-retell-llm": self.server.llms}
        if len(parts) != 2 or parts[0] not in store:
            self._error(404)
            return
        with self.server.lock:
            found = store[parts[0]].get(parts[1])
            if found is None or found["_key"] != key:
                self._error(404)
                return
            found.update({k: v for k, v in body.items() if not k.startswith("_")})
            found["last_modification_timestamp"] = int(time.time() * 1000)
        self.send_json(200, _public(found))

    def do_DELETE(self) -> None:
        parts = self.path_only.strip("/").split("/")
        self.body()
        key = self._key()
        if key is None or self._injected():
            return
        store = {"delete-agent": self.server.agents, "delete-retell-llm": self.server.llms}
        if len(parts) != 2 or parts[0] not in store:
            self._error(404)
            return
        with self.server.lock:
            found = store[parts[0]].get(parts[1])
            if found is None or found["_key"] != key:
                self._error(404)
                return
            del store[parts[0]][parts[1]]
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        parts = self.path_only.strip("/").split("/")
        raw = self.body()  # read it all first, so an error answer leaves the keep-alive connection usable
        if parts[:1] == ["_emulator"]:
            self._control(parts[1:], raw)
            return
        key = self._key()
        if key is None or self._injected():
            return
        body = self._json(raw)
        if body is None:
            return
        route = "/".join(parts)
        if route == "create-retell-llm":
            self._create_llm(key, body)
        elif route == "create-agent":
            self._create_agent(key, body)
        elif route == "v2/create-phone-call":
            self._create_call(key, body, registered=False)
        elif route == "v2/register-phone-call":
            self._create_call(key, body, registered=True)
        elif len(parts) == 2 and parts[0] == "publish-agent":
            self._publish(key, parts[1])
        elif route == "import-phone-number":
            self._import_number(key, body)
        else:
            self._error(404)

    def _publish(self, key: str, agent_id: str) -> None:
        with self.server.lock:
            agent = self.server.agents.get(agent_id)
            if agent is None or agent["_key"] != key:
                self._error(404, "agent not found")
                return
            published = {**_public(agent), "is_published": True}
            self.server.agent_versions.setdefault(agent_id, []).append(published)
            agent["published_version"] = agent["version"]
            agent["version"] = int(agent["version"]) + 1  # the next draft
            agent["is_published"] = False
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _import_number(self, key: str, body: dict[str, Any]) -> None:
        number = str(body.get("phone_number") or "")
        if not E164.match(number) or not body.get("termination_uri"):
            self._error(400, "phone_number (E.164) and termination_uri are required")
            return
        for field_name in ("inbound_agent_id", "outbound_agent_id"):
            wanted = body.get(field_name)
            if wanted and (wanted not in self.server.agents or self.server.agents[wanted]["_key"] != key):
                self._error(404, f"{field_name} not found")
                return
        record = {
            "phone_number": number,
            "phone_number_type": "custom",
            "phone_number_pretty": number,
            "termination_uri": body["termination_uri"],
            "inbound_agent_id": body.get("inbound_agent_id"),
            "outbound_agent_id": body.get("outbound_agent_id"),
            "inbound_agent_version": None,
            "outbound_agent_version": None,
            "nickname": body.get("nickname"),
            "last_modification_timestamp": int(time.time() * 1000),
            "_key": key,
        }
        with self.server.lock:
            self.server.phone_numbers[number] = record
            if body.get("outbound_agent_id"):
                self.server.number_agents[number] = str(body["outbound_agent_id"])
        self.send_json(201, _public(record))

    def _control(self, parts: list[str], raw: bytes) -> None:
        body = json.loads(raw or b"{}")
        if parts == ["errors"] and body.get("path"):  # fail only this endpoint, e.g. "create-agent"
            with self.server.lock:
                self.server.fail_paths.setdefault(str(body["path"]), []).extend(
                    [int(body["status"])] * int(body.get("count", 1))
                )
            self.send_json(200, {"ok": True})
        elif parts == ["delay"]:  # answer the next `count` requests after `seconds`
            with self.server.lock:
                self.server.delay_next.extend([float(body["seconds"])] * int(body.get("count", 1)))
            self.send_json(200, {"ok": True})
        elif parts == ["reset"]:
            with self.server.lock:
                self.server.fail_next.clear()
                self.server.fail_paths.clear()
                self.server.delay_next.clear()
                self.server.outcomes_by_number.clear()
            self.send_json(200, {"ok": True})
        elif parts == ["errors"]:
            status = int(body["status"])
            self.server.fail_next.extend([status] * int(body.get("count", 0 if "rate" in body else 1)))
            self.server.error_rate = float(body.get("rate", self.server.error_rate))
            self.server.error_status = status
            self.send_json(200, {"ok": True})
        elif parts == ["outcomes"]:
            # How the next calls to this number end, in order, e.g. [{"disconnection_reason": "dial_busy"}];
            # a number with none left ends as `outcome` says (answered, by default).
            with self.server.lock:
                self.server.outcomes_by_number.setdefault(str(body["to_number"]), []).extend(
                    dict(item) for item in body.get("outcomes") or []
                )
            self.send_json(200, {"ok": True})
        elif len(parts) == 3 and parts[0] == "calls" and parts[2] == "connect":
            # A registered call was dialled over SIP (by Twilio): the conversation happens now.
            ok = self.server.run_call(parts[1], **body)
            self.send_json(200 if ok else 404, {"ok": ok})
        else:
            self.send_json(404, {"error": "unknown control"})

    def _create_llm(self, key: str, body: dict[str, Any]) -> None:
        llm_id = "llm_" + secrets.token_hex(12)
        llm = {
            "llm_id": llm_id,
            "version": 0,
            "is_published": False,
            "model": body.get("model") or "gpt-4o",
            "general_prompt": body.get("general_prompt"),
            "begin_message": body.get("begin_message"),
            "start_speaker": body.get("start_speaker") or "agent",
            "general_tools": body.get("general_tools") or [],
            "last_modification_timestamp": int(time.time() * 1000),
            "_key": key,
        }
        with self.server.lock:
            self.server.llms[llm_id] = llm
        self.send_json(201, _public(llm))

    def _create_agent(self, key: str, body: dict[str, Any]) -> None:
        engine = body.get("response_engine") or {}
        if not body.get("voice_id") or not isinstance(engine, dict) or not engine.get("type"):
            self._error(400, "voice_id and response_engine are required")
            return
        if engine.get("type") == "retell-llm" and engine.get("llm_id") not in self.server.llms:
            self._error(404, "llm_id not found")
            return
        agent_id = "agent_" + secrets.token_hex(12)
        agent = {
            "agent_id": agent_id,
            "version": 0,
            "is_published": False,
            "response_engine": engine,
            "voice_id": body["voice_id"],
            "agent_name": body.get("agent_name"),
            "language": body.get("language") or "en-US",
            "webhook_url": body.get("webhook_url"),
            "last_modification_timestamp": int(time.time() * 1000),
            "_key": key,
        }
        with self.server.lock:
            self.server.agents[agent_id] = agent
        self.send_json(201, _public(agent))

    def _create_call(self, key: str, body: dict[str, Any], registered: bool) -> None:
        agent_id = body.get("agent_id") if registered else body.get("override_agent_id")
        if registered and not agent_id:
            self._error(400, "agent_id is required")
            return
        if not registered:
            for name in ("from_number", "to_number"):
                if not E164.match(str(body.get(name) or "")):
                    self._error(400, f"{name} must be a valid E.164 number")
                    return
            known = self.server.phone_numbers.get(str(body["from_number"]))
            if self.server.strict_numbers and (known is None or known["_key"] != key):
                self._error(404, "from_number is not a number of this account: import it first")
                return
            if not agent_id:  # Retell would use the agent bound to the number
                agent_id = self.server.number_agents.get(str(body["from_number"]))
        agent = self.server.agents.get(str(agent_id or ""))
        if agent is None or agent["_key"] != key:
            self._error(404, "agent not found")
            return
        call_id = "call_" + secrets.token_hex(12)
        call = {
            "call_id": call_id,
            "call_type": "phone_call",
            "agent_id": agent["agent_id"],
            "agent_version": agent["version"],
            "call_status": "registered",
            "direction": body.get("direction") or ("outbound" if not registered else "inbound"),
            "from_number": body.get("from_number"),
            "to_number": body.get("to_number"),
            "metadata": body.get("metadata") or {},
            "retell_llm_dynamic_variables": body.get("retell_llm_dynamic_variables") or {},
        }
        if registered and body.get("agent_version") is not None:
            call["agent_version"] = body["agent_version"]
        with self.server.lock:
            self.server.calls[call_id] = call
            self.server.call_keys[call_id] = key
        self.send_json(201, call)
        if not registered:
            self.server.run_call(call_id)


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


class RetellEmulator(EmulatorServer):
    def __init__(
        self,
        *,
        api_keys: set[str] | None = None,
        port: int = 0,
        delays: tuple[float, float, float] = (0.05, 0.15, 0.3),
    ) -> None:
        super().__init__(RetellHandler, port)
        self.api_keys = api_keys  # None: any bearer key is accepted (the demo)
        self.delays = delays  # call_started, call_ended, call_analyzed after the call is created
        self.llms: dict[str, dict[str, Any]] = {}
        self.agents: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.call_keys: dict[str, str] = {}
        self.number_agents: dict[str, str] = {}  # imported numbers bound to an agent
        self.phone_numbers: dict[str, dict[str, Any]] = {}  # imported numbers (import-phone-number)
        self.agent_versions: dict[str, list[dict[str, Any]]] = {}  # published versions
        # True: create-phone-call refuses a from_number not imported into this account, as Retell does
        self.strict_numbers = False
        self.fail_next: list[int] = []
        self.fail_paths: dict[str, list[int]] = {}  # endpoint name -> statuses its next requests answer
        self.delay_next: list[float] = []  # seconds before answering each of the next requests
        self.error_rate, self.error_status = 0.0, 429
        self.outcome: dict[str, Any] = {"disconnection_reason": "user_hangup", "duration_ms": 90000}
        self.outcomes_by_number: dict[str, list[dict[str, Any]]] = {}  # scripted endings, per to_number
        self.send_webhooks = True  # False: calls are created but nobody is called back (tests without a server)
        self.callbacks = CallbackQueue()

    def run_call(self, call_id: str, **outcome: Any) -> bool:
        """The conversation of a call: schedule its signed webhooks to the agent's webhook_url."""
        with self.lock:
            call = self.calls.get(call_id)
            agent = self.agents.get(call["agent_id"]) if call else None
            key = self.call_keys.get(call_id, "")
        if call is None or agent is None:
            return False
        url = agent.get("webhook_url")
        with self.lock:
            scripted = self.outcomes_by_number.get(str(call.get("to_number") or ""))
            settings = {**self.outcome, **(scripted.pop(0) if scripted else {}), **outcome}
        reason = str(settings["disconnection_reason"])
        start = int(time.time() * 1000)
        if reason in NOT_CONNECTED_REASONS:  # never connected: only call_ended, with nothing said
            ended = {
                **call,
                "call_status": "not_connected",
                "start_timestamp": start,
                "end_timestamp": start,
                "duration_ms": 0,
                "disconnection_reason": reason,
                "transcript": "",
                "transcript_object": [],
                "call_cost": {"combined_cost": 0, "total_duration_seconds": 0},
            }
            with self.lock:
                self.calls[call_id] = ended
            events: list[tuple[str, dict[str, Any]]] = [("call_ended", ended)]
            delays: tuple[float, ...] = self.delays[1:2]
        else:
            events, delays = self._conversation(call_id, call, reason, start, settings), self.delays
        if not url or not self.send_webhooks:
            return True
        for (event, payload), delay in zip(events, delays, strict=True):
            body = json.dumps({"event": event, "call": payload}, separators=(",", ":")).encode()
            headers = {"Content-Type": "application/json", "x-retell-signature": sign(body, key)}
            self.callbacks.schedule(delay, url, body, headers)
        return True

    def _conversation(
        self, call_id: str, call: dict[str, Any], reason: str, start: int, settings: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any]]]:
        """A call that connected: started, ended (transcript, recording, cost), analysed; a voicemail is a
        short call with the greeting as its transcript and `in_voicemail` in the analysis."""
        voicemail = reason == "voicemail_reached"
        duration = int(settings.get("duration_ms") or 0) if not voicemail else 12000
        turns = [("user", VOICEMAIL_GREETING)] if voicemail else DEMO_TRANSCRIPT
        transcript_object = [
            {"role": role, "content": text, "words": _words(text, i * 6.0)} for i, (role, text) in enumerate(turns)
        ]
        started = {**call, "call_status": "ongoing", "start_timestamp": start}
        ended = {
            **started,
            "call_status": "ended",
            "end_timestamp": start + duration,
            "duration_ms": duration,
            "disconnection_reason": reason,
            "transcript": "\n".join(f"{'Agent' if r == 'agent' else 'User'}: {t}" for r, t in turns),
            "transcript_object": transcript_object,
            "recording_url": f"{self.base_url}/recordings/{call_id}.wav",
            "call_cost": {
                "combined_cost": round(duration / 1000 * 0.12, 3),
                "total_duration_seconds": duration // 1000,
            },
        }
        analysis: dict[str, Any] = {
            "call_summary": "Caixa postal: nenhuma conversa."
            if voicemail
            else "O cliente aceitou agendar uma demonstração na quinta de manhã.",
            "user_sentiment": "Neutral" if voicemail else "Positive",
            "call_successful": not voicemail,
            "in_voicemail": voicemail,
            "custom_analysis_data": {},
        }
        analyzed = {**ended, "call_analysis": analysis}
        with self.lock:
            self.calls[call_id] = analyzed
        return [("call_started", started), ("call_ended", ended), ("call_analyzed", analyzed)]


def _words(text: str, offset: float) -> list[dict[str, Any]]:
    return [{"word": w, "start": offset + i * 0.4, "end": offset + i * 0.4 + 0.35} for i, w in enumerate(text.split())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8712)
    parser.add_argument("--key", action="append", default=None, help="an accepted API key (repeatable)")
    parser.add_argument("--delays", default="1.0,6.0,8.0")
    args = parser.parse_args()
    delays = tuple(float(x) for x in args.delays.split(","))
    emulator = RetellEmulator(
        api_keys=set(args.key) if args.key else None,
        port=args.port,
        delays=delays,  # type: ignore[arg-type]
    )
    print(f"Retell emulator on {emulator.base_url}", flush=True)  # noqa: T201
    emulator.serve_forever()


if __name__ == "__main__":
    main()
