"""Cadences: save (steps with stable keys), enroll, pause and resume, exits by reason code, and the tick.

The tick is set-based. It claims a batch of due enrollments (``FOR UPDATE SKIP LOCKED``), inserts one
``StepRun`` per (enrollment, step) with ``ON CONFLICT DO NOTHING`` and acts only on the rows it inserted,
so a step runs exactly once whatever the beats, the concurrent ticks and the restarted workers. Message
steps become queued messages in bulk (the dispatcher sends them, as it sends campaigns), keyed
``cadence:<enrollment>:<step key>``; call steps go to whichever app contributes ``CADENCE_CALL_PLACE``.
After the batch, each enrollment points at its next step by identity: the first step, in the cadence's
current order, that it has not run. Editing a cadence therefore never shifts or skips anyone."""

from __future__ import annotations

import datetime
import logging
import zoneinfo
from collections import defaultdict
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Exists, Max, OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import rails
from campaigns.models import (
    Cadence,
    CadenceStep,
    ContentKind,
    Enrollment,
    EnrollmentStatus,
    ExitReason,
    QuietHours,
    StepAction,
    StepRun,
    StepRunCode,
    StepRunStatus,
    StepTiming,
)
from campaigns.services import (
    columns_insert,
    content_spun,
    content_validate,
    quiet_until,
    template_preview_fill,
    template_text,
)
from core import events
from core.contributions import CADENCE_CALL_AGENTS, CADENCE_CALL_PLACE, collect
from core.roles import Action, HasRole, permission_check
from crm.models import ConsentStatus, Contact, ContactConsent
from crm.services import MEDIUM_OF_KIND
from inbox.models import Channel, ChannelKind, Conversation, Direction, Message, MessageStatus, MessageType
from inbox.providers import provider_class
from inbox.services import address_check, message_limit_refusal, message_room
from tenants.selectors import tenant_is_active

logger = logging.getLogger(__name__)

MAX_BATCH = 2000  # enrollments claimed per transaction of the tick
DEDUPE_HOURS_CADENCE = 24  # the duplicate guard's window for cadence steps (campaigns set their own)
RESUME_RATE_PER_S = 10  # on resume, overdue enrollments go out at about this pace...
RESUME_SPREAD_MAX = datetime.timedelta(minutes=30)  # ...spread over at most this window
PLAN_LIMIT_RECHECK = datetime.timedelta(hours=1)  # a step held at the plan's limit is tried again this often
STEP_CHANNEL_KINDS = (ChannelKind.WHATSAPP_CLOUD, ChannelKind.WHATSAPP_WEB, ChannelKind.SMS_TWILIO)
Actor = str | HasRole | None


def _schema() -> str:
    return str(getattr(connection, "schema_name", "public"))


# --- timing ----------------------------------------------------------------------------------------


def _tz() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(rails.tenant_timezone())


def business_days() -> frozenset[int]:
    """The tenant's business days (0 = Monday), from the sending rules page."""
    days = QuietHours.current().business_days
    return frozenset(int(d) for d in days) if days else frozenset(range(5))


def step_run_at(
    step: CadenceStep, after: datetime.datetime, tz: zoneinfo.ZoneInfo, days: frozenset[int]
) -> datetime.datetime:
    """When this step runs for a contact whose previous step ran (or who enrolled) at `after`: after its
    wait, or N business days later at its time in the tenant's timezone (0: the next such time that is
    still ahead). A step that runs only on business days moves to the next one."""
    if step.timing == StepTiming.BUSINESS_DAY:
        at = step.at_time or datetime.time(9, 0)
        local = after.astimezone(tz)
        day = local.date()
        wanted = int(step.business_days)
        if wanted == 0:
            candidate = datetime.datetime.combine(day, at, tzinfo=tz)
            if candidate > local and day.weekday() in days:
                return candidate.astimezone(datetime.UTC)
            wanted = 1
        counted = 0
        for _i in range(wanted * 7 + 7):
            day += datetime.timedelta(days=1)
            if day.weekday() in days:
                counted += 1
                if counted == wanted:
                    break
        return datetime.datetime.combine(day, at, tzinfo=tz).astimezone(datetime.UTC)
    run = after + datetime.timedelta(minutes=int(step.delay_minutes))
    if step.only_business_days:
        run = next_business_moment(run, tz, days)
    return run


def next_business_moment(moment: datetime.datetime, tz: zoneinfo.ZoneInfo, days: frozenset[int]) -> datetime.datetime:
    """`moment` itself on a business day, else the same time of day on the next business day."""
    local = moment.astimezone(tz)
    for shift in range(8):
        candidate = local + datetime.timedelta(days=shift)
        if candidate.weekday() in days:
            if shift == 0:
                return moment
            return datetime.datetime.combine(candidate.date(), local.time(), tzinfo=tz).astimezone(datetime.UTC)
    return moment  # no business day configured: never wait forever


# --- saving ----------------------------------------------------------------------------------------


def steps_live(cadence: Cadence) -> QuerySet[CadenceStep]:
    return cadence.steps.filter(removed_at__isnull=True).order_by("position", "id")


def call_agent_choices() -> list[tuple[str, str]]:
    """The voice agents a call step may use (contributed by the voice app; empty when none)."""
    return [(str(agent_id), str(label)) for agent_id, label in collect(CADENCE_CALL_AGENTS)]


STEP_FIELDS = (
    "action",
    "timing",
    "delay_minutes",
    "business_days",
    "at_time",
    "call_agent",
    "only_if_no_reply",
    "only_business_days",
    "kind",
    "body",
    "template_name",
    "template_language",
    "template_variables",
)


