"""The demo's provider emulators (started by `make run` through Procfile.dev): a Graph API on :8710 and
Twilio on :8711, calling the local app's webhooks back, with the demo channels' ids and secrets, and an
OpenAI-compatible model on :8713 for the demo's assistant."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from config.env import env_str, load_env_file
from emulators.meta import App, MetaEmulator, PhoneNumber
from emulators.meta_signup import SignupNumber
from emulators.openai import OpenAIEmulator
from emulators.twilio import TwilioEmulator

DEMO_PNID, DEMO_WABA, DEMO_TOKEN = "100000000000101", "200000000000101", "demo-access-token"
DEMO_SID, DEMO_AUTH = "ACd0d0d0d0d0d0d0d0d0d0d0d0d0d0d001", "demo-auth-token"
DEMO_WA_NUMBER, DEMO_SMS_NUMBER = "+5511940000001", "+5511940000002"
# Voice: the demo's number for AI calls, its webhook route (fixed, so this emulator knows the Voice URL)
# and the Retell key (the Retell emulator accepts any key).
DEMO_VOICE_NUMBER, DEMO_VOICE_ROUTE, DEMO_RETELL_KEY = "+5511940000003", "demo-voice", "demo-retell-key"
# Numbers a demo business can pick in the emulated Embedded Signup window (one still on the Business app).
DEMO_SIGNUP_NUMBERS = [
    SignupNumber("100000000000201", "200000000000201", "+55 11 94000-0201", "Padaria Demo"),
    SignupNumber("100000000000202", "200000000000202", "+55 11 94000-0202", "Loja Demo", business_app=True),
]
# Numbers a demo business can pick in the emulated Embedded Signup window (one still on the Business app).
DEMO_SIGNUP_NUMBERS = [
    SignupNumber("100000000000201", "200000000000201", "+55 11 94000-0201", "Padaria Demo"),
    SignupNumber("100000000000202", "200000000000202", "+55 11 94000-0202", "Loja Demo", business_app=True),
]
DEMO_TEMPLATES = [
    {
        "id": "1001",
        "name": "order_update",
        "language": "pt_BR",
        "category": "UTILITY",
        "status": "APPROVED",
        "components": [{"type": "BODY", "text": "Olá {{1}}, seu pedido {{2}} saiu para entrega."}],
        "parameter_format": "POSITIONAL",
    },
    {
        "id": "1002",
        "name": "welcome_back",
        "language": "pt_BR",
        "category": "MARKETING",
        "status": "APPROVED",
        "components": [{"type": "BODY", "text": "Oi {{1}}! Temos novidades para você."}],
        "parameter_format": "POSITIONAL",
    },
]


def emulators_build() -> tuple[MetaEmulator, TwilioEmulator]:
    """The demo's Graph and Twilio emulators on their fixed ports, knowing the demo numbers."""
    load_env_file(Path(__file__).resolve().parent.parent / "var" / "local.env")
    app = env_str("PUBLIC_WEBHOOK_BASE_URL", "http://localhost:8000")
    app_secret = env_str("META_APP_SECRET")
    if not app_secret:
        raise SystemExit("META_APP_SECRET is not set: run `make run` (it generates var/secrets.env) or set it")
    meta = MetaEmulator(
        app_secret=app_secret,
        webhook_url=f"{app}/webhooks/whatsapp/",
        port=8710,
        tokens={DEMO_TOKEN},
        delays=(0.6, 1.5, 3.0),
        numbers={DEMO_PNID: PhoneNumber(waba_id=DEMO_WABA, display_phone_number=DEMO_WA_NUMBER, token=DEMO_TOKEN)},
        # the platform's Meta app (var/local.env): Embedded Signup's codes are exchanged with its secret
        apps={env_str("META_APP_ID"): App(secret=app_secret, webhook_url=f"{app}/webhooks/whatsapp/")},
    )
    meta.signup.catalog = list(DEMO_SIGNUP_NUMBERS)
    meta.signup.config_id = env_str("META_ES_CONFIG_ID")
    meta.templates[DEMO_WABA] = [dict(t) for t in DEMO_TEMPLATES]
    twilio = TwilioEmulator(
        accounts={DEMO_SID: DEMO_AUTH},
        port=8711,
        delays=(0.6, 1.5),
        inbound_urls={DEMO_SMS_NUMBER: f"{app}/webhooks/twilio/inbound/"},
        numbers={DEMO_SMS_NUMBER: DEMO_SID, DEMO_VOICE_NUMBER: DEMO_SID},
    )
    twilio.number_settings[DEMO_VOICE_NUMBER] = {
        "friendly_name": "Voz Demo",
        "voice_url": f"{app}/webhooks/twilio/voice/{DEMO_VOICE_ROUTE}/",
        "status_callback": f"{app}/webhooks/twilio/voice/{DEMO_VOICE_ROUTE}/status/",
    }
    return meta, twilio


def main() -> None:
    meta, twilio = emulators_build()
    model = OpenAIEmulator(port=8713, default_dimensions=384)
    meta.start()
    twilio.start()
    model.start()
    print(  # noqa: T201
        f"emulators: Meta Graph {meta.base_url}, Twilio {twilio.base_url}, OpenAI-compatible {model.api_base}",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()


if __name__ == "__main__":
    main()
