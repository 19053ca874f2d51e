"""Writes (and the live reads) of the tenant's voice numbers: Twilio through the `twilio` package (list,
search and buy, set the voice webhooks, verify an outgoing caller ID, place a test call), Retell's
import, and the preflight "can this number take calls?"."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from sms.client import twilio_client
from voice.models import Call, CallDirection, VoiceAgent, VoiceNumber, VoiceSettings
from voice.retell import RetellClient, RetellError
from voice.services import (
    _retell_failed,
    voice_agent_publish_alert,
    voice_inbound_agent,
    voice_settings_ensure,
    voice_webhook_urls,
)

logger = logging.getLogger(__name__)

COUNTRIES = ("BR", "US")  # searched in this order: Brazilian numbers first
TEST_CALL_TWIML = '<Response><Pause length="20"/><Hangup/></Response>'  # the calling leg only listens


@dataclass(frozen=True)
class TwilioNumber:
    sid: str
    phone_number: str
    friendly_name: str
    voice_url: str
    status_callback: str
    voice: bool


@dataclass(frozen=True)
class AvailableNumber:
    phone_number: str
    friendly_name: str
    locality: str
    region: str
    iso_country: str
    address_requirements: str


@dataclass(frozen=True)
class Check:
    """One line of the preflight: green (ok) or red with what to do about it."""

    key: str
    ok: bool
    label: str
    fix: str = ""


def _twilio() -> tuple[Client, VoiceSettings]:
    row = voice_settings_ensure()
    if not row.has_twilio:
        raise ValidationError(_("Set the Twilio voice account in the voice settings first."), code="no_twilio")
    return twilio_client(row.twilio_account_sid, row.twilio_auth_token), row


def _twilio_failed(exc: TwilioException) -> ValidationError:
    if isinstance(exc, TwilioRestException):
        logger.warning("twilio voice request failed: %s %s", exc.status, exc.code)
        if exc.status in (401, 403):
            return ValidationError(_("Twilio refused the account SID or token."), code="auth")
        if exc.status == 429 or exc.status >= 500:
            return ValidationError(_("Twilio is unavailable right now. Try again in a minute."), code="retryable")
        return ValidationError(
            _("Twilio refused the request (error %(code)s): %(reason)s")
            % {"code": exc.code, "reason": str(exc.msg)[:200]},
            code=f"twilio_{exc.code}",
        )
    return ValidationError(_("Twilio could not be reached. Try again in a minute."), code="retryable")


def _of(resource: Any) -> TwilioNumber:
    capabilities = getattr(resource, "capabilities", None) or {}
    return TwilioNumber(
        sid=str(resource.sid),
        phone_number=str(resource.phone_number),
        friendly_name=str(resource.friendly_name or ""),
        voice_url=str(resource.voice_url or ""),
        status_callback=str(resource.status_callback or ""),
        voice=bool(capabilities.get("voice", True)),
    )


def twilio_numbers_list() -> list[TwilioNumber]:
    """The numbers of the tenant's Twilio account, as Twilio has them now."""
    client, _row = _twilio()
    try:
        return [_of(item) for item in client.incoming_phone_numbers.list(limit=200)]
    except TwilioException as exc:
        raise _twilio_failed(exc) from exc


def twilio_numbers_search(*, country: str = "BR", contains: str = "", area_code: str = "") -> list[AvailableNumber]:
    """Numbers on sale in a country (Brazil by default) that take voice calls."""
    client, _row = _twilio()
    params: dict[str, Any] = {"voice_enabled": True, "limit": 20}
    if contains:
        params["contains"] = contains
    if area_code:
        params["area_code"] = area_code
    try:
        found = client.available_phone_numbers(country).local.list(**params)
    except TwilioException as exc:
        raise _twilio_failed(exc) from exc
    return [
        AvailableNumber(
            phone_number=str(item.phone_number),
            friendly_name=str(item.friendly_name or ""),
            locality=str(item.locality or ""),
            region=str(item.region or ""),
            iso_country=str(item.iso_country or country),
            address_requirements=str(item.address_requirements or "none"),
        )
        for item in found
    ]


def voice_number_buy(*, phone_number: str, agent: VoiceAgent | None = None) -> VoiceNumber:
    """Buy a number on the tenant's Twilio account with our voice webhooks already set, and keep it."""
    client, row = _twilio()
    urls = voice_webhook_urls(row=row)
    try:
        bought = client.incoming_phone_numbers.create(
            phone_number=phone_number,
            voice_url=urls["twilio"],
            voice_method="POST",
            status_callback=urls["twilio_status"],
            status_callback_method="POST",
        )
    except TwilioException as exc:
        raise _twilio_failed(exc) from exc
    remote = _of(bought)
    number, _created = VoiceNumber.objects.update_or_create(
        e164=remote.phone_number,
        defaults={
            "twilio_sid": remote.sid,
            "friendly_name": remote.friendly_name,
            "voice_url": remote.voice_url,
            "status_callback_url": remote.status_callback,
            "agent": agent,
        },
    )
    return number