def _step_values(step: dict[str, Any], i: int, cadence: Cadence, agents: set[str]) -> dict[str, Any]:
    """One step dict -> validated field values (raises ValidationError naming the step)."""

    def refuse(problem: str) -> ValidationError:
        return ValidationError({"steps": _("Step %(n)s: %(problem)s") % {"n": i, "problem": problem}})

    action = step.get("action") or StepAction.MESSAGE
    if action not in StepAction.values:
        raise refuse(_("Choose a message or a call."))
    timing = step.get("timing") or StepTiming.DELAY
    if timing not in StepTiming.values:
        raise refuse(_("Choose when the step runs."))
    at_time = step.get("at_time")
    if isinstance(at_time, str):
        try:
            at_time = datetime.time.fromisoformat(at_time) if at_time else None
        except ValueError as exc:
            raise refuse(_("Give the time as HH:MM.")) from exc
    if timing == StepTiming.BUSINESS_DAY and at_time is None:
        at_time = datetime.time(9, 0)
    channel = step.get("step_channel") or step.get("channel")
    if channel is not None and not isinstance(channel, Channel):
        channel = Channel.objects.filter(pk=channel).first() if str(channel).isdigit() else None
        if channel is None:
            raise refuse(_("Choose one of your channels."))
    if channel is not None and channel.kind not in STEP_CHANNEL_KINDS:
        raise refuse(_("Choose one of your channels."))
    stage = step.get("only_in_stage")
    if stage is not None and not hasattr(stage, "pk"):
        from kanban.models import Stage

        stage = Stage.objects.filter(pk=stage).first() if str(stage).isdigit() else None
    values: dict[str, Any] = {
        "action": action,
        "timing": timing,
        "delay_minutes": max(0, int(step.get("delay_minutes") or 0)),
        "business_days": max(0, min(30, int(str(step.get("business_days", 1) or 0)))),
        "at_time": at_time if timing == StepTiming.BUSINESS_DAY else None,
        "step_channel": channel if action == StepAction.MESSAGE else None,
        "call_agent": str(step.get("call_agent") or "") if action == StepAction.CALL else "",
        "only_if_no_reply": bool(step.get("only_if_no_reply")),
        "only_in_stage": stage,
        "only_business_days": bool(step.get("only_business_days")),
        "kind": step.get("kind") or ContentKind.TEXT,
        "body": step.get("body") or "",
        "template_name": step.get("template_name") or "",
        "template_language": step.get("template_language") or "",
        "template_variables": list(step.get("template_variables") or []),
    }
    if action == StepAction.CALL:
        if not agents:
            raise refuse(_("No voice agent is available for calls."))
        if values["call_agent"] not in agents:
            raise refuse(_("Choose the voice agent that calls."))
        values.update(kind=ContentKind.TEXT, template_name="", template_language="", template_variables=[])
        return values
    try:
        content_validate(
            kind=values["kind"],
            body=values["body"],
            template_name=values["template_name"],
            channel=channel or cadence.channel,
        )
    except ValidationError as exc:
        raise refuse(" ".join(exc.messages)) from exc
    return values


@transaction.atomic
def cadence_save(*, cadence: Cadence | None = None, steps: list[dict[str, Any]], **fields: Any) -> Cadence:
    """Create or edit a cadence and its steps, in the given order. A step dict with the `key` of one of
    the cadence's steps edits that step (it keeps its identity); one without a key is new; a step left
    out is removed (its row stays, with its numbers). Contacts already enrolled keep the step they wait
    for; those waiting for a removed step go on with the first step they have not run."""
    cadence = cadence or Cadence()
    for name, value in fields.items():
        setattr(cadence, name, value)
    if not steps:
        raise ValidationError({"steps": _("Add at least one step.")})
    agents = (
        {agent_id for agent_id, _label in call_agent_choices()}
        if any((s.get("action") == StepAction.CALL) for s in steps)
        else set()
    )
    validated = [_step_values(step, i, cadence, agents) for i, step in enumerate(steps, start=1)]
    cadence.save()
    existing = {str(s.key): s for s in steps_live(cadence)}
    kept: list[CadenceStep] = []
    for position, (raw, values) in enumerate(zip(steps, validated, strict=True)):
        step = existing.pop(str(raw.get("key") or ""), None) or CadenceStep(cadence=cadence)
        for name, value in values.items():
            setattr(step, name, value)
        step.position = position
        step.save()
        kept.append(step)
    removed = [s.pk for s in existing.values()]
    if removed:
        CadenceStep.objects.filter(pk__in=removed).update(removed_at=timezone.now())
        waiting = list(
            Enrollment.objects.filter(
                next_step_id__in=removed, status__in=[EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED]
            ).values_list("pk", flat=True)
        )
        _point_to_next(waiting)
        # those with nothing left finish at their next tick (a due time they already have)
    return cadence


def _point_to_next(enrollment_ids: list[int]) -> None:
    """Each enrollment's next step: the first live step of its cadence, in order, that it has not run."""
    if not enrollment_ids:
        return
    step, run, enrollment = CadenceStep._meta.db_table, StepRun._meta.db_table, Enrollment._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {enrollment} e SET next_step_id = ("  # noqa: S608 (our table names; values are parameters)
            f"SELECT s.id FROM {step} s WHERE s.cadence_id = e.cadence_id AND s.removed_at IS NULL "
            f"AND NOT EXISTS (SELECT 1 FROM {run} r WHERE r.enrollment_id = e.id AND r.step_id = s.id) "
            "ORDER BY s.position, s.id LIMIT 1) WHERE e.id = ANY(%s)",
            [enrollment_ids],
        )


