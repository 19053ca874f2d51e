"""Spintax: alternatives per contact, nested groups, escapes, placeholders left for the renderer."""

from __future__ import annotations

import pytest

from campaigns.spintax import SpintaxError, spin, spin_for_contact, spin_variants, spintax_check

GREETING = "{Olá|Oi|E aí} {{first_name}}"


def test_one_alternative_per_group_and_placeholders_untouched() -> None:
    seen = {spin(GREETING, seed=contact_id) for contact_id in range(200)}
    assert seen == {"Olá {{first_name}}", "Oi {{first_name}}", "E aí {{first_name}}"}
    assert spin("{{ first_name }}, {{custom.city}}", seed=1) == "{{ first_name }}, {{custom.city}}"
    assert spin("sem variação", seed=1) == "sem variação" and spin_variants("sem variação") == 1


def test_deterministic_per_contact_and_spread_across_contacts() -> None:
    text = "{Bom dia|Boa tarde|Olá}, {tudo bem|como vai}? {Temos|Chegou} {novidade|promoção} {na loja|pra você}"
    assert all(spin(text, seed=contact) == spin(text, seed=contact) for contact in range(50))
    assert spin(text, seed="contact:7") == spin(text, seed="contact:7")
    variants = {spin(text, seed=contact) for contact in range(300)}
    assert len(variants) > 30 and spin_variants(text) == 48


def test_nested_groups() -> None:
    text = "{Oi|{Bom dia|Boa {tarde|noite}}}!"
    seen = {spin(text, seed=i) for i in range(300)}
    assert seen == {"Oi!", "Bom dia!", "Boa tarde!", "Boa noite!"}
    assert spin_variants(text) == 4
    assert spin("{a|}b", seed=3) in {"ab", "b"}  # an empty alternative is allowed


def test_escapes_write_the_character() -> None:
    assert spin(r"preço \{promo\} 10\|20 \\ fim", seed=1) == r"preço {promo} 10|20 \ fim"
    assert spin(r"{a\|b|c}", seed=0) in {"a|b", "c"}
    assert {spin(r"{a\|b|c}", seed=i) for i in range(100)} == {"a|b", "c"}
    assert spin("a | b", seed=1) == "a | b"  # a bar outside any group is text


@pytest.mark.parametrize(
    ("text", "position"),
    [("{Olá|Oi", 0), ("Oi {a|{b|c}", 3), ("Oi}", 2), ("{a|b}}", 5)],
)
def test_unbalanced_braces_are_refused_with_where(text: str, position: int) -> None:
    with pytest.raises(SpintaxError) as raised:
        spin(text, seed=1)
    assert raised.value.position == position
    assert spintax_check(text) == str(raised.value) and f"character {position + 1}" in spintax_check(text)
    assert spintax_check(GREETING) == ""


def test_depth_is_bounded() -> None:
    deep = "{" * 20 + "x" + "}" * 20
    assert "nested" in spintax_check(deep)


def test_the_preview_of_a_contact_is_what_the_contact_gets() -> None:
    text = "{Olá|Oi|E aí} {{first_name}}, {chegou|temos} {novidade|promoção}!"
    previews = {contact_id: spin_for_contact(text, contact_id=contact_id) for contact_id in range(1, 60)}
    assert all(spin_for_contact(text, contact_id=c) == wording for c, wording in previews.items())
    assert len(set(previews.values())) > 5
    assert spin_for_contact(text, contact_id=7) == spin(text, seed="contact:7")
