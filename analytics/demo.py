"""Some weeks of plausible activity for the demo tenant: conversations with replies, a campaign, leads
moving through the pipeline, calls, a few opt-outs. Written in bulk with their historical times, then
the rollups are rebuilt. Run once: a second run finds its contacts and only rebuilds the rollups."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone
from fractional_indexing import generate_key_between

from analytics.models import Resolution
from analytics.rollups import contained_sql, rollups_backfill

FIRST_NAMES = [
    "Ana",
    "Bruno",
    "Carla",
    "Diego",
    "Elisa",
    "Fábio",
    "Gabi",
    "Heitor",
    "Isabela",
    "João",
    "Karina",
    "Lucas",
    "Marina",
    "Nando",
    "Olívia",
    "Paulo",
    "Quésia",
    "Rafael",
    "Sofia",
    "Tiago",
]
LAST_NAMES = ["Souza", "Oliveira", "Santos", "Lima", "Pereira", "Costa", "Almeida", "Rocha", "Gomes", "Martins"]
QUESTIONS = [
    "Oi! Vocês têm esse modelo em azul?",
    "Qual o prazo de entrega para Campinas?",
    "Aceitam Pix?",
    "Meu pedido ainda não chegou",
    "Quero fazer uma troca de tamanho",
    "Tem desconto para 20 peças?",
]
ANSWERS = [
    "Temos sim! Posso separar para você?",
    "Chega em 2 dias úteis.",
    "Aceitamos Pix e cartão.",
    "Vou verificar com a transportadora e já te aviso.",
    "Claro, me manda o número do pedido.",
]
PHONE_PREFIX = "+55119555"  # the demo history's contacts: +55 11 9555-0001 ...
CONTACTS = 160
DAYS = 42


@contextmanager
def _historical(*fields: models.Field[Any, Any]) -> Iterator[None]:
    """Let bulk_create keep the times given instead of now (auto_now_add) while the history is written."""
    saved = [(f, f.auto_now_add) for f in fields]  # type: ignore[attr-defined]
    for f, _was in saved:
        f.auto_now_add = False  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for f, was in saved:
            f.auto_now_add = was  # type: ignore[attr-defined]


def _business_moment(rng: random.Random, day: datetime) -> datetime:
    hour = rng.choices(range(8, 21), weights=[2, 5, 8, 9, 7, 5, 7, 8, 8, 6, 4, 3, 2])[0]
    return day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))


def demo_history_fill(*, agents: list[Any]) -> bool:
    """Write the history (False when it is already there). `agents` are the members who answer."""
    from campaigns.models import Campaign
    from crm.models import Contact, ContactConsent
    from inbox.models import Channel, Conversation, Message
    from kanban.models import Board, Card, CardMove
    from voice.models import Call, VoiceAgent

    if Contact.objects.filter(phone__startswith=PHONE_PREFIX).exists():
        return False
    channels = list(Channel.objects.order_by("pk"))
    if not channels:
        return False
    rng = random.Random(16)  # noqa: S311 (demo data, not secrets): the same history on every machine
    now = timezone.now()
    midnight = now.astimezone(timezone.get_fixed_timezone(-180)).replace(hour=0, minute=0, second=0, microsecond=0)
    with (
        transaction.atomic(),
        _historical(
            Conversation._meta.get_field("created_at"),
            Message._meta.get_field("created_at"),
            CardMove._meta.get_field("created_at"),
            Call._meta.get_field("created_at"),
            Campaign._meta.get_field("created_at"),
        ),
    ):
        contacts = Contact.objects.bulk_create(
            Contact(phone=f"{PHONE_PREFIX}{i:04d}", name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}")
            for i in range(1, CONTACTS + 1)
        )
        conversations, messages, resolved = [], [], []
        for contact in contacts:
            channel = rng.choice(channels)
            start_day = midnight - timedelta(days=rng.randrange(DAYS))
            opened = _business_moment(rng, start_day)
            conversations.append(
                Conversation(
                    contact=contact,
                    channel=channel,
                    created_at=opened,
                    last_message_at=opened,
                    assignee=rng.choice(agents) if agents else None,
                )
            )
        Conversation.objects.bulk_create(conversations)
        # About a quarter of the conversations are the assistant's alone (its replies carry no author).
        by_bot = {c.pk for c in conversations if rng.random() < 0.25}
        for conversation in conversations:
            at = conversation.created_at
            for turn in range(rng.randint(1, 4)):
                if at > now:
                    break
                messages.append(_message(conversation, "in", rng.choice(QUESTIONS), at, None, rng, now))
                at += timedelta(seconds=int(rng.lognormvariate(5.0, 1.1)) + 5)
                if at > now:
                    break
                author = conversation.assignee if rng.random() < 0.9 else rng.choice(agents or [None])
                if conversation.pk in by_bot:
                    author = None
                messages.append(_message(conversation, "out", rng.choice(ANSWERS), at, author, rng, now))
                at += timedelta(hours=rng.randint(1, 30)) if turn else timedelta(minutes=rng.randint(2, 90))
            conversation.last_message_at = min(at, now)
            if rng.random() < 0.6 and at < now - timedelta(hours=1):
                conversation.status = "resolved"
                resolved.append(
                    Resolution(
                        conversation_id=0,
                        channel_id=conversation.channel_id,
                        agent_id=conversation.assignee_id,
                        resolved_at=min(at, now),
                    )
                )
                resolved[-1].conversation_id = conversation.pk
        Conversation.objects.bulk_update(conversations, ["last_message_at", "status"])
        campaign = Campaign.objects.create(
            name="Liquida Verão",
            channel=channels[0],
            body="Oi {{first_name}}! Liquida Verão com 30% off.",
            status="completed",
            total_recipients=len(conversations) // 2,
            created_at=midnight - timedelta(days=10),
            started_at=midnight - timedelta(days=10),
            finished_at=midnight - timedelta(days=10) + timedelta(minutes=5),
        )
        sent_at = midnight - timedelta(days=10) + timedelta(hours=13)
        for conversation in conversations[: len(conversations) // 2]:
            message = _message(conversation, "out", campaign.body, sent_at, None, rng, now)
            message.idempotency_key = f"campaign:{campaign.pk}:{conversation.contact_id}"
            message.is_marketing = True
            messages.append(message)
        Message.objects.bulk_create(messages, batch_size=1000)
        from ai.models import BotReply, ReplyMode

        BotReply.objects.bulk_create(
            BotReply(message=m, mode=ReplyMode.RETRIEVAL, sources=[])
            for m in messages
            if m.direction == "out" and m.conversation_id in by_bot and not m.idempotency_key.startswith("campaign:")
        )
        Resolution.objects.bulk_create(resolved)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE analytics_resolution r SET contained = {contained_sql('r.conversation_id')}"  # noqa: S608
                " WHERE r.conversation_id = ANY(%s)",
                [[r.conversation_id for r in resolved]],
            )
        for contact in contacts[:6]:
            ContactConsent.objects.update_or_create(
                contact=contact,
                medium="whatsapp",
                defaults={
                    "status": "opted_out",
                    "source": "keyword:SAIR",
                    "all_status": "opted_out",
                    "all_source": "keyword:SAIR",
                    "changed_at": midnight - timedelta(days=rng.randrange(DAYS)) + timedelta(hours=15),
                },
            )
        board = Board.objects.order_by("pk").first()
        if board is not None:
            stages = list(board.stages.order_by("rank"))
            open_stages = [s for s in stages if s.kind == "open"]
            won = next((s for s in stages if s.kind == "won"), None)
            lost = next((s for s in stages if s.kind == "lost"), None)
            moves = []
            last_rank = {
                s.pk: Card.objects.filter(stage=s).order_by("-rank").values_list("rank", flat=True).first()
                for s in stages
            }
            for contact in contacts[:60]:
                at = _business_moment(rng, midnight - timedelta(days=rng.randrange(DAYS)))
                path = open_stages[: rng.randint(1, len(open_stages))]
                final = path[-1]
                if len(path) == len(open_stages) and won and lost:
                    final = won if rng.random() < 0.6 else lost
                last_rank[final.pk] = generate_key_between(last_rank[final.pk], None)
                card = Card.objects.create(
                    board=board,
                    stage=final,
                    title=f"Pedido de {contact.name.split()[0]}",
                    contact=contact,
                    value=Decimal(rng.randrange(300, 9000)),
                    source="demo",
                    rank=str(last_rank[final.pk]),
                )
                stops = path + ([final] if final not in path else [])
                previous = None
                for stage in stops:
                    if at > now:
                        at = now
                    moves.append(
                        CardMove(
                            card=card,
                            from_stage=previous,
                            to_stage=stage,
                            actor_kind="person",
                            reason="created" if previous is None else "",
                            created_at=at,
                        )
                    )
                    previous = stage
                    at += timedelta(hours=rng.randint(4, 72))
            CardMove.objects.bulk_create(moves)
        voice_agent = VoiceAgent.objects.order_by("pk").first()
        calls = []
        for contact in contacts[:80]:
            at = _business_moment(rng, midnight - timedelta(days=rng.randrange(DAYS)))
            if at > now:
                continue
            outcome = rng.choices(["ended", "not_connected", "error"], weights=[75, 20, 5])[0]
            duration = int(rng.lognormvariate(11.5, 0.6)) if outcome == "ended" else None
            calls.append(
                Call(
                    agent=voice_agent,
                    contact=contact,
                    direction=rng.choice(["in", "out"]),
                    to_number=contact.phone or "",
                    status=outcome,
                    created_at=at,
                    started_at=at,
                    ended_at=at + timedelta(milliseconds=duration or 0),
                    duration_ms=duration,
                    disconnection_reason={
                        "ended": rng.choice(["user_hangup", "agent_hangup"]),
                        "not_connected": "dial_no_answer",
                        "error": "error_asr",
                    }[outcome],
                    sentiment=rng.choice(["Positive", "Neutral", "Negative"]) if duration else "",
                )
            )
        Call.objects.bulk_create(calls)
    return True


def _message(
    conversation: Any, direction: str, body: str, at: datetime, author: Any, rng: random.Random, now: datetime
) -> Any:
    from inbox.models import Message

    fields: dict[str, Any] = {}
    if direction == "in":
        fields["status"] = "received"
    else:
        roll = rng.random()
        status = "read" if roll < 0.62 else "delivered" if roll < 0.9 else "sent" if roll < 0.96 else "failed"
        fields["status"] = status
        if status != "failed":
            fields["sent_at"] = at + timedelta(seconds=1)
        if status in ("delivered", "read"):
            fields["delivered_at"] = at + timedelta(seconds=3)
        if status == "read":
            fields["read_at"] = min(now, at + timedelta(minutes=rng.randint(1, 120)))
        if status == "failed":
            fields["failed_at"] = at + timedelta(seconds=2)
            fields["error_code"] = "131026"
    return Message(
        conversation=conversation,
        channel_id=conversation.channel_id,
        direction=direction,
        body=body,
        created_at=at,
        author=author,
        idempotency_key=f"demo:{rng.getrandbits(64):016x}",
        **fields,
    )


def demo_analytics(*, agents: list[Any]) -> tuple[bool, dict[str, int]]:
    """Fill the history (once) and rebuild every rollup."""
    filled = demo_history_fill(agents=agents)
    return filled, rollups_backfill()
