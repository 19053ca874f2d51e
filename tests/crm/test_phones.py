from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from crm.services import consent_keyword, phone_normalize


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("5511987654321", "+5511987654321"),  # as Meta sends wa_id
        ("whatsapp:+5511987654321", "+5511987654321"),  # as Twilio's WhatsApp sends From
        ("+55 (11) 98765-4321", "+5511987654321"),
        ("11 98765-4321", "+5511987654321"),  # national, tenant's default country
        ("(21) 3333-4444", "+552133334444"),
        ("+1 415 555 0100", "+14155550100"),
        ("(11) 8765-4321", "+5511987654321"),  # old mobile without the ninth digit
        ("0 21 11 98765-4321", "+5511987654321"),  # trunk 0 + carrier code 21
        ("011 98765 4321", "+5511987654321"),  # trunk 0
        ("0xx11 98765-4321", "+5511987654321"),
        ("(11) 3333-4444", "+551133334444"),  # a landline keeps 8 digits
    ],
)
def test_phone_normalize(raw: str, e164: str) -> None:
    assert phone_normalize(raw) == e164


@pytest.mark.parametrize("raw", ["12", "abc", ""])
def test_phone_normalize_refuses_nonsense(raw: str) -> None:
    with pytest.raises(ValidationError):
        phone_normalize(raw)


@pytest.mark.parametrize(
    ("text", "medium", "word"),
    [
        ("STOP", "sms", "out"),
        ("Descadastrar!", "whatsapp", "out"),
        ("PÁRAR", "sms", "out"),
        ("start", "whatsapp", "in"),
        ("YES", "sms", "in"),
        ("yes", "whatsapp", None),
        ("quero parar de receber", "sms", None),
    ],
)
def test_consent_keywords_are_whole_messages_any_case_no_accents(text: str, medium: str, word: str | None) -> None:
    assert consent_keyword(text, medium) == word


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        ("(20) 98765-4321", "phone_area_code", "area code 20 does not exist in Brazil"),
        ("+55 10 3333-4444", "phone_area_code", "area code 10 does not exist in Brazil"),
        ("(23) 98765-4321", "phone_area_code", "area code 23"),
        ("98765-4321", "phone_no_area_code", "no area code"),  # never given the tenant's DDD
        ("3333-4444", "phone_no_area_code", "no area code"),
        ("+55 98765-4321", "phone_no_area_code", "no area code"),
        ("0800 123 4567", "phone_service", "service number"),
        ("0300 123 4567", "phone_service", "service number"),
        ("4004-0001", "phone_service", "service number"),
        ("0900 123 4567", "phone_service", "service number"),
        ("190", "phone_service", "short code"),
        ("28282", "phone_service", "short code"),
        ("5.51198765432E+12", "phone_scientific", "scientific notation"),
        ("5,51E12", "phone_scientific", "scientific notation"),
        ("(11) 1234-5678", "phone_invalid", "numbering plan"),  # DDD exists, subscriber cannot start with 1
        ("(11) 88765-4321", "phone_invalid", "numbering plan"),  # 11 digits but not a 9xxxx mobile
        ("+999 1234 5678", "phone_country", "country code"),
        ("+1 415 555 01", "phone_invalid", "short"),
    ],
)
def test_phone_normalize_refuses_numbers_that_cannot_exist_with_the_reason(raw: str, code: str, words: str) -> None:
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        phone_normalize(raw)
    assert refused.value.code == code
    message = refused.value.messages[0]
    assert words in message and "is not a valid phone number" in message


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("5511987654321.0", "+5511987654321"),  # an integer a spreadsheet read as a float
        ("11987654321.0", "+5511987654321"),
        ("'11 98765-4321", "+5511987654321"),  # Excel's text marker
        ("55 11 98765-4321", "+5511987654321"),  # bare international, with spaces
        ("tel:+55-11-98765-4321", "+5511987654321"),
    ],
)
def test_phone_normalize_cleans_spreadsheet_artefacts(raw: str, e164: str) -> None:
    assert phone_normalize(raw) == e164


def test_reasons_are_translated() -> None:
    with translation.override("pt-br"), pytest.raises(ValidationError) as refused:
        phone_normalize("(20) 98765-4321")
    assert "DDD 20 não existe no Brasil" in refused.value.messages[0]


def test_a_number_a_provider_reports_need_only_be_possible() -> None:
    # A range libphonenumber does not know yet still lands when WhatsApp says it messaged us...
    assert phone_normalize("5511887654321", from_provider=True) == "+5511887654321"
    # ...but the same number typed by a person is refused.
    with pytest.raises(ValidationError):
        phone_normalize("5511887654321")
    with pytest.raises(ValidationError):
        phone_normalize("12", from_provider=True)


def test_the_area_code_table_has_the_67_brazilian_ddds() -> None:
    import phonenumbers

    from crm.phones import BR_AREA_CODES

    assert len(BR_AREA_CODES) == 67
    # Every DDD has valid numbers in libphonenumber's metadata; no other two-digit prefix has
    # geographic ones (30 is only a shared-cost prefix, refused as a service number).
    for ddd in range(10, 100):
        mobile = phonenumbers.is_valid_number(phonenumbers.parse(f"+55{ddd}987654321"))
        landline = phonenumbers.is_valid_number(phonenumbers.parse(f"+55{ddd}33334444"))
        assert (mobile or landline) == (ddd in BR_AREA_CODES or ddd == 30), ddd
