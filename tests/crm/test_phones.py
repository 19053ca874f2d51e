from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

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
