"""Thin Celery wrappers on the `ai` queue: ids in, one service call."""

from __future__ import annotations

from django.db import connection

from config.celery import app


@app.task(name="ai.bot_reply", acks_late=True)
def bot_reply(conversation_id: int, attempt: int = 0) -> None:
    """The debounced answer of a conversation's assistant; comes back later when the model asks for it."""
    from ai.inbox_bot import bot_reply as reply

    delay = reply(conversation_id=conversation_id, attempt=attempt)
    if delay is not None:
        bot_reply.apply_async(
            args=(conversation_id, attempt + 1),
            queue="ai",
            countdown=delay,
            headers={"_schema_name": getattr(connection, "schema_name", "public")},
        )