def voice_number_adopt(*, phone_number: str) -> VoiceNumber:
    """Use for calls a number the Twilio account already has (found by the list)."""
    for remote in twilio_numbers_list():
        if remote.phone_number == phone_number:
            number, _created = VoiceNumber.objects.update_or_create(
                e164=remote.phone_number,
                defaults={
                    "twilio_sid": remote.sid,
                    "friendly_name": remote.friendly_name,
                    "voice_url": remote.voice_url,
                    "status_callback_url": remote.status_callback,
                },
            )
            return number
    raise ValidationError(_("This number is not on your Twilio account."), code="not_owned")


def voice_number_assign(*, number: VoiceNumber, agent: VoiceAgent | None) -> VoiceNumber:
    """The agent that answers this number (inbound); None: nobody (callers get the fallback)."""
    if agent is not None and not agent.answers_inbound:
        raise ValidationError(_("This agent only makes outbound calls."), code="outbound_only")
    previous = number.agent
    number.agent = agent
    number.save(update_fields=["agent", "updated_at"])
    for changed in {a.pk: a for a in (previous, agent) if a is not None}.values():
        voice_agent_publish_alert(agent=changed)  # the new one may be unpublished; the old one may be free
    return number


def voice_number_webhooks_set(*, number: VoiceNumber) -> VoiceNumber:
    """Point the number's Voice URL and status callback on Twilio at this tenant."""
    client, row = _twilio()
    urls = voice_webhook_urls(row=row)
    try:
        updated = client.incoming_phone_numbers(number.twilio_sid).update(
            voice_url=urls["twilio"],
            voice_method="POST",
            status_callback=urls["twilio_status"],
            status_callback_method="POST",
        )
    except TwilioException as exc:
        raise _twilio_failed(exc) from exc
    remote = _of(updated)
    number.voice_url, number.status_callback_url = remote.voice_url, remote.status_callback
    number.save(update_fields=["voice_url", "status_callback_url", "updated_at"])
    return number


def voice_number_retell_import(*, number: VoiceNumber) -> VoiceNumber:
    """Make the number known to Retell (outbound calls from a number Retell does not know fail), bound to
    its agents. Needs the SIP trunk's termination URI from the voice settings."""
    row = voice_settings_ensure()
    if not row.api_key:
        raise ValidationError(_("Set the Retell API key in the voice settings first."), code="no_api_key")
    if not row.sip_termination_uri:
        raise ValidationError(
            _("Set your SIP trunk's termination URI in the voice settings first."), code="no_termination_uri"
        )
    outbound = VoiceAgent.objects.filter(from_number=number.e164).exclude(direction="inbound").first()
    try:
        RetellClient(row.api_key).import_phone_number(
            phone_number=number.e164,
            termination_uri=row.sip_termination_uri,
            inbound_agent_id=number.agent.retell_agent_id if number.agent else "",
            outbound_agent_id=outbound.retell_agent_id if outbound else "",
        )
    except RetellError as exc:
        raise _retell_failed(exc) from exc
    number.retell_imported_at = timezone.now()
    number.save(update_fields=["retell_imported_at", "updated_at"])
    return number


def voice_number_caller_id_verify(*, number: VoiceNumber) -> str:
    """Ask Twilio to verify the number as an outgoing caller ID: Twilio calls it and the person types the
    code shown here. Returns the code; `voice_number_caller_id_check` confirms it later."""
    client, _row = _twilio()
    try:
        request = client.validation_requests.create(phone_number=number.e164, friendly_name=number.e164)
    except TwilioRestException as exc:
        if exc.code == 21450:  # already verified
            return voice_number_caller_id_check(number=number).caller_id_code
        raise _twilio_failed(exc) from exc
    except TwilioException as exc:
        raise _twilio_failed(exc) from exc
    code = str(request.validation_code or "")[:10]
    number.caller_id_code = code
    number.save(update_fields=["caller_id_code", "updated_at"])
    voice_number_caller_id_check(number=number)  # a quick answer may have confirmed it already
    return code


