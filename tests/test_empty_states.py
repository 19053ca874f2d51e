"""An empty list says what to do first, with the first step as a button where there is one."""

from __future__ import annotations

from typing import Any

import pytest
from django.template.loader import render_to_string
from django.utils import translation

from accounts.models import User
from crm.models import Contact
from tenants.models import Tenant
from tests.conftest import tenant_client

pytestmark = pytest.mark.django_db


def test_the_empty_component_renders_its_text_and_first_step() -> None:
    html = render_to_string(
        "components/empty.html", {"text": "Nada aqui.", "action_url": "/x/", "action_label": "Criar"}
    )
    assert 'data-testid="empty-state"' in html and "Nada aqui." in html
    assert 'href="/x/"' in html and "Criar" in html
    bare = render_to_string("components/empty.html", {"text": "Nada aqui."})
    assert "Nada aqui." in bare and "empty-action" not in bare


def test_contacts_say_how_to_start_or_how_to_clear_the_filters(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User
) -> None:
    Contact.objects.all().delete()  # rolled back after the test
    client = tenant_client(in_tenant_a, owner_a, lang="en")
    first = client.get("/contacts/").content.decode()
    assert "No contacts yet. Import a spreadsheet" in first and 'data-testid="empty-action"' in first
    filtered = client.get("/contacts/?q=nobody-at-all").content.decode()
    assert "Clear the filters" in filtered and 'data-testid="empty-action"' not in filtered
    pt = tenant_client(in_tenant_a, owner_a, lang="pt-br").get("/contacts/").content.decode()
    assert "Nenhum contato ainda. Importe uma planilha" in pt


def test_a_member_without_tokens_is_told_what_they_are_for(in_tenant_a: Any, tenant_a: Tenant, agent_a: User) -> None:
    agent_a.api_tokens.all().delete()
    with translation.override("en"):
        page = tenant_client(in_tenant_a, agent_a, lang="en").get("/settings/api-tokens/").content.decode()
    assert "No tokens yet. Create one below to call the API from your own systems." in page
