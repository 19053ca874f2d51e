"""Meta's Embedded Signup (v4): a business connects its number through Meta's own window.

The browser only relays what Meta's window said (the session-info ids and the code); nothing of it is
trusted. The code is exchanged server to server for a business token, Meta is asked which WABA that
token was granted (debug_token's granular scopes) and what the number is, and only then is the channel
created (with the same ownership checks and route claims as every channel), the number registered
(unless it stays on the WhatsApp Business app) and the platform's app subscribed to the WABA's webhooks.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from inbox.models import Channel, ChannelKind, ChannelOnboarding
from inbox.services import channel_create, channel_delete
from whatsapp.client import GraphClient, GraphError

logger = logging.getLogger(__name__)

# The session-info events Meta's window posts (type WA_EMBEDDED_SIGNUP).
FINISH = "FINISH"  # a Cloud API number
FINISH_ONLY_WABA = "FINISH_ONLY_WABA"  # a WABA, but no phone number yet
FINISH_COEXISTENCE = "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING"  # the WhatsApp Business app stays on the number
FINISH_EVENTS = frozenset({FINISH, FINISH_ONLY_WABA, FINISH_COEXISTENCE})
GRAPH_ID = re.compile(r"^[0-9]{1,20}$")
# Meta's answers about the code: expired (36007), already used (36009), not a code (100 with no subcode).
CODE_EXPIRED, CODE_USED = 36007, 36009
WABA_SCOPE = "whatsapp_business_management"
MSG_META_DOWN = gettext_lazy("Meta could not be reached to finish connecting. Try again.")


@dataclass(frozen=True)
class SessionInfo:
    """What the browser relays from Meta's window: the FB.login code and the session-info message."""

    code: str
    event: str
    waba_id: str
    phone_number_id: str = ""
    business_id: str = ""


def signup_config() -> dict[str, Any] | None:
    """What the channels page passes to FB.init / FB.login; None when the platform has no Meta app set."""
    if not (settings.META_APP_ID and settings.META_ES_CONFIG_ID and settings.META_APP_SECRET):
        return None
    return {
        "app_id": settings.META_APP_ID,
        "config_id": settings.META_ES_CONFIG_ID,
        "graph_version": settings.META_GRAPH_VERSION,
        "sdk_url": settings.META_SDK_URL,
        "origins": " ".join(settings.META_ES_ORIGINS),
        # v4: the session-info message comes for every flow; featureType offers the Business app choice.
        "feature_type": "whatsapp_business_app_onboarding" if settings.META_ES_COEXISTENCE else "",
        "version": "v4",
    }


def _code_exchange(code: str) -> str:
    try:
        token = GraphClient("").exchange_code(
            app_id=settings.META_APP_ID, app_secret=settings.META_APP_SECRET, code=code
        )
    except GraphError as exc:
        logger.warning("embedded signup: code exchange refused (%s, subcode %s)", exc.code, exc.subcode)
        if exc.status and exc.status < 500 and exc.code in (100, 190):
            raise ValidationError(
                _(
                    "Meta's sign-in expired before we could finish (the code is valid for a few seconds and only "
                    "once). Click Connect WhatsApp to try again."
                ),
                code="code_expired",
            ) from exc
        if exc.status and exc.status < 500:  # our app id or secret refused: ours to fix, not the tenant's
            logger.error("embedded signup: Meta refused the platform's app credentials (%s)", exc.message)
            raise ValidationError(
                _("WhatsApp connection is not set up correctly on this platform. Please contact support."),
                code="app_refused",
            ) from exc
        raise ValidationError(MSG_META_DOWN, code="meta_down") from exc
    if not token:
        raise ValidationError(MSG_META_DOWN, code="meta_down")
    return token


