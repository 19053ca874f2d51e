"""Token usage and cost per tenant per day: one upsert that adds, so concurrent workers never lose a count."""

from __future__ import annotations

from decimal import Decimal

from django.db import connection
from django.utils import timezone

from ai.models import AISettings, AIUsageDay
from tenants import usage
from tenants.models import Metric

MILLION = Decimal(1_000_000)


def usage_cost(*, row: AISettings, prompt_tokens: int, completion_tokens: int) -> Decimal:
    return (
        Decimal(prompt_tokens) * row.price_input_per_million + Decimal(completion_tokens) * row.price_output_per_million
    ) / MILLION


def usage_record(
    *,
    row: AISettings,
    model: str,
    kind: str,
    prompt_tokens: int,
    completion_tokens: int,
    audio_seconds: float = 0.0,
) -> None:
    """Add one request's usage to today's row (the tenant's own schema: the table is per tenant), and its
    tokens to the plan's meter (tenants.UsageDay, in the public schema)."""
    cost = usage_cost(row=row, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    table = AIUsageDay._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (day, model, kind, requests, prompt_tokens, completion_tokens, audio_seconds, cost_usd)
            VALUES (%s, %s, %s, 1, %s, %s, %s, %s)
            ON CONFLICT (day, model, kind) DO UPDATE SET
                requests = {table}.requests + 1,
                prompt_tokens = {table}.prompt_tokens + EXCLUDED.prompt_tokens,
                completion_tokens = {table}.completion_tokens + EXCLUDED.completion_tokens,
                audio_seconds = {table}.audio_seconds + EXCLUDED.audio_seconds,
                cost_usd = {table}.cost_usd + EXCLUDED.cost_usd
            """,  # noqa: S608 (the table name is ours)
            [
                timezone.localdate(),
                model[:100],
                kind,
                prompt_tokens,
                completion_tokens,
                Decimal(str(audio_seconds)),
                cost,
            ],
        )
    usage.usage_add(metric=Metric.AI_TOKENS, amount=prompt_tokens + completion_tokens)


def ai_refusal() -> tuple[str, str]:
    """Why the plan lets no AI request go now: (code, message in the active language), or ("", "").
    The month's tokens are checked before a request (its size is known only after), so the request that
    crosses the limit finishes and the next one is refused."""
    from tenants.models import Feature

    if not usage.feature_enabled(Feature.AI):
        return usage.FEATURE_CODE, usage.feature_refusal(Feature.AI)
    try:
        usage.limit_check(metric=Metric.AI_TOKENS)
    except usage.LimitReached as exc:
        return usage.LIMIT_CODE, " ".join(exc.messages)
    return "", ""
