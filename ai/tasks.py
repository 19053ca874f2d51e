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


@app.task(name="ai.faq_suggest", bind=True, acks_late=True, max_retries=3)
def faq_suggest(self, conversation_id: int) -> None:  # type: ignore[no-untyped-def]
    """A suggested FAQ pair from a conversation just resolved (once per resolution)."""
    from ai.client import AIError
    from ai.faq import faq_suggest as suggest

    try:
        suggest(conversation_id=conversation_id)
    except AIError as exc:
        if not exc.retryable:
            return
        raise self.retry(exc=exc, countdown=30 * (self.request.retries + 1)) from exc


@app.task(name="ai.leads_due_sweep")
def leads_due_sweep() -> int:
    """Beat: start a classification run in every tenant with a settled conversation."""
    from ai.leads import due_sweep

    return due_sweep()


@app.task(name="ai.leads_classify_due", acks_late=True)
def leads_classify_due() -> int:
    """Classify this tenant's settled conversations (AI lead progression)."""
    from ai.leads import classify_due

    return classify_due()