# --- enrolling -------------------------------------------------------------------------------------


def cadence_enroll(*, cadence: Cadence, contacts: QuerySet[Contact], enrolled_by: Any = None) -> int:
    """Start the cadence for these contacts (those already in it are left where they are). One statement,
    whatever the number of contacts. Returns how many started."""
    if not cadence.is_active:
        raise ValidationError(_("This cadence is paused. Turn it on to start it for contacts."))
    first = steps_live(cadence).first()
    if first is None:
        raise ValidationError(_("This cadence has no steps."))
    now = timezone.now()
    first_run = step_run_at(first, now, _tz(), business_days())
    user_id = getattr(enrolled_by, "pk", None) if getattr(enrolled_by, "is_authenticated", False) else None
    sql, params = contacts.order_by().values("pk").query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(  # the subquery is Django's own compiled SQL; values are parameters
            f"INSERT INTO {Enrollment._meta.db_table} "  # noqa: S608
            "(cadence_id, contact_id, status, next_step_id, next_run_at, steps_sent, exit_reason, exit_detail, "
            "enrolled_by_id, started_at) "
            f"SELECT %s, chosen.contact_id, %s, %s, %s, 0, '', '', %s, now() FROM ({sql}) AS chosen(contact_id) "
            "ON CONFLICT (cadence_id, contact_id) WHERE status IN ('active', 'paused') DO NOTHING",
            [cadence.pk, EnrollmentStatus.ACTIVE, first.pk, first_run, user_id, *params],
        )
        count = cursor.rowcount
        if count and first_run <= now + datetime.timedelta(seconds=1):
            from campaigns.tasks import cadence_tick
            from core.tasks import send_on_commit

            send_on_commit(cadence_tick, queue="dispatch")
    return count


def cadences_enroll_inactive(now: datetime.datetime | None = None) -> int:
    """Beat: cadences that start for inactive contacts take those whose last message (either way) is
    older than the cadence's days and who have not been through it since. Returns how many started."""
    now = now or timezone.now()
    started = 0
    for cadence in Cadence.objects.filter(is_active=True, enroll_inactive_days__isnull=False):
        cutoff = now - datetime.timedelta(days=int(cadence.enroll_inactive_days or 0))
        since_last = Enrollment.objects.filter(
            cadence=cadence, contact_id=OuterRef("pk"), started_at__gte=OuterRef("last_activity")
        )
        last = Conversation.objects.filter(contact_id=OuterRef("pk"), last_message_at__isnull=False).order_by(
            "-last_message_at"
        )
        contacts = (
            Contact.objects.annotate(last_activity=Subquery(last.values("last_message_at")[:1]))
            .filter(last_activity__lt=cutoff)
            .exclude(Exists(since_last))
        )
        try:
            started += cadence_enroll(cadence=cadence, contacts=contacts)
        except ValidationError:
            continue  # no steps
    return started


# --- leaving, pausing -------------------------------------------------------------------------------


def enrollments_stop(*, enrollments: QuerySet[Enrollment], reason: str = ExitReason.MANUAL, detail: str = "") -> int:
    """These enrollments leave the cadence with a reason code (and a detail for context). Returns how
    many were active or paused; `cadence.exited` is announced for each."""
    now = timezone.now()
    if reason not in ExitReason.values:
        reason, detail = ExitReason.OTHER, detail or reason
    ids = list(
        enrollments.filter(status__in=[EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED]).values_list("pk", flat=True)
    )
    if not ids:
        return 0
    rows = list(
        Enrollment.objects.filter(
            pk__in=ids, status__in=[EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED]
        ).values_list("pk", "cadence_id", "contact_id")
    )
    count = Enrollment.objects.filter(
        pk__in=[r[0] for r in rows], status__in=[EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED]
    ).update(
        status=EnrollmentStatus.STOPPED, exit_reason=reason, exit_detail=detail[:300], finished_at=now, next_run_at=None
    )
    for pk, cadence_id, contact_id in rows:
        events.announce(
            events.CADENCE_EXITED,
            _schema(),
            {"enrollment_id": pk, "cadence_id": cadence_id, "contact_id": contact_id, "reason": reason},
        )
    return count


def enrollment_stop(*, enrollment: Enrollment, actor: Actor, who: str = "") -> bool:
    """A person stops one enrollment (reason `manual`, who in the detail)."""
    permission_check(actor, Action.ENROLLMENT_STOP)
    detail = _("Stopped by %(who)s.") % {"who": who} if who else ""
    return enrollments_stop(enrollments=Enrollment.objects.filter(pk=enrollment.pk), detail=detail) == 1


def enrollment_pause(*, enrollment: Enrollment, actor: Actor) -> bool:
    permission_check(actor, Action.ENROLLMENT_PAUSE)
    return (
        Enrollment.objects.filter(pk=enrollment.pk, status=EnrollmentStatus.ACTIVE).update(
            status=EnrollmentStatus.PAUSED
        )
        == 1
    )


def enrollment_resume(*, enrollment: Enrollment, actor: Actor) -> bool:
    """The enrollment goes on from the step it waited for (at once when that step is overdue)."""
    permission_check(actor, Action.ENROLLMENT_PAUSE)
    now = timezone.now()
    current = Enrollment.objects.filter(pk=enrollment.pk).values_list("next_run_at", flat=True).first()
    return (
        Enrollment.objects.filter(pk=enrollment.pk, status=EnrollmentStatus.PAUSED).update(
            status=EnrollmentStatus.ACTIVE, next_run_at=max(current or now, now)
        )
        == 1
    )


