"""Rebuilding rollup hours from the raw rows of those hours, in the connection's tenant schema.

Each kind rebuilds whole hours (DELETE the hour's rows, INSERT ... SELECT ... GROUP BY): idempotent and
order-free, so the events only need to say *which* hours changed. The SELECTs read one hour of raw rows
through an index on their time column (the indexes are made by this app's migrations), never the table.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction

KINDS = ("msg", "conv", "resp", "call", "lead", "optout")

# Messages: outbound ones carry their campaign or cadence in the idempotency key
# (campaign:<id>:<contact>, cadence:<enrollment>:<step>).
_MESSAGES = """
INSERT INTO analytics_messagehour
    (hour, channel_id, campaign_id, cadence_id, agent_id, inbound, outbound, sent, delivered, read, failed)
SELECT %(start)s, m.channel_id,
       CASE WHEN m.idempotency_key ~ '^campaign:[0-9]{1,9}:' THEN split_part(m.idempotency_key, ':', 2)::int END,
       e.cadence_id,
       m.author_id,
       count(*) FILTER (WHERE m.direction = 'in'),
       count(*) FILTER (WHERE m.direction = 'out'),
       count(*) FILTER (WHERE m.direction = 'out'
                        AND (m.sent_at IS NOT NULL OR m.status IN ('sent', 'delivered', 'read'))),
       count(*) FILTER (WHERE m.direction = 'out'
                        AND (m.delivered_at IS NOT NULL OR m.status IN ('delivered', 'read'))),
       count(*) FILTER (WHERE m.direction = 'out' AND (m.read_at IS NOT NULL OR m.status = 'read')),
       count(*) FILTER (WHERE m.direction = 'out' AND m.status = 'failed')
FROM inbox_message m
LEFT JOIN campaigns_enrollment e
       ON e.id = CASE WHEN m.idempotency_key ~ '^cadence:[0-9]{1,18}:'
                      THEN split_part(m.idempotency_key, ':', 2)::bigint END
