"""Template variables (campaign placeholders, WhatsApp template slots and components) over any text and
any contact data (hypothesis): never an error, nothing evaluated, output bounded."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from campaigns.services import MAX_VALUE, PLACEHOLDER, SLOT, content_render, template_preview_fill
from crm.models import Contact
from inbox.providers import ErrorKind, ProviderError
from whatsapp.providers import template_components

# Text rich in braces and placeholder-like pieces, plus anything else.
pieces = st.sampled_from(
    ["{{", "}}", "{", "}", "{{name}}", "{{ first_name }}", "{{phone}}", "{{email}}", "{{cf.x}}", "{{1}}", "{{2}}",
     "{{0}}", "{{999}}", "{{__class__}}", "{{name.__class__}}", "{% if %}", "${7*7}", "{0}", "%s", "\\", " "]
)  # fmt: skip
texts = st.lists(pieces | st.text(max_size=8), max_size=30).map("".join)
values = st.none() | st.integers() | st.booleans() | st.text(max_size=2000) | st.lists(st.integers(), max_size=3)


def _contact(name: str, phone: str, email: str, fields: dict[str, Any]) -> Contact:
    return Contact(name=name, phone=phone, email=email, custom_fields=fields)  # unsaved: no database needed


@given(
    text=texts,
    name=texts,
    phone=st.text(max_size=20),
    email=texts,
    fields=st.dictionaries(st.sampled_from(["x", "cf.x", "city", "__class__"]) | st.text(max_size=5), values),
)
@settings(max_examples=500, deadline=None)
@example(text="{{name}} {{name}}", name="{{phone}}", phone="+5511", email="", fields={})
@example(text="{{city}}", name="", phone="", email="", fields={"city": "x" * 5000})
@example(text="{{first_name}}", name="   ", phone="", email="", fields={})
def test_content_render_never_raises_never_evaluates_and_is_bounded(
    text: str, name: str, phone: str, email: str, fields: dict[str, Any]
) -> None:
    rendered = content_render(text, _contact(name, phone, email, fields))
    placeholders = PLACEHOLDER.findall(text)
    assert len(rendered) <= len(text) + len(placeholders) * MAX_VALUE
    # one literal pass: outside the placeholders the text is untouched, each value goes in as it is
    known = {"name": name, "first_name": name.split()[0] if name.strip() else "", "phone": phone, "email": email}

    def literal(match: re.Match[str]) -> str:
        found = known[match.group(1)] if match.group(1) in known else fields.get(match.group(1), "")
        return ("" if found is None else str(found))[:MAX_VALUE]

    assert rendered == PLACEHOLDER.sub(literal, text)


def test_a_value_that_looks_like_a_placeholder_is_not_filled_again() -> None:
    contact = _contact("{{phone}} {{__class__}}", "+5511999990000", "", {"x": "{{email}}"})
    assert content_render("Oi {{name}} / {{x}}", contact) == "Oi {{phone}} {{__class__}} / {{email}}"


def test_python_and_template_syntax_are_plain_text() -> None:
    contact = _contact("Ana", "+5511999990000", "", {})
    text = "{{__class__}} {{name.__class__}} {% if 1 %}x{% endif %} ${7*7} {0} %s"
    assert content_render(text, contact) == "  {% if 1 %}x{% endif %} ${7*7} {0} %s"


@given(body=texts, variables=st.lists(texts, max_size=5))
@settings(max_examples=400, deadline=None)
@example(body="{{1}} {{2}}", variables=["{{2}}", "B"])
def test_template_slots_fill_in_one_pass(body: str, variables: list[str]) -> None:
    filled = template_preview_fill(body, variables)
    slots = SLOT.findall(body)
    assert len(filled) <= len(body) + len(slots) * MAX_VALUE
    if body == "{{1}} {{2}}" and variables == ["{{2}}", "B"]:
        assert filled == "{{2}} B"
    expected = re.sub(
        r"\{\{(\d{1,3})\}\}",
        lambda m: variables[int(m.group(1)) - 1][:MAX_VALUE] if 1 <= int(m.group(1)) <= len(variables) else m.group(0),
        body,
    )
    assert filled == expected


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)


@given(
    variables=st.dictionaries(st.sampled_from(["header", "body", "buttons", "other"]), json_like, max_size=4)
    | json_like
)
@settings(max_examples=500, deadline=None)
@example(variables={"buttons": [{"sub_type": "url"}]})
@example(variables={"header": [{"type": "image"}]})
@example(variables={"body": 5})
@example(variables={"body": {"first_name": {"__class__": 1}}})
def test_template_components_are_built_or_refused_permanently(variables: Any) -> None:
    try:
        components = template_components(variables)
    except ProviderError as exc:
        refusal = (exc.kind, exc.code)
        assert refusal == (ErrorKind.PERMANENT, "template_variables")
        return
    for component in components:
        for param in component["parameters"]:
            assert all(isinstance(v, str | dict) for v in param.values())


ANA_3 = [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "3"}]}]
NAMED = [{"type": "body", "parameters": [{"type": "text", "parameter_name": "first_name", "text": "{{1}}"}]}]


@pytest.mark.parametrize(
    ("variables", "expected"), [({"body": ["Ana", 3]}, ANA_3), ({"body": {"first_name": "{{1}}"}}, NAMED)]
)
def test_template_components_keep_values_as_text(variables: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    assert template_components(variables) == expected