def cadence_pause(*, cadence: Cadence, actor: Actor) -> bool:
    """Nothing of this cadence runs until it is resumed (enrollments keep their place)."""
    permission_check(actor, Action.CADENCE_PAUSE)
    moved = Cadence.objects.filter(pk=cadence.pk, is_active=True).update(is_active=False, paused_at=timezone.now())
    cadence.refresh_from_db()
    return moved == 1


def cadence_resume(*, cadence: Cadence, actor: Actor, now: datetime.datetime | None = None) -> int:
    """The cadence runs again. Enrollments that fell due while it was paused are spread over a window
    (about RESUME_RATE_PER_S a second, at most RESUME_SPREAD_MAX), in the order they fell due, instead of
    all at once. Returns how many were spread."""
    permission_check(actor, Action.CADENCE_PAUSE)
    now = now or timezone.now()
    with transaction.atomic():
        if not Cadence.objects.filter(pk=cadence.pk, is_active=False).update(is_active=True, paused_at=None):
            cadence.refresh_from_db()
            return 0
        overdue = Enrollment.objects.filter(
            cadence=cadence, status=EnrollmentStatus.ACTIVE, next_run_at__lte=now
        ).count()
        spread_s = min(RESUME_SPREAD_MAX.total_seconds(), overdue / RESUME_RATE_PER_S)
        table = Enrollment._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH o AS (SELECT id, row_number() OVER (ORDER BY next_run_at, id) - 1 AS n FROM {table} "  # noqa: S608
                "WHERE cadence_id = %s AND status = 'active' AND next_run_at <= %s) "
                f"UPDATE {table} e SET next_run_at = %s + make_interval(secs => %s * o.n / greatest(%s, 1)) "
                "FROM o WHERE e.id = o.id",
                [cadence.pk, now, now, spread_s, overdue],
            )
    cadence.refresh_from_db()
    return overdue


# --- exits from events ------------------------------------------------------------------------------


def _open(contact_id: int) -> QuerySet[Enrollment]:
    return Enrollment.objects.filter(
        contact_id=contact_id, status__in=[EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED]
    )


def enrollments_reply(*, contact_id: int) -> int:
    """The contact wrote: the last step each of its enrollments ran counts a reply; cadences that stop
    on a reply let it go (reason `replied`). Returns the exits."""
    open_ids = list(_open(contact_id).values_list("pk", flat=True))
    if not open_ids:
        return 0
    run = StepRun._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {run} SET replied_at = %s WHERE id IN ("  # noqa: S608
            f"SELECT DISTINCT ON (enrollment_id) id FROM {run} WHERE enrollment_id = ANY(%s) "
            "AND status IN ('queued', 'placed') ORDER BY enrollment_id, ran_at DESC, id DESC) AND replied_at IS NULL",
            [timezone.now(), open_ids],
        )
    return enrollments_stop(
        enrollments=Enrollment.objects.filter(pk__in=open_ids, cadence__stop_on_reply=True),
        reason=ExitReason.REPLIED,
    )


def enrollments_stop_on_reply(*, contact_id: int) -> int:
    return enrollments_reply(contact_id=contact_id)


def enrollments_stop_on_opt_out(*, contact_id: int, medium: str) -> int:
    """An opt-out of a medium ends the enrollments of cadences that message on it."""
    kinds = [kind for kind, of in MEDIUM_OF_KIND.items() if of == medium]
    uses = CadenceStep.objects.filter(
        cadence_id=OuterRef("cadence_id"),
        removed_at__isnull=True,
        action=StepAction.MESSAGE,
        step_channel__kind__in=kinds,
    )
    enrollments = _open(contact_id).filter(
        Exists(uses) | Exists(Cadence.objects.filter(pk=OuterRef("cadence_id"), channel__kind__in=kinds))
    )
    return enrollments_stop(enrollments=enrollments, reason=ExitReason.OPTED_OUT)


def enrollments_stage_entered(*, contact_id: int, stage_id: int, from_stage_id: int | None, stage_kind: str) -> int:
    """A lead moved: the goal stage, a won or lost lead, or any change ends the cadences that say so (in
    that order of precedence). Returns the exits."""
    exited = enrollments_stop(
        enrollments=_open(contact_id).filter(cadence__goal_stage_id=stage_id), reason=ExitReason.GOAL_REACHED
    )
    if stage_kind in ("won", "lost"):
        exited += enrollments_stop(
            enrollments=_open(contact_id).filter(cadence__exit_on_won_lost=True),
            reason=ExitReason.WON if stage_kind == "won" else ExitReason.LOST,
        )
    if from_stage_id is not None and from_stage_id != stage_id:
        exited += enrollments_stop(
            enrollments=_open(contact_id).filter(cadence__exit_on_stage_change=True), reason=ExitReason.STAGE_CHANGED
        )
    return exited


# --- the tick ---------------------------------------------------------------------------------------


def cadences_advance(*, limit: int | None = None) -> int:
    """Beat: run the due step of up to `limit` (MAX_BATCH) due enrollments of active cadences. Returns the
    steps handed on (messages queued for the dispatcher, calls placed). A suspended tenant runs nothing;
    its due steps run once it is reactivated."""
    return cadences_advance_counted(limit=limit)[0]


