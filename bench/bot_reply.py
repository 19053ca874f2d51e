"""Benchmark: an inbound WhatsApp message to the assistant's reply handed to the dispatcher, with the model
emulator answering instantly. Each message goes the production path, each step as its worker runs it: a
signed Meta webhook POSTed to the real intake view (signature checked, raw event stored once), the ingest
drain (contact, conversation, message, the `message.created` subscribers: the bot's debounce row), the
`ai.bot_reply` service once due (prompt, the model over real HTTP through our client, the row lock, the
one send path), ending with the reply queued for the dispatcher. Our own time is the total less the time
inside the model call. Then the handoff check: messages in flight when a person takes over (before the
reply task runs, and while the model is still answering) must get no reply at all.

Keys: p50/p95/p99_ms (our own time per message), total_p95_ms, model_p50_ms, per_s (messages answered per
second, one after another), replies_after_handoff (target 0), lost (inbound messages left unanswered),
duplicates (more than one reply to one message); target {p95_ms < 300, replies_after_handoff == 0}.

    python bench/bot_reply.py                # 300 messages, 40 takeovers
    python bench/bot_reply.py --smoke        # 20 messages, 6 takeovers
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import threading
import time
import uuid
from typing import Any

from _support import bench_channel, bench_env, bench_tenant, database_ensure, free_port

TARGET_P95_MS = 300.0
PNID, WABA = "100000000009101", "200000000009101"


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _body(phone: str, text: str) -> bytes:
    wamid = f"wamid.bench.{uuid.uuid4().hex}"
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "5511999991000", "phone_number_id": PNID},
        "contacts": [{"profile": {"name": "Cliente"}, "wa_id": phone.lstrip("+")}],
        "messages": [
            {
                "from": phone.lstrip("+"),
                "id": wamid,
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    envelope = {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA, "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--takeovers", type=int, default=40)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.messages, args.takeovers = 20, 6
    env = bench_env("botreply", free_port())
    env["OUTBOUND_URL_ALLOW_LOOPBACK"] = "true"
    database_ensure(env)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import asyncio

    import httpx
    from django.db import connection

    import ai.client
    from ai.inbox_bot import bot_reply
    from ai.models import AISettings, Assistant, BotMode, ConversationBot
    from ai.services import assistant_save, bot_take_over
    from config.asgi import application
    from core.redis import redis_client
    from emulators.openai import OpenAIEmulator
    from inbox.ingest import ingest_drain
    from inbox.models import Conversation, Direction, Message

    emulator = OpenAIEmulator(keys={"sk-bench"})
    emulator.start()
    tenant = bench_tenant("benchbot", "Bench bot")
    connection.set_tenant(tenant)  # type: ignore[attr-defined]
    channel = bench_channel(
        kind="whatsapp_cloud",
        name="Bench bot",
        phone_number="+5511999991000",
        credentials={"access_token": "x"},
        waba_id=WABA,
        phone_number_id=PNID,
        rate_limit_per_s=1000,
    )
    AISettings.objects.all().delete()
    AISettings.objects.create(api_key="sk-bench", base_url=emulator.api_base)
    Assistant.objects.all().delete()
    assistant_save(channels=[channel], name="Bia bench", reply_delay_s=0, debounce_s=0, handoff_after_turns=0)

    # Time inside the model call, measured around our own client (the real one, over real HTTP).
    model_s: list[float] = []
    original_chat = ai.client.chat

    def timed_chat(**kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original_chat(**kwargs)
        finally:
            model_s.append(time.perf_counter() - started)

    ai.client.chat = timed_chat  # type: ignore[assignment]
    # The production intake: the ASGI app's fast path for Meta's POSTs (verify, store once, 200).
    loop = asyncio.new_event_loop()
    intake = httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://localhost")
    secret = env["META_APP_SECRET"].encode()
    errors = 0
    stages: dict[str, list[float]] = {"intake": [], "drain": []}

    def inbound(phone: str, text: str) -> Conversation | None:
        """POST the signed webhook to the intake, then drain as the ingest worker does."""
        nonlocal errors
        body = _body(phone, text)
        signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        answer = loop.run_until_complete(
            intake.post(
                "/webhooks/whatsapp/",
                content=body,
                headers={"content-type": "application/json", "x-hub-signature-256": signature},
            )
        )
        if answer.status_code != 200:
            errors += 1
            return None
        stages["intake"].append(time.perf_counter())
        ingest_drain()
        stages["drain"].append(time.perf_counter())
        connection.set_tenant(tenant)  # type: ignore[attr-defined]
        return Conversation.objects.filter(contact__phone=phone, channel=channel).first()

    def bot_messages(conversation: Conversation) -> list[Message]:
        return list(conversation.messages.filter(direction=Direction.OUTBOUND, payload__sender="bot"))

    # Warm up (connections, the template cache, the OpenAI client's first request).
    for _ in range(3):
        warm = inbound(f"+55119{uuid.uuid4().int % 10**8:08d}", "oi")
        if warm is not None:
            bot_reply(conversation_id=warm.pk)
    model_s.clear()

    totals: list[float] = []
    split: dict[str, list[float]] = {"intake": [], "drain": [], "reply": []}
    own: list[float] = []
    lost = duplicates = 0
    wall_start = time.perf_counter()
    for i in range(args.messages):
        phone = f"+55118{uuid.uuid4().int % 10**8:08d}"
        before = len(model_s)
        started = time.perf_counter()
        conversation = inbound(phone, f"oi, vocês abrem no sábado? ({i})")
        if conversation is None:
            continue
        bot_reply(conversation_id=conversation.pk)
        elapsed = time.perf_counter() - started
        t_in, t_dr = stages["intake"][-1], stages["drain"][-1]
        split["intake"].append((t_in - started) * 1000)
        split["drain"].append((t_dr - t_in) * 1000)
        split["reply"].append((started + elapsed - t_dr) * 1000)
        replies = bot_messages(conversation)
        if not replies:
            lost += 1
            continue
        duplicates += max(0, len(replies) - 1)
        in_model = sum(model_s[before:])
        totals.append(elapsed * 1000)
        own.append((elapsed - in_model) * 1000)
    wall_s = time.perf_counter() - wall_start

    # Handoff: a person takes over with a message in flight, before the reply task runs (half of them) or
    # while the model is still writing the answer (the other half). No reply may leave in either case.
    replies_after_handoff = 0
    for i in range(args.takeovers):
        phone = f"+55117{uuid.uuid4().int % 10**8:08d}"
        while_answering = i % 2 == 1
        if while_answering:
            emulator.reply({"reply": "NUNCA", "answered": True, "sources": []}, delay_s=0.3, match=f"[{i}]")
        conversation = inbound(phone, f"quero um orçamento [{i}]")
        if conversation is None:
            continue
        if while_answering:
            schema = str(getattr(connection, "schema_name", "public"))

            def answer(pk: int = conversation.pk, schema: str = schema) -> None:
                from django.db import connection as thread_connection
                from django_tenants.utils import schema_context

                with schema_context(schema):
                    bot_reply(conversation_id=pk)
                thread_connection.close()

            worker = threading.Thread(target=answer)
            worker.start()
            deadline = time.monotonic() + 5
            while emulator.chat_requests()[-1:] == [] or f"[{i}]" not in json.dumps(
                emulator.chat_requests()[-1]["json"]["messages"][-1], ensure_ascii=False
            ):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            bot_take_over(conversation=conversation, user=None)
            worker.join()
        else:
            bot_take_over(conversation=conversation, user=None)
            bot_reply(conversation_id=conversation.pk)
        state = ConversationBot.objects.get(conversation=conversation)
        assert state.mode == BotMode.HUMAN
        replies_after_handoff += len(bot_messages(conversation))

    ai.client.chat = original_chat  # type: ignore[assignment]
    emulator.stop()
    for queue in ("ai", "ingest", "dispatch", "default"):  # tasks the subscribers queued for a worker we did not run
        redis_client().delete(queue)
    p95 = _percentile(own, 0.95)
    model_p50 = statistics.median(model_s) * 1000 if model_s else 0.0
    answered = len(totals)
    result = {
        "bench": "bot_reply",
        "per_s": round(answered / wall_s, 1) if wall_s else 0.0,
        "p50_ms": round(_percentile(own, 0.5), 1),
        "p95_ms": round(p95, 1),
        "p99_ms": round(_percentile(own, 0.99), 1),
        "wall_s": round(wall_s, 2),
        "errors": errors,
        "lost": lost,
        "duplicates": duplicates,
        "ceiling_per_s": round(1000 / model_p50, 1) if model_p50 else None,  # the model roundtrip alone
        "ratio_to_ceiling": round((answered / wall_s) / (1000 / model_p50), 3) if model_p50 and wall_s else None,
        "baseline_per_s": None,
        "ratio_to_baseline": None,
        "target": {"p95_ms": f"< {TARGET_P95_MS:.0f}", "replies_after_handoff": 0},
        "target_met": p95 < TARGET_P95_MS
        and replies_after_handoff == 0
        and answered == args.messages
        and not (errors or lost or duplicates),
        "messages": answered,
        "total_p95_ms": round(_percentile(totals, 0.95), 1),
        "model_p50_ms": round(model_p50, 1),
        "intake_p50_ms": round(_percentile(split["intake"], 0.5), 1),
        "drain_p50_ms": round(_percentile(split["drain"], 0.5), 1),
        "reply_p50_ms": round(_percentile(split["reply"], 0.5), 1),
        "load_average": round(os.getloadavg()[0], 2),
        "takeovers": args.takeovers,
        "replies_after_handoff": replies_after_handoff,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