def _granted_wabas(token: str) -> set[str]:
    """The WABAs Meta granted this business token (debug_token with the platform's app token)."""
    client = GraphClient(token)
    try:
        info = client.debug_token(app_id=settings.META_APP_ID, app_secret=settings.META_APP_SECRET, token=token)
    except GraphError as exc:
        logger.error("embedded signup: debug_token failed (%s)", exc.message)
        raise ValidationError(MSG_META_DOWN, code="meta_down") from exc
    if not info.get("is_valid") or str(info.get("app_id")) != settings.META_APP_ID:
        raise ValidationError(_("Meta did not confirm this connection. Try again."), code="token_invalid")
    return {
        str(target)
        for scope in info.get("granular_scopes") or []
        if isinstance(scope, dict) and scope.get("scope") == WABA_SCOPE
        for target in scope.get("target_ids") or []
    }


def embedded_signup_complete(*, session: SessionInfo) -> Channel:
    """Finish an Embedded Signup: exchange the code, prove the token was granted this WABA and can use this
    number, create the channel (routes claimed; a number another workspace holds is refused), register the
    number (not for coexistence) and subscribe the platform's app to the WABA's webhooks. ValidationError
    with a message for the tenant when any step fails; nothing stays half-connected."""
    if signup_config() is None:
        raise ValidationError(_("WhatsApp connection is not set up on this platform."), code="not_configured")
    if session.event not in FINISH_EVENTS:
        raise ValidationError(_("Meta's window did not finish. Click Connect WhatsApp to try again."), code="event")
    for value in (session.waba_id, session.phone_number_id or "0", session.business_id or "0"):
        if not GRAPH_ID.match(value):
            raise ValidationError(_("Meta's window sent ids we do not understand. Try again."), code="ids")
    token = _code_exchange(session.code)  # first: the code is single use and lives seconds
    if session.event == FINISH_ONLY_WABA or not session.phone_number_id:
        raise ValidationError(
            _(
                "Your WhatsApp Business Account was shared, but no phone number was added to it. Add a number in "
                "Meta's WhatsApp Manager, then click Connect WhatsApp again."
            ),
            code="no_number",
        )
    if session.waba_id not in _granted_wabas(token):
        raise ValidationError(
            _(
                "Meta did not give us access to WhatsApp Business Account %(waba)s. Try again and select it in "
                "Meta's window."
            )
            % {"waba": session.waba_id},
            code="waba_not_granted",
        )
    client = GraphClient(token)
    try:
        number = client.phone_number(session.phone_number_id)
    except GraphError as exc:
        raise ValidationError(
            _("Meta did not give us access to this phone number. Try again and select it in Meta's window."),
            code="number_not_granted",
        ) from exc
    display = str(number.get("display_phone_number", ""))
    # Coexistence is what Meta says about the number, not what the browser relayed.
    coexistence = (
        bool(number.get("is_on_biz_app")) if "is_on_biz_app" in number else session.event == FINISH_COEXISTENCE
    )
    pin = f"{secrets.randbelow(10**6):06d}"
    credentials = {"access_token": token, "business_id": session.business_id, "pin": pin}
    channel = channel_create(  # proves token, WABA and number against Graph again, claims the routes
        kind=ChannelKind.WHATSAPP_CLOUD,
        name=str(number.get("verified_name") or display)[:80],
        phone_number="+" + re.sub(r"\D", "", display),
        credentials=credentials,
        waba_id=session.waba_id,
        phone_number_id=session.phone_number_id,
        onboarding=ChannelOnboarding.EMBEDDED_SIGNUP,
        coexistence=coexistence,
    )
    try:
        if not coexistence:  # a Business app number is already registered; registering it would take it away
            client.register_number(session.phone_number_id, pin)
        client.subscribe_app(session.waba_id)
    except GraphError as exc:
        logger.warning("embedded signup: register/subscribe failed (%s %s); channel removed", exc.code, exc.message)
        channel_delete(channel=channel)
        raise ValidationError(
            _("Meta refused to activate this number (%(reason)s). Try again in a few minutes.")
            % {"reason": exc.message},
            code="activate",
        ) from exc
    return channel