def cadences_advance_counted(*, limit: int | None = None) -> tuple[int, int]:
    """cadences_advance, with how many enrollments the batch claimed (a full batch: more may be due)."""
    if not tenant_is_active():
        return 0, 0
    with transaction.atomic():
        return _advance_batch(limit or MAX_BATCH, timezone.now())


def _claim(limit: int, now: datetime.datetime) -> list[tuple[int, int, int, int | None, datetime.datetime]]:
    enrollment, cadence = Enrollment._meta.db_table, Cadence._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT e.id, e.cadence_id, e.contact_id, e.next_step_id, e.started_at FROM {enrollment} e "  # noqa: S608
            f"JOIN {cadence} c ON c.id = e.cadence_id "
            "WHERE e.status = 'active' AND e.next_run_at <= %s AND c.is_active "
            "ORDER BY e.next_run_at LIMIT %s FOR UPDATE OF e SKIP LOCKED",
            [now, limit],
        )
        return list(cursor.fetchall())


def _advance_batch(limit: int, now: datetime.datetime) -> tuple[int, int]:
    due = _claim(limit, now)
    if not due:
        return 0, 0
    tz, days = _tz(), business_days()
    cadences = {c.pk: c for c in Cadence.objects.filter(pk__in={d[1] for d in due}).select_related("channel")}
    steps = {s.pk: s for s in CadenceStep.objects.filter(cadence_id__in=cadences).select_related("step_channel")}
    quiet = QuietHours.current()
    opening = quiet_until(now, quiet, rails.tenant_timezone())
    later: dict[int, datetime.datetime] = {}  # enrollment -> its new due time (quiet hours, business days)
    finished: list[int] = []  # nothing left to run
    to_run: list[tuple[int, int]] = []  # (enrollment, step)
    info: dict[int, tuple[int, int, datetime.datetime]] = {}  # enrollment -> (cadence, contact, started)
    for enrollment_id, cadence_id, contact_id, step_id, started in due:
        info[enrollment_id] = (cadence_id, contact_id, started)
        step = steps.get(step_id) if step_id else None
        if step is None:
            finished.append(enrollment_id)
            continue
        if opening is not None and cadences[cadence_id].respect_quiet_hours:
            later[enrollment_id] = opening
            continue
        if step.only_business_days and now.astimezone(tz).weekday() not in days:
            later[enrollment_id] = next_business_moment(now, tz, days)
            continue
        to_run.append((enrollment_id, step.pk))
    to_run = _plan_room_hold(to_run, steps, cadences, later, now)
    won = _runs_insert(to_run, now)
    results: dict[int, tuple[str, str, str, int | None, str]] = {}  # run id -> status, code, detail, message, call
    exits: dict[int, tuple[str, str]] = {}  # enrollment -> (reason, detail)
    handed = 0
    _conditions(won, steps, info, results)
    by_channel: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    calls: list[tuple[int, int, int]] = []
    for run_id, enrollment_id, step_id in won:
        if run_id in results:
            continue
        step = steps[step_id]
        if step.action == StepAction.CALL:
            calls.append((run_id, enrollment_id, step_id))
        else:
            channel = step.step_channel or cadences[step.cadence_id].channel
            by_channel[channel.pk].append((run_id, enrollment_id, step_id))
    channels = {c.pk: c for c in Channel.objects.filter(pk__in=by_channel)}
    hold = {pk: c.respect_quiet_hours for pk, c in cadences.items()}  # the dispatcher holds them too
    for channel_id, rows in by_channel.items():
        handed += _messages_build(channels[channel_id], rows, steps, info, results, exits, hold, now)
    for run_id, enrollment_id, step_id in calls:
        handed += _call_place(run_id, enrollment_id, steps[step_id], info, results)
    _runs_record(results)
    if exits:
        for reason in {r for r, _d in exits.values()}:
            enrollments_stop(
                enrollments=Enrollment.objects.filter(pk__in=[e for e, (r, _d) in exits.items() if r == reason]),
                reason=reason,
            )
    ran = {enrollment_id for _r, enrollment_id, _s in won} | {e for e, _s in to_run}
    ran -= set(exits)
    _enrollments_advance(sorted(ran), results, won, cadences, steps, now, tz, days)
    if finished:
        Enrollment.objects.filter(pk__in=finished, status=EnrollmentStatus.ACTIVE).update(
            status=EnrollmentStatus.COMPLETED, finished_at=now, next_run_at=None
        )
    if later:
        _due_set(later)
    return handed, len(due)


def _plan_room_hold(
    to_run: list[tuple[int, int]],
    steps: dict[int, CadenceStep],
    cadences: dict[int, Cadence],
    later: dict[int, datetime.datetime],
    now: datetime.datetime,
) -> list[tuple[int, int]]:
    """Message steps past the plan's monthly messages of their channel kind are held, not run: the step
    waits (checked again every PLAN_LIMIT_RECHECK) with the reason on the enrollment, and runs when the
    month turns or the limit is raised. Returns the steps that run now."""
    room: dict[str, int | None] = {}
    kept: list[tuple[int, int]] = []
    held: dict[str, list[int]] = defaultdict(list)
    for enrollment_id, step_id in to_run:
        step = steps[step_id]
        if step.action != StepAction.CALL:
            kind = (step.step_channel or cadences[step.cadence_id].channel).kind
            if kind not in room:
                room[kind] = message_room(channel_kind=kind)
            left = room[kind]
            if left is not None and left <= 0:
                later[enrollment_id] = now + PLAN_LIMIT_RECHECK
                held[kind].append(enrollment_id)
                continue
            if left is not None:
                room[kind] = left - 1
        kept.append((enrollment_id, step_id))
    for kind, ids in held.items():
        reason = message_limit_refusal(channel_kind=kind)
        Enrollment.objects.filter(pk__in=ids).update(exit_detail=reason[:300])
        logger.warning("cadence steps of %s enrollments held at the plan's limit (%s)", len(ids), kind)
    return kept