WHERE m.created_at >= %(start)s AND m.created_at < %(end)s AND m.direction IN ('in', 'out')
GROUP BY 2, 3, 4, 5
"""

_CONVERSATIONS = """
INSERT INTO analytics_conversationhour (hour, channel_id, agent_id, opened, resolved, contained)
SELECT %(start)s, channel_id, agent_id, sum(opened), sum(resolved), sum(contained) FROM (
    SELECT channel_id, assignee_id AS agent_id, 1 AS opened, 0 AS resolved, 0 AS contained FROM inbox_conversation
    WHERE created_at >= %(start)s AND created_at < %(end)s
    UNION ALL
    SELECT channel_id, agent_id, 0, 1, contained::int FROM analytics_resolution
    WHERE resolved_at >= %(start)s AND resolved_at < %(end)s
) AS x
GROUP BY 2, 3
"""

# A reply by a person ends the wait that began with the first inbound message after the previous
# outbound one. `turn` numbers the outbound messages of a conversation; inbound messages share the
# turn of the outbound that preceded them, and the reply that closes them is the next turn's first.
_RESPONSES = """
WITH touched AS (
    SELECT DISTINCT conversation_id FROM inbox_message
    WHERE created_at >= %(start)s AND created_at < %(end)s AND direction = 'out' AND author_id IS NOT NULL
), timeline AS (
    SELECT m.id, m.conversation_id, m.channel_id, m.direction, m.author_id, m.created_at,
           count(*) FILTER (WHERE m.direction = 'out') OVER (
               PARTITION BY m.conversation_id ORDER BY m.created_at, m.id
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS turn
    FROM inbox_message m JOIN touched t ON t.conversation_id = m.conversation_id
    WHERE m.direction IN ('in', 'out') AND m.created_at < %(end)s
), waits AS (
    SELECT conversation_id, turn, min(created_at) AS since FROM timeline WHERE direction = 'in'
    GROUP BY 1, 2
), answered AS (
    -- the wait of turn k is answered by the first outbound after it, which has turn k itself
    SELECT DISTINCT ON (w.conversation_id, w.turn)
           o.id, o.conversation_id, o.channel_id, o.author_id, o.created_at, w.since, w.turn,
           (o.author_id IS NOT NULL) AS by_person
    FROM waits w JOIN timeline o
      ON o.conversation_id = w.conversation_id AND o.direction = 'out' AND o.turn = w.turn
    ORDER BY w.conversation_id, w.turn
), ranked AS (
    SELECT a.*, row_number() OVER (PARTITION BY a.conversation_id ORDER BY a.turn) AS nth
    FROM answered a WHERE a.by_person
)
INSERT INTO analytics_responsesample (reply_id, conversation_id, hour, channel_id, agent_id, seconds, is_first)
SELECT id, conversation_id, %(start)s, channel_id, author_id,
       greatest(0, floor(extract(epoch FROM created_at - since)))::int, nth = 1
FROM ranked WHERE created_at >= %(start)s AND created_at < %(end)s
"""

_CALLS = """
INSERT INTO analytics_callhour
    (hour, agent_id, direction, status, outcome, calls, answered, duration_ms, positive, negative, successful,
     cost_cents)
SELECT %(start)s, agent_id, direction, status, disconnection_reason, count(*),
       count(*) FILTER (WHERE status = 'ended' AND coalesce(duration_ms, 0) > 0),
       coalesce(sum(duration_ms) FILTER (WHERE status = 'ended'), 0),
       count(*) FILTER (WHERE lower(sentiment) = 'positive'),
       count(*) FILTER (WHERE lower(sentiment) = 'negative'),
       count(*) FILTER (WHERE successful),
       coalesce(sum(cost_cents), 0)
FROM voice_call WHERE created_at >= %(start)s AND created_at < %(end)s
GROUP BY 2, 3, 4, 5
"""

_LEADS = """
INSERT INTO analytics_leadmovehour (hour, board_id, from_stage_id, to_stage_id, moves, won, won_value)
SELECT %(start)s, s.board_id, mv.from_stage_id, mv.to_stage_id, count(*),
       count(*) FILTER (WHERE s.kind = 'won'),
       coalesce(sum(c.value) FILTER (WHERE s.kind = 'won'), 0)
FROM kanban_cardmove mv
JOIN kanban_stage s ON s.id = mv.to_stage_id
JOIN kanban_card c ON c.id = mv.card_id
WHERE mv.created_at >= %(start)s AND mv.created_at < %(end)s
GROUP BY 2, 3, 4
"""

_OPTOUTS = """
INSERT INTO analytics_optouthour (hour, medium, opted_out)
SELECT %(start)s, medium, count(*) FROM crm_contactconsent
WHERE changed_at >= %(start)s AND changed_at < %(end)s AND status IN ('opted_out', 'marketing_opted_out')
GROUP BY 2
"""

_TABLE_OF = {
    "msg": ("analytics_messagehour", "hour", _MESSAGES),
    "conv": ("analytics_conversationhour", "hour", _CONVERSATIONS),
    "resp": ("analytics_responsesample", "hour", _RESPONSES),
    "call": ("analytics_callhour", "hour", _CALLS),
    "lead": ("analytics_leadmovehour", "hour", _LEADS),
    "optout": ("analytics_optouthour", "hour", _OPTOUTS),
}

# The hours in which each kind has raw rows: the backfill rebuilds those (and empties the rest).
_RAW_HOURS = {
    "msg": "SELECT DISTINCT date_trunc('hour', created_at) FROM inbox_message",
    "conv": "SELECT date_trunc('hour', created_at) FROM inbox_conversation"
    " UNION SELECT date_trunc('hour', resolved_at) FROM analytics_resolution",
    "resp": "SELECT DISTINCT date_trunc('hour', created_at) FROM inbox_message"
    " WHERE direction = 'out' AND author_id IS NOT NULL",
    "call": "SELECT DISTINCT date_trunc('hour', created_at) FROM voice_call",
    "lead": "SELECT DISTINCT date_trunc('hour', created_at) FROM kanban_cardmove",
    "optout": "SELECT DISTINCT date_trunc('hour', changed_at) FROM crm_contactconsent",
}


def _response_buckets() -> list[int]:
    bounds, at = list(range(20)), 20
    while at < 10**8:
        bounds.append(at)
        at = max(at + 1, int(at * 1.05))
    return bounds


# Lower bounds of the wait buckets (seconds): exact below 20 s, then each about 5% wider than the last.
RESPONSE_BUCKETS = _response_buckets()


def response_bucket(seconds: int) -> int:
    """The lower bound of the bucket a wait falls in (what ResponseDay.bucket holds)."""
    return RESPONSE_BUCKETS[bisect_right(RESPONSE_BUCKETS, seconds) - 1]


_RESPONSE_DAYS = """
INSERT INTO analytics_responseday (day, channel_id, agent_id, is_first, bucket, responses, seconds_sum)
SELECT (hour AT TIME ZONE %(tz)s)::date, channel_id, agent_id, is_first,
       (%(bounds)s::int[])[width_bucket(seconds, %(bounds)s::int[])], count(*), sum(seconds)
FROM analytics_responsesample
WHERE hour >= %(start)s AND hour < %(end)s AND (hour AT TIME ZONE %(tz)s)::date = ANY(%(days)s)
GROUP BY 1, 2, 3, 4, 5
"""


def _tenant_zone() -> ZoneInfo:
    from tenants.selectors import tenant_current

    return ZoneInfo(tenant_current().timezone)


def response_days_rebuild(hours: Iterable[datetime]) -> int:
    """Rebuild the response histogram of the tenant's days these hours fall in, from the samples."""
    zone = _tenant_zone()
    days = sorted({h.astimezone(zone).date() for h in hours})
    if not days:
        return 0
    start = datetime.combine(days[0], time.min, tzinfo=zone)
    end = datetime.combine(days[-1] + timedelta(days=1), time.min, tzinfo=zone)
    params: dict[str, Any] = {"tz": str(zone), "bounds": RESPONSE_BUCKETS, "start": start, "end": end, "days": days}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM analytics_responseday WHERE day = ANY(%(days)s)", params)
        cursor.execute(_RESPONSE_DAYS, params)
    return len(days)


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def hours_rebuild(kind: str, hours: Iterable[datetime], *, days: bool = True) -> int:
    """Rebuild these UTC hours of one kind (and, for responses, the days they fall in unless `days` is
    False). Returns how many hours were rebuilt."""
    hours = list(hours)
    table, column, insert = _TABLE_OF[kind]
    done = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for hour in sorted({hour_floor(h) for h in hours}):
            params = {"start": hour, "end": hour + timedelta(hours=1)}
            cursor.execute(f"DELETE FROM {table} WHERE {column} = %(start)s", params)  # noqa: S608 (fixed names)
            cursor.execute(insert, params)
            done += 1
    if kind == "resp" and days:
        response_days_rebuild(hours)
    return done


def kind_hours(kind: str, *, since: datetime | None = None) -> list[datetime]:
    """The UTC hours with raw rows of this kind (from `since` on)."""
    with connection.cursor() as cursor:
        cursor.execute(_RAW_HOURS[kind])
        hours = [row[0] for row in cursor.fetchall() if row[0] is not None]
    if since is not None:
        hours = [h for h in hours if h >= hour_floor(since)]
    return hours


def contained_sql(conversation_id: str) -> str:
    """SQL true when the conversation (an id expression) was resolved by the assistant alone: a bot reply
    in it, no outbound message written by a member, and never handed off to a person. `conversation_id`
    is our own column name or placeholder, never input."""
    return f"""(EXISTS (SELECT 1 FROM ai_botreply b JOIN inbox_message bm ON bm.id = b.message_id
                    WHERE bm.conversation_id = {conversation_id})
        AND NOT EXISTS (SELECT 1 FROM inbox_message pm WHERE pm.conversation_id = {conversation_id}
                        AND pm.direction = 'out' AND pm.author_id IS NOT NULL)
        AND NOT EXISTS (SELECT 1 FROM ai_conversationbot cb WHERE cb.conversation_id = {conversation_id}
                        AND cb.handed_off_at IS NOT NULL))"""  # noqa: S608


def rollups_backfill(*, since: datetime | None = None) -> dict[str, int]:
    """Rebuild every rollup of the tenant from its raw rows: empty the tables (from `since` on), then
    rebuild hour by hour. Run by the `analytics_backfill` command."""
    counts: dict[str, int] = {}
    # Conversations resolved before this app existed have no Resolution: their last activity stands in.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO analytics_resolution (conversation_id, channel_id, agent_id, resolved_at, contained)
                SELECT c.id, c.channel_id, c.assignee_id, c.last_message_at, {contained_sql("c.id")}
                FROM inbox_conversation c WHERE c.status = 'resolved'
                AND NOT EXISTS (SELECT 1 FROM analytics_resolution r WHERE r.conversation_id = c.id)"""  # noqa: S608
        )
    for kind in KINDS:
        table, column, _insert = _TABLE_OF[kind]
        with connection.cursor() as cursor:
            if kind == "resp":
                cursor.execute("DELETE FROM analytics_responseday")  # its days are all rebuilt below
            if since is None:
                cursor.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed names)
            else:
                cursor.execute(f"DELETE FROM {table} WHERE {column} >= %s", [hour_floor(since)])  # noqa: S608
        counts[kind] = hours_rebuild(kind, kind_hours(kind, since=since), days=False)
    # The response histogram per day, whole days, from every sample (the cut may go through a day).
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT hour FROM analytics_responsesample")
        response_days_rebuild([row[0] for row in cursor.fetchall()])
    return counts