def voice_number_caller_id_check(*, number: VoiceNumber) -> VoiceNumber:
    """Is the number among the account's verified outgoing caller IDs (or its own Twilio number)?"""
    client, _row = _twilio()
    try:
        verified = client.outgoing_caller_ids.list(phone_number=number.e164, limit=5)
    except TwilioException as exc:
        raise _twilio_failed(exc) from exc
    if any(str(item.phone_number) == number.e164 for item in verified):
        number.caller_id_verified_at = number.caller_id_verified_at or timezone.now()
        number.caller_id_code = ""
        number.save(update_fields=["caller_id_verified_at", "caller_id_code", "updated_at"])
    return number


def voice_number_test_call(*, number: VoiceNumber) -> VoiceNumber:
    """Have Twilio call the number: the call comes in through its Voice URL like a customer's would,
    and the preflight reads how it was answered."""
    client, _row = _twilio()
    try:
        placed = client.calls.create(to=number.e164, from_=number.e164, twiml=TEST_CALL_TWIML)
    except TwilioException as exc:
        raise _twilio_failed(exc) from exc
    number.last_test_call_sid, number.last_test_call_at = str(placed.sid), timezone.now()
    number.save(update_fields=["last_test_call_sid", "last_test_call_at", "updated_at"])
    return number


def voice_number_preflight(*, number: VoiceNumber) -> list[Check]:
    """Can this number take calls? Each check green, or red with the fix. Asks Twilio and Retell live."""
    checks: list[Check] = []
    agent, cause = voice_inbound_agent(number=number.e164)
    if agent is not None:
        checks.append(Check("agent", True, _("Agent %(name)s is published and answers it.") % {"name": agent.name}))
    elif cause == "agent_not_published":
        checks.append(
            Check("agent", False, _("Its agent is not published."), _("Open the agent and press Sync and publish."))
        )
    else:
        checks.append(
            Check("agent", False, _("No agent answers this number."), _("Choose an inbound agent for it below."))
        )

    row = voice_settings_ensure()
    urls = voice_webhook_urls(row=row)
    try:
        remote = next((n for n in twilio_numbers_list() if n.phone_number == number.e164), None)
    except ValidationError as exc:
        remote = None
        checks.append(Check("webhooks", False, _("Twilio could not be asked."), " ".join(exc.messages)))
    else:
        if remote is None:
            checks.append(
                Check("webhooks", False, _("Twilio does not list this number."), _("Check the Twilio account."))
            )
        elif remote.voice_url == urls["twilio"] and remote.status_callback == urls["twilio_status"]:
            number.voice_url, number.status_callback_url = remote.voice_url, remote.status_callback
            number.save(update_fields=["voice_url", "status_callback_url", "updated_at"])
            checks.append(Check("webhooks", True, _("Twilio sends its calls to this workspace.")))
        else:
            checks.append(
                Check(
                    "webhooks",
                    False,
                    _("Twilio's Voice URL or status callback for it is not this workspace's."),
                    _("Press Set webhooks."),
                )
            )

    checks.append(_retell_check(number, row))

    test = Call.objects.filter(twilio_call_sid=number.last_test_call_sid).first() if number.last_test_call_sid else None
    if not number.last_test_call_sid:
        checks.append(Check("answering", False, _("No test call yet."), _("Press Make a test call, then check again.")))
    elif test is None:
        checks.append(
            Check(
                "answering",
                False,
                _("The test call never reached this workspace's webhook."),
                _("Make sure %(url)s can be reached from the internet, then set the webhooks again.")
                % {"url": urls["twilio"]},
            )
        )
    else:
        checks.append(Check("answering", True, _("The webhook answered the test call.")))
        if test.fallback_cause:
            checks.append(
                Check(
                    "test_call",
                    False,
                    _("The last test call got the fallback: %(cause)s.") % {"cause": test.get_fallback_cause_display()},
                    _("Fix the red lines above, then make another test call."),
                )
            )
        elif test.retell_call_id:
            checks.append(Check("test_call", True, _("The last test call reached the agent.")))
        else:
            checks.append(
                Check(
                    "test_call",
                    False,
                    _("The test call is still being put through to the agent."),
                    _("Check again in a few seconds."),
                )
            )
    return checks


def _retell_check(number: VoiceNumber, row: VoiceSettings) -> Check:
    if not row.api_key:
        return Check("retell", False, _("The Retell API key is not set."), _("Set it in the voice settings."))
    try:
        RetellClient(row.api_key).get_phone_number(number.e164)
    except RetellError as exc:
        if exc.status == 404:
            return Check("retell", False, _("Retell does not know this number."), _("Press Import into Retell."))
        return Check("retell", False, _("Retell could not be asked."), " ".join(_retell_failed(exc).messages))
    return Check("retell", True, _("Retell knows this number."))


def voice_numbers_inbound_recent(*, number: VoiceNumber, limit: int = 10) -> list[Call]:
    return list(Call.objects.filter(direction=CallDirection.INBOUND, to_number=number.e164)[:limit])