def _runs_insert(pairs: list[tuple[int, int]], now: datetime.datetime) -> list[tuple[int, int, int]]:
    """Insert the runs; those that exist already (a step that ran) are left alone. Returns the inserted
    (run id, enrollment, step): only these run now."""
    if not pairs:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {StepRun._meta.db_table} "  # noqa: S608
            "(enrollment_id, step_id, status, code, detail, call_id, ran_at) "
            "SELECT e, s, 'queued', '', '', '', %s FROM unnest(%s::bigint[], %s::bigint[]) AS t(e, s) "
            "ON CONFLICT (enrollment_id, step_id) DO NOTHING RETURNING id, enrollment_id, step_id",
            [now, [p[0] for p in pairs], [p[1] for p in pairs]],
        )
        return [(int(a), int(b), int(c)) for a, b, c in cursor.fetchall()]


def _conditions(
    won: list[tuple[int, int, int]],
    steps: dict[int, CadenceStep],
    info: dict[int, tuple[int, int, datetime.datetime]],
    results: dict[int, tuple[str, str, str, int | None, str]],
) -> None:
    """Steps whose conditions do not hold are skipped with the reason code."""
    no_reply = [(r, e) for r, e, s in won if steps[s].only_if_no_reply]
    if no_reply:
        contact_ids = {info[e][1] for _r, e in no_reply}
        last_in = dict(
            Conversation.objects.filter(contact_id__in=contact_ids, last_inbound_at__isnull=False)
            .values("contact_id")
            .annotate(last=Max("last_inbound_at"))
            .values_list("contact_id", "last")
        )
        for run_id, enrollment_id in no_reply:
            _cadence, contact_id, started = info[enrollment_id]
            replied = last_in.get(contact_id)
            if replied is not None and replied >= started:
                results[run_id] = (StepRunStatus.SKIPPED, StepRunCode.REPLIED, "", None, "")
    staged: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for run_id, enrollment_id, step_id in won:
        stage_id = steps[step_id].only_in_stage_id
        if stage_id and run_id not in results:
            staged[stage_id].append((run_id, info[enrollment_id][1]))
    if staged:
        from kanban.selectors import contacts_in_stage

        for stage_id, rows in staged.items():
            inside = contacts_in_stage(stage_id=stage_id, contact_ids=[c for _r, c in rows])
            for run_id, contact_id in rows:
                if contact_id not in inside:
                    results[run_id] = (StepRunStatus.SKIPPED, StepRunCode.NOT_IN_STAGE, "", None, "")


def _messages_build(
    channel: Channel,
    rows: list[tuple[int, int, int]],
    steps: dict[int, CadenceStep],
    info: dict[int, tuple[int, int, datetime.datetime]],
    results: dict[int, tuple[str, str, str, int | None, str]],
    exits: dict[int, tuple[str, str]],
    hold: dict[int, bool],
    now: datetime.datetime,
) -> int:
    """The message steps of this channel become queued messages, in bulk, with the same refusals as any
    automated send (consent, the address, the 24-hour window, the duplicate guard). Returns how many."""
    caps = provider_class(channel.kind).capabilities
    medium = MEDIUM_OF_KIND[channel.kind]
    contact_ids = sorted({info[e][1] for _r, e, _s in rows})
    contacts = {
        c.pk: c
        for c in Contact.objects.filter(pk__in=contact_ids).only(
            "id", "phone", "name", "email", "wa_profile_name", "custom_fields"
        )
    }
    conversations = _conversations_of(channel, contact_ids)
    refused = set(
        ContactConsent.objects.filter(contact_id__in=contact_ids, medium=medium)
        .exclude(status=ConsentStatus.OPTED_IN)
        .values_list("contact_id", flat=True)
    )
    templates: dict[int, str] = {}
    window = caps.session_window_hours
    built: list[tuple[int, dict[str, Any]]] = []
    for run_id, enrollment_id, step_id in rows:
        step, contact_id = steps[step_id], info[enrollment_id][1]
        contact = contacts[contact_id]
        conversation_id, last_inbound = conversations[contact_id]
        if contact_id in refused:
            results[run_id] = (StepRunStatus.FAILED, StepRunCode.OPTED_OUT, "", None, "")
            exits[enrollment_id] = (ExitReason.OPTED_OUT, "")
            continue
        try:  # no phone: reachable only by a user id of this channel's portfolio (the BSUID rule)
            address_check(contact, channel, caps.user_ids)
        except ValidationError as exc:
            results[run_id] = (StepRunStatus.FAILED, StepRunCode.NO_ADDRESS, " ".join(exc.messages)[:300], None, "")
            continue
        if step.kind == ContentKind.TEMPLATE and not caps.templates:
            results[run_id] = (StepRunStatus.FAILED, StepRunCode.UNSUPPORTED, "", None, "")
            continue
        if (
            step.kind != ContentKind.TEMPLATE
            and window is not None
            and (last_inbound is None or now - last_inbound >= datetime.timedelta(hours=window))
        ):
            results[run_id] = (StepRunStatus.FAILED, StepRunCode.WINDOW_CLOSED, "", None, "")
            continue
        key = f"cadence:{enrollment_id}:{step.key}"
        if step.kind == ContentKind.TEMPLATE:
            if step.pk not in templates:
                templates[step.pk] = template_text(step, channel)
            variables = [content_spun(str(v), contact) for v in step.template_variables]
            content: dict[str, Any] = {
                "type": MessageType.TEMPLATE,
                "template_name": step.template_name,
                "template_language": step.template_language,
                "template_variables": {"body": variables},
                "body": template_preview_fill(templates[step.pk], variables),
            }
        else:
            content = {"type": MessageType.TEXT, "body": content_spun(step.body, contact)}
        built.append(
            (
                run_id,
                {
                    "conversation_id": conversation_id,
                    "idempotency_key": key,
                    "hold_quiet_hours": hold.get(step.cadence_id, False),
                    "template_name": "",
                    "template_language": "",
                    "template_variables": {},
                    **content,
                },
            )
        )
    if built:
        # The same words to the same person within the window, from any campaign or cadence: skipped.
        recent = _recent_fingerprints(contact_ids, now, {m["idempotency_key"] for _r, m in built})
        if recent:
            contact_of = {conversation_id: c for c, (conversation_id, _at) in conversations.items()}
            kept = []
            for run_id, message in built:
                fingerprint = rails.content_fingerprint(
                    type=message["type"], body=message["body"], template_name=message["template_name"]
                )
                if fingerprint in recent.get(contact_of[message["conversation_id"]], set()):
                    results[run_id] = (StepRunStatus.SKIPPED, StepRunCode.DUPLICATE, "", None, "")
                else:
                    kept.append((run_id, message))
            built = kept
    if not built:
        return 0
    ids = _messages_insert(channel, [m for _r, m in built], now)
    for run_id, message in built:
        results[run_id] = (StepRunStatus.QUEUED, StepRunCode.NONE, "", ids.get(message["idempotency_key"]), "")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Conversation._meta.db_table} SET last_message_at = %s WHERE id = ANY(%s)",  # noqa: S608
            [now, sorted({m["conversation_id"] for _r, m in built})],
        )
    from inbox.dispatcher import kick_on_commit

    kick_on_commit(channel.pk)
    return len(built)


