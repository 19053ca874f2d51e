"""Phone numbers: from what a person typed, a spreadsheet held or a provider sent, to E.164 or a reason.

A number that cannot exist costs a tenant money and quality rating in a campaign, so a number typed or
imported must be *valid* (libphonenumber's `is_valid_number`, not merely of a possible length), and the
reason it is not is said in words: an area code Brazil does not have, no area code at all (we never
assume one), a service number (0800, 0300, 4004, short codes) that is no person's, or digits a
spreadsheet lost. A number a provider gives us (the sender of a message) exists by definition, so it
is only checked for being a possible number: libphonenumber's metadata lags behind new ranges.
"""

from __future__ import annotations

import re

import phonenumbers
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from phonenumbers import PhoneNumberType

# The 67 Brazilian area codes (DDD) in use (ANATEL's national numbering plan).
BR_AREA_CODES = frozenset(
    {11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 24, 27, 28, 31, 32, 33, 34, 35, 37, 38}
    | {41, 42, 43, 44, 45, 46, 47, 48, 49, 51, 53, 54, 55, 61, 62, 63, 64, 65, 66, 67, 68, 69}
    | {71, 73, 74, 75, 77, 79, 81, 82, 83, 84, 85, 86, 87, 88, 89, 91, 92, 93, 94, 95, 96, 97, 98, 99}
)
SERVICE_TYPES = frozenset(
    {
        PhoneNumberType.TOLL_FREE,  # 0800
        PhoneNumberType.PREMIUM_RATE,  # 0900, 0500
        PhoneNumberType.SHARED_COST,  # 0300, 4004, 3003
        PhoneNumberType.UAN,
        PhoneNumberType.VOICEMAIL,
    }
)
SHORT_CODE_MAX_DIGITS = 6  # SMS short codes (28282) and emergency/utility numbers (190)

# 5.51198765432E+12 or 5,51E12: the spreadsheet kept a few significant digits of a number read as a float.
_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+")
# 5511987654321.0: an integer read as a float and written back with its fraction.
_FLOAT_TAIL = re.compile(r"(\+?\d{8,})\.0")
_SEPARATORS = re.compile(r"[\s().\-/]")


def phone_normalize(raw: str, default_region: str = "BR", *, from_provider: bool = False) -> str:
    """E.164 for a phone typed by a person, read from a spreadsheet or sent by a provider (`5511...`,
    `+55 (11) 9...`, `whatsapp:+55...`, `0 21 11 9...`). Raises ValidationError with the reason when
    the number cannot be a person's. `from_provider=True` is for numbers a provider reports (they
    exist): only possibility is checked, so a range newer than libphonenumber's metadata still lands."""
    text = raw.strip().removeprefix("whatsapp:").removeprefix("tel:").lstrip("'").strip()
    if not text:
        raise ValidationError(_("Enter a phone number."), code="phone_empty")
    if _SCIENTIFIC.fullmatch(text):
        raise _invalid(
            raw,
            _("digits were lost: the spreadsheet turned it into scientific notation (format the column as text)"),
            "phone_scientific",
        )
    tail = _FLOAT_TAIL.fullmatch(text)
    if tail:
        text = tail.group(1)
    compact = _SEPARATORS.sub("", text)
    if compact.isdigit() and len(compact) >= 12 and not compact.startswith("0"):
        text = "+" + compact  # providers and spreadsheets hold bare international numbers: 5511987654321
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE and text.startswith("+"):
            raise _invalid(raw, _("the country code does not exist"), "phone_country") from exc
        raise ValidationError(_("%(phone)s is not a phone number.") % {"phone": raw}, code="phone_parse") from exc
    number = _with_ninth_digit(number)
    if from_provider:
        if not phonenumbers.is_possible_number(number):
            raise _invalid(raw, _possibility_reason(number), "phone_impossible")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    _refuse_invalid(raw, number)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _refuse_invalid(raw: str, number: phonenumbers.PhoneNumber) -> None:
    # libphonenumber's is_valid_number is exactly "number_type is not UNKNOWN"; one call gives both
    # (the property tests check every accepted number with is_valid_number itself).
    kind = phonenumbers.number_type(number)
    valid = kind != PhoneNumberType.UNKNOWN
    if kind in SERVICE_TYPES:
        raise _invalid(raw, _("it is a service number (0800, 0300, 4004...), not a person's"), "phone_service")
    national = str(number.national_number)
    if not valid and len(national) <= SHORT_CODE_MAX_DIGITS:
        if phonenumbers.is_valid_short_number(number) or len(national) >= 4:
            raise _invalid(raw, _("it is a short code or service number, not a person's"), "phone_service")
        raise _invalid(raw, _("it is too short"), "phone_short")
    if number.country_code == 55:
        if len(national) in (8, 9):
            raise _invalid(raw, _("it has no area code (DDD)"), "phone_no_area_code")
        if len(national) in (10, 11) and int(national[:2]) not in BR_AREA_CODES:
            raise _invalid(
                raw,
                _("the area code %(ddd)s does not exist in Brazil") % {"ddd": national[:2]},
                "phone_area_code",
            )
    if not valid:
        reason = _possibility_reason(number) if not phonenumbers.is_possible_number(number) else ""
        raise _invalid(raw, reason or _("no such number exists in its country's numbering plan"), "phone_invalid")


def _possibility_reason(number: phonenumbers.PhoneNumber) -> str:
    result = phonenumbers.is_possible_number_with_reason(number)
    if result == phonenumbers.ValidationResult.TOO_SHORT:
        return _("it is too short")
    if result == phonenumbers.ValidationResult.TOO_LONG:
        return _("it is too long")
    if result == phonenumbers.ValidationResult.INVALID_COUNTRY_CODE:
        return _("the country code does not exist")
    return _("it has the wrong number of digits")


def _invalid(raw: str, reason: str, code: str) -> ValidationError:
    return ValidationError(
        _("%(phone)s is not a valid phone number: %(reason)s.") % {"phone": raw.strip(), "reason": reason}, code=code
    )


def _with_ninth_digit(number: phonenumbers.PhoneNumber) -> phonenumbers.PhoneNumber:
    """Brazilian mobiles gained a leading 9 (2012-2016); old 8-digit mobile numbers still circulate in
    spreadsheets and in WhatsApp ids. `(11) 8765-4321` becomes `+55 11 98765-4321` when that is a valid mobile."""
    national = str(number.national_number)
    if number.country_code != 55 or len(national) != 10 or national[2] not in "6789":
        return number
    if phonenumbers.is_valid_number(number):
        return number
    candidate = phonenumbers.PhoneNumber(country_code=55, national_number=int(national[:2] + "9" + national[2:]))
    return candidate if phonenumbers.is_valid_number(candidate) else number
