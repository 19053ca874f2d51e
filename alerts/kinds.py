"""What each kind of alert says: a title, what happened and the fix, worded from the alert's `detail`
(codes and ids the announcing app sent), with a link to the page where the fix is.

Announcers never send text a person reads; this registry is the one place it is written (pt-BR and
English through gettext). A kind missing from the registry is still shown, with its code."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.urls import NoReverseMatch, reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from tenants.models import Metric

CHANNEL_DISCONNECTED = "channel.disconnected"
CHANNEL_NEEDS_RESCAN = "channel.needs_rescan"
CHANNEL_TOKEN_REJECTED = "channel.token_rejected"  # noqa: S105 (a kind name)
CAMPAIGN_AUTO_PAUSED = "campaign.auto_paused"
WEBHOOK_FAILING = "webhook.failing"
WEBHOOK_DISABLED = "webhook.disabled"
TEMPLATE_REJECTED = "template.rejected"
QUALITY_DROPPED = "channel.quality_dropped"
VOICE_INBOUND_FALLBACK = "voice.inbound_fallback"
VOICE_AGENT_UNPUBLISHED = "voice.agent_unpublished"
USAGE_LIMIT_NEAR = "usage.limit_near"
USAGE_LIMIT_REACHED = "usage.limit_reached"


class _Lenient(dict[str, Any]):
    """`detail` for %-formatting: a field the announcer did not send shows as "?" instead of failing."""

    def __missing__(self, key: str) -> str:
        return "?"


def _link(name: str, *args_from: str) -> Callable[[Mapping[str, Any]], str]:
    def build(detail: Mapping[str, Any]) -> str:
        args = [detail.get(field) for field in args_from]
        if any(not str(a or "").isdigit() for a in args):
            args = []
        try:
            return reverse(name, args=[int(str(a)) for a in args]) if args else reverse(name)
        except NoReverseMatch:
            return reverse(name) if args else ""

    return build


@dataclass(frozen=True)
class Kind:
    title: Promise
    happened: Promise
    fix: Promise
    link: Callable[[Mapping[str, Any]], str]
    link_label: Promise
    level: str = "warning"  # warning | error (the badge and the toast)


KINDS: dict[str, Kind] = {
    CHANNEL_DISCONNECTED: Kind(
        title=_("Channel %(name)s is disconnected"),
        happened=_("The WhatsApp (QR) number %(name)s lost its connection and has not come back (%(detail)s)."),
        fix=_(
            "Check that the phone is switched on and online. If it does not reconnect in a few minutes, open "
            "the channel and link it again."
        ),
        link=_link("qr_channel", "channel_id"),
        link_label=_("Open the channel"),
        level="error",
    ),
    CHANNEL_NEEDS_RESCAN: Kind(
        title=_("Channel %(name)s needs a new QR scan"),
        happened=_("WhatsApp logged the number %(name)s out (%(detail)s): nothing is sent or received on it."),
        fix=_("Open the channel and scan the QR code again with the phone of that number."),
        link=_link("qr_channel", "channel_id"),
        link_label=_("Scan the QR code"),
        level="error",
    ),
    CHANNEL_TOKEN_REJECTED: Kind(
        title=_("The provider refused the credentials of %(name)s"),
        happened=_(
            "%(provider)s answered error %(code)s (invalid or expired credentials) to a send on %(name)s: "
            "messages on it are failing."
        ),
        fix=_(
            "Generate a new access token (Meta) or auth token (Twilio) and connect the channel again with it. "
            "The alert closes by itself at the next message that goes through."
        ),
        link=_link("channel_list"),
        link_label=_("Open Channels"),
        level="error",
    ),
    CAMPAIGN_AUTO_PAUSED: Kind(
        title=_("Campaign %(name)s was paused automatically"),
        happened=_(
            "%(failed)s of its last %(window)s sends failed (more than %(threshold)s%%). Most common reason: "
            "%(common)s."
        ),
        fix=_(
            "Look at the failed recipients on the campaign page, fix the cause (the channel, the template, the "
            "list) and resume the campaign."
        ),
        link=_link("campaign_detail", "campaign_id"),
        link_label=_("Open the campaign"),
    ),
    WEBHOOK_FAILING: Kind(
        title=_("Webhook endpoint %(url)s is failing"),
        happened=_("Deliveries to %(url)s fail (last answer: %(status)s). They are being retried."),
        fix=_(
            "Check that the receiving server is up and answers 2xx. The endpoint is switched off after days of "
            "failures; the alert closes at the next delivery that succeeds."
        ),
        link=_link("webhook_endpoint", "endpoint_id"),
        link_label=_("Open the endpoint"),
    ),
    WEBHOOK_DISABLED: Kind(
        title=_("Webhook endpoint %(url)s was switched off"),
        happened=_("Nothing more is delivered to %(url)s: %(reason)s."),
        fix=_("Fix the receiving server, then switch the endpoint on again: the deliveries that waited go then."),
        link=_link("webhook_endpoint", "endpoint_id"),
        link_label=_("Open the endpoint"),
        level="error",
    ),
    TEMPLATE_REJECTED: Kind(
        title=_("Template %(name)s was rejected"),
        happened=_("Meta rejected the message template %(name)s (reason: %(reason)s). It cannot be sent."),
        fix=_(
            "Edit the template following Meta's reason (wording, category, variables) and submit it again, or "
            "use another approved template."
        ),
        link=_link("template_list", "channel_id"),
        link_label=_("Open the templates"),
    ),
    QUALITY_DROPPED: Kind(
        title=_("The quality rating of %(number)s dropped"),
        happened=_(
            "Meta flagged the number %(number)s (%(event)s; messaging limit now %(limit)s): too many people "
            "block or report its messages."
        ),
        fix=_(
            "Send only to people who asked for your messages, slow campaigns down and make them easy to stop. "
            "The rating recovers in about a week of good sending."
        ),
        link=_link("channel_list"),
        link_label=_("Open Channels"),
        level="error",
    ),
    VOICE_INBOUND_FALLBACK: Kind(
        title=_("Calls to %(number)s are going to the fallback"),
        happened=_("A call to %(number)s could not reach a voice agent (%(cause)s) and was answered by the fallback."),
        fix=_("Publish an inbound voice agent for this number, or check the Retell API key in the voice settings."),
        link=_link("voice_agent_list"),
        link_label=_("Open voice agents"),
        level="error",
    ),
    VOICE_AGENT_UNPUBLISHED: Kind(
        title=_("Voice agent %(name)s is not published"),
        happened=_(
            "The agent %(name)s answers %(numbers)s but is not published on Retell (%(status)s: %(reason)s): "
            "callers to those numbers get the fallback."
        ),
        fix=_("Open the agent, correct what the reason names and press Sync and publish."),
        link=_link("voice_agent_edit", "agent_id"),
        link_label=_("Open the agent"),
        level="error",
    ),
    USAGE_LIMIT_NEAR: Kind(
        title=_("%(metric)s is at %(percent)s%% of the plan"),
        happened=_("This month %(used)s of %(limit)s %(metric)s are used."),
        fix=_("Ask for a larger plan before the limit is reached: at the limit, sends are refused."),
        link=_link("usage"),
        link_label=_("Open Usage"),
    ),
    USAGE_LIMIT_REACHED: Kind(
        title=_("The plan's limit of %(metric)s is reached"),
        happened=_("This month %(used)s of %(limit)s %(metric)s are used: sends past it are refused."),
        fix=_("Ask for a larger plan or wait for the next month."),
        link=_link("usage"),
        link_label=_("Open Usage"),
        level="error",
    ),
}


@dataclass(frozen=True)
class Worded:
    title: str
    happened: str
    fix: str
    link: str
    link_label: str
    level: str


def word(kind: str, detail: Mapping[str, Any]) -> Worded:
    """The alert in the active language, filled from `detail`."""
    spec = KINDS.get(kind)
    values = _Lenient({k: v for k, v in detail.items() if isinstance(v, str | int | float)})
    if kind in (USAGE_LIMIT_NEAR, USAGE_LIMIT_REACHED) and values.get("metric") in Metric.values:
        values["metric"] = str(Metric(values["metric"]).label)  # the announcer sent the code
    if spec is None:
        return Worded(kind, "", "", "", "", "warning")
    return Worded(
        title=str(spec.title) % values,
        happened=str(spec.happened) % values,
        fix=str(spec.fix) % values,
        link=spec.link(detail),
        link_label=str(spec.link_label),
        level=spec.level,
    )