# the columns that differ between a tick's messages (the batch's unique key last); every other column is
# the same for the batch
_VARYING = (
    "conversation_id",
    "hold_quiet_hours",
    "type",
    "body",
    "template_name",
    "template_language",
    "template_variables",
    "idempotency_key",
)


def _messages_insert(channel: Channel, rows: list[dict[str, Any]], now: datetime.datetime) -> dict[str, int]:
    """Queue these messages for the dispatcher in one INSERT ... SELECT FROM unnest(arrays) (the campaign
    build's columns_insert: each varying column one parameter, the rest from a model instance, so
    defaults stay the model's). A key that exists already (a replay) keeps its message: never two.
    Returns key -> message id."""
    template = Message(
        channel_id=channel.pk,
        direction=Direction.OUTBOUND,
        is_marketing=True,
        status=MessageStatus.QUEUED,
        queued_at=now,
        next_attempt_at=now,
    )
    written = columns_insert(
        Message, template, {name: [row[name] for row in rows] for name in _VARYING}, ignore_conflicts=True
    )
    ids = {str(k): int(i) for k, i in written.items()}
    missing = [row["idempotency_key"] for row in rows if row["idempotency_key"] not in ids]
    if missing:
        ids.update(Message.objects.filter(idempotency_key__in=missing).values_list("idempotency_key", "pk"))
    return ids


def _recent_fingerprints(contact_ids: list[int], now: datetime.datetime, own: set[str]) -> dict[int, set[str]]:
    """rails.recently_sent for a tick's batch: the fingerprints of the automated messages each contact got
    within DEDUPE_HOURS_CADENCE, on any channel (this batch's own keys, a replay, do not count)."""
    since = now - datetime.timedelta(hours=DEDUPE_HOURS_CADENCE)
    message, conversation = Message._meta.db_table, Conversation._meta.db_table
    found: dict[int, set[str]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.contact_id, m.idempotency_key, m.type, m.body, m.template_name, m.media_url "  # noqa: S608
            f"FROM {conversation} c JOIN {message} m ON m.conversation_id = c.id "
            "WHERE c.contact_id = ANY(%s) AND m.direction = 'out' AND m.is_marketing AND m.queued_at >= %s "
            "AND m.status <> 'failed'",
            [contact_ids, since],
        )
        for contact_id, key, kind, body, template_name, media_url in cursor.fetchall():
            if key in own:
                continue
            found.setdefault(int(contact_id), set()).add(
                rails.content_fingerprint(type=kind, body=body, template_name=template_name, media_url=media_url)
            )
    return found


def _conversations_of(channel: Channel, contact_ids: list[int]) -> dict[int, tuple[int, datetime.datetime | None]]:
    """contact -> (its conversation on the channel, when it last wrote there); missing ones are opened."""
    table = Conversation._meta.db_table
    query = f"SELECT contact_id, id, last_inbound_at FROM {table} WHERE channel_id = %s AND contact_id = ANY(%s)"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(query, [channel.pk, contact_ids])
        found = {int(c): (int(i), at) for c, i, at in cursor.fetchall()}
        missing = [c for c in contact_ids if c not in found]
        if missing:
            Conversation.objects.bulk_create(
                [Conversation(contact_id=c, channel=channel) for c in missing], ignore_conflicts=True
            )
            cursor.execute(query, [channel.pk, missing])
            found.update({int(c): (int(i), at) for c, i, at in cursor.fetchall()})
    return found


