"""Property-based tests (hypothesis) of the phone parser: whatever a person or a spreadsheet gives it, it
returns a valid E.164 number or refuses with a reason; never an exception of another kind, never a number
that cannot exist."""

from __future__ import annotations

import re

import phonenumbers
import pytest
from django.core.exceptions import ValidationError
from hypothesis import example, given
from hypothesis import strategies as st

from crm.phones import BR_AREA_CODES, SERVICE_TYPES, phone_normalize

DDDS = sorted(BR_AREA_CODES)
NOT_DDDS = sorted(set(range(10, 100)) - BR_AREA_CODES - {30})  # 30 is a shared-cost prefix, see test_phones
E164 = re.compile(r"\+[1-9]\d{6,14}")

mobile = st.integers(0, 99_999_999).map(lambda n: f"9{n:08d}")
landline = st.tuples(st.sampled_from("2345"), st.integers(0, 9_999_999)).map(lambda t: f"{t[0]}{t[1]:07d}")
phone_like_text = st.text(alphabet="0123456789 +-().,eE'x", max_size=24)


def _outcome(raw: str) -> str | None:
    try:
        return phone_normalize(raw)
    except ValidationError:
        return None


@given(st.one_of(st.text(max_size=40), phone_like_text))
@example("+5511987654321")
@example("0800 123 4567")
def test_any_text_is_a_valid_e164_number_or_a_refusal(raw: str) -> None:
    result = _outcome(raw)
    if result is None:
        return
    assert E164.fullmatch(result), result
    number = phonenumbers.parse(result)
    assert phonenumbers.is_valid_number(number)
    assert phonenumbers.number_type(number) not in SERVICE_TYPES
    assert phone_normalize(result) == result  # idempotent: the stored form is accepted as it is


@given(st.sampled_from(DDDS), mobile, st.sampled_from(["12", "14", "15", "21", "31", "41", "43"]))
def test_every_way_of_writing_a_brazilian_mobile_gives_one_number(ddd: int, number: str, carrier: str) -> None:
    e164 = f"+55{ddd}{number}"
    spellings = [
        e164,
        f"55{ddd}{number}",
        f"({ddd}) {number[:5]}-{number[5:]}",
        f"{ddd} {number}",
        f"0{ddd} {number}",
        f"0 {carrier} {ddd} {number}",
        f"+55 ({ddd}) {number[:5]}-{number[5:]}",
        f"whatsapp:{e164}",
        f"{ddd}{number}.0",  # a spreadsheet's float
        f"55{ddd}{number}.0",
    ]
    assert {phone_normalize(s) for s in spellings} == {e164}


@given(st.sampled_from(DDDS), st.integers(0, 9_999_999), st.sampled_from("6789"))
def test_an_old_eight_digit_mobile_gains_the_ninth_digit(ddd: int, rest: int, first: str) -> None:
    old = f"{first}{rest:07d}"
    as_written = phonenumbers.parse(f"+55{ddd}{old}")
    # Kept as written when that is itself a valid number (11 7xxx-xxxx is a mobile range of its own).
    expected = f"+55{ddd}{old}" if phonenumbers.is_valid_number(as_written) else f"+55{ddd}9{old}"
    assert phone_normalize(f"({ddd}) {old[:4]}-{old[4:]}") == expected


def _is_service(national: str) -> bool:
    number = phonenumbers.PhoneNumber(country_code=55, national_number=int(national))
    return phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in SERVICE_TYPES


@given(st.sampled_from(NOT_DDDS), st.one_of(mobile, landline))
def test_an_area_code_brazil_does_not_have_is_refused_as_such(ddd: int, number: str) -> None:
    with pytest.raises(ValidationError) as refused:
        phone_normalize(f"({ddd}) {number}")
    if ddd == 90:  # also Brazil's collect-call prefix: what follows may be read as the number
        assert refused.value.code in ("phone_area_code", "phone_no_area_code", "phone_service")
    else:
        assert refused.value.code == "phone_area_code"


@given(st.one_of(mobile, landline))
def test_a_number_without_area_code_is_refused_never_given_one(number: str) -> None:
    with pytest.raises(ValidationError) as refused:
        phone_normalize(f"{number[:-4]}-{number[-4:]}")
    # 8 and 9 digits are also the shapes of national service numbers (4004-xxxx, 0900 xxx xxx):
    # refused either way, named a service number only when it is one.
    assert refused.value.code == ("phone_service" if _is_service(number) else "phone_no_area_code")


@given(st.sampled_from(DDDS), mobile, st.integers(1, 8), st.sampled_from(["E+", "E", "e+"]))
def test_scientific_notation_is_refused_because_digits_were_lost(ddd: int, number: str, places: int, mark: str) -> None:
    value = float(f"55{ddd}{number}")
    mantissa, exponent = f"{value:.{places}E}".split("E")
    for raw in (f"{mantissa}{mark}{int(exponent)}", f"{mantissa.replace('.', ',')}{mark}{int(exponent)}"):
        with pytest.raises(ValidationError) as refused:
            phone_normalize(raw)
        assert refused.value.code == "phone_scientific"


@given(st.sampled_from(["0800", "0300", "0500", "0900"]), st.integers(0, 9_999_999))
def test_service_numbers_are_not_contacts(prefix: str, rest: int) -> None:
    raw = f"{prefix} {rest:07d}"
    result = _outcome(raw)
    assert result is None, f"{raw} accepted as {result}"