def _call_place(
    run_id: int,
    enrollment_id: int,
    step: CadenceStep,
    info: dict[int, tuple[int, int, datetime.datetime]],
    results: dict[int, tuple[str, str, str, int | None, str]],
) -> int:
    """A call step: whichever app contributes CADENCE_CALL_PLACE queues one call per key (nothing
    contributes: the step fails with `voice_unavailable`)."""
    cadence_id, contact_id, _started = info[enrollment_id]
    if not step.call_agent:
        results[run_id] = (StepRunStatus.FAILED, StepRunCode.NO_AGENT, "", None, "")
        return 0
    try:
        with transaction.atomic():
            placed = collect(
                CADENCE_CALL_PLACE,
                contact_id=contact_id,
                agent_id=step.call_agent,
                idempotency_key=f"cadence:{enrollment_id}:{step.key}",
                context={"cadence_id": cadence_id, "enrollment_id": enrollment_id, "step_key": str(step.key)},
            )
    except Exception as exc:  # the voice side's failure is this step's, never the tick's
        logger.exception("cadence call step failed", extra={"schema": _schema(), "enrollment": enrollment_id})
        results[run_id] = (StepRunStatus.FAILED, StepRunCode.VOICE_UNAVAILABLE, str(exc)[:300], None, "")
        return 0
    if not placed:
        results[run_id] = (StepRunStatus.FAILED, StepRunCode.VOICE_UNAVAILABLE, "", None, "")
        return 0
    results[run_id] = (StepRunStatus.PLACED, StepRunCode.NONE, "", None, str(placed[0])[:64])
    return 1


def _runs_record(results: dict[int, tuple[str, str, str, int | None, str]]) -> None:
    """One UPDATE ... FROM unnest(arrays) for the batch's runs (arrays: one parameter each, whatever the size)."""
    if not results:
        return
    columns: list[list[Any]] = [[], [], [], [], [], []]
    for run_id, row in results.items():
        for column, value in zip(columns, (run_id, *row), strict=True):
            column.append(value)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {StepRun._meta.db_table} AS r SET status = v.status, code = v.code, detail = v.detail, "  # noqa: S608
            "message_id = v.message_id, call_id = v.call_id "
            "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[]) "
            "AS v(id, status, code, detail, message_id, call_id) WHERE r.id = v.id",
            columns,
        )


def _enrollments_advance(
    ids: list[int],
    results: dict[int, tuple[str, str, str, int | None, str]],
    won: list[tuple[int, int, int]],
    cadences: dict[int, Cadence],
    steps: dict[int, CadenceStep],
    now: datetime.datetime,
    tz: zoneinfo.ZoneInfo,
    days: frozenset[int],
) -> None:
    """The enrollments that ran a step move on: last step, steps handed on, next step (by identity: the
    first live step, in order, that it has not run) and its due time, or completed when nothing is left.
    One read of their runs, one UPDATE ... FROM unnest."""
    if not ids:
        return
    handed = {e for r, e, _s in won if results.get(r, ("",))[0] in (StepRunStatus.QUEUED, StepRunStatus.PLACED)}
    ran: dict[int, set[int]] = defaultdict(set)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT enrollment_id, step_id FROM {StepRun._meta.db_table} WHERE enrollment_id = ANY(%s)",  # noqa: S608
            [ids],
        )
        for enrollment_id, step_id in cursor.fetchall():
            ran[enrollment_id].add(step_id)
    order: dict[int, list[CadenceStep]] = defaultdict(list)
    for step in sorted(steps.values(), key=lambda s: (s.position, s.pk)):
        if step.removed_at is None:
            order[step.cadence_id].append(step)
    cadence_of = dict(Enrollment.objects.filter(pk__in=ids).values_list("pk", "cadence_id"))
    at: dict[int, datetime.datetime] = {}
    columns: list[list[Any]] = [[], [], [], []]  # id, next step, due time, handed on (0/1)
    for enrollment_id in ids:
        following = next((s for s in order[cadence_of[enrollment_id]] if s.pk not in ran[enrollment_id]), None)
        if following is not None and following.pk not in at:
            at[following.pk] = step_run_at(following, now, tz, days)
        columns[0].append(enrollment_id)
        columns[1].append(following.pk if following else None)
        columns[2].append(at[following.pk] if following else None)
        columns[3].append(1 if enrollment_id in handed else 0)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Enrollment._meta.db_table} AS e SET last_step_id = e.next_step_id, "  # noqa: S608
            "steps_sent = e.steps_sent + v.handed, next_step_id = v.next_step, next_run_at = v.at, exit_detail = '', "
            "status = CASE WHEN v.next_step IS NULL THEN 'completed' ELSE e.status END, "
            "finished_at = CASE WHEN v.next_step IS NULL THEN %s ELSE e.finished_at END "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::int[]) AS v(id, next_step, at, handed) "
            "WHERE e.id = v.id AND e.status = 'active'",
            [now, *columns],
        )


def _due_set(due: dict[int, datetime.datetime]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Enrollment._meta.db_table} AS e SET next_run_at = v.at "  # noqa: S608
            "FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, at) WHERE e.id = v.id",
            [list(due), list(due.values())],
        )


def channels_for_steps() -> QuerySet[Channel]:
    """The channels a message step may use."""
    return Channel.objects.filter(kind__in=STEP_CHANNEL_KINDS).order_by("name")
