from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from emulators.meta import MetaEmulator
from inbox.ingest import drain_batch
from inbox.models import Channel
from tenants.models import Tenant
from tests.messaging import fixture, meta_envelope, post_meta
from whatsapp.models import MessageTemplate, TemplateStatus
from whatsapp.services import template_create, templates_sync

pytestmark = pytest.mark.django_db


def test_sync_mirrors_every_page_of_the_waba(
    in_tenant_a: Any, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    meta_emulator.templates["200000000000001"] = [
        {
            "id": str(900 + i),
            "name": f"tpl_{i}",
            "language": "pt_BR",
            "category": "UTILITY",
            "status": "APPROVED",
            "components": [{"type": "BODY", "text": "Olá {{1}}, pedido {{2}}"}],
            "parameter_format": "POSITIONAL",
        }
        for i in range(250)
    ]
    try:
        seen = templates_sync(channel=Channel.objects.get(pk=channels["whatsapp"]))
    finally:
        meta_emulator.templates["200000000000001"] = []
    assert seen == 250  # three pages of 100
    template = MessageTemplate.objects.get(name="tpl_7")
    assert (template.status, template.category, template.body_variable_count) == ("APPROVED", "UTILITY", 2)
    assert template.synced_at is not None


def test_create_submits_for_review_and_the_webhook_approves(
    tenant_a: Tenant, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    connection.set_tenant(tenant_a)
    channel = Channel.objects.get(pk=channels["whatsapp"])
    template = template_create(
        channel=channel,
        name="order_ready",
        category="UTILITY",
        language="pt_BR",
        body="Olá {{1}}, seu pedido {{2}} está pronto.",
        footer="Loja Alpha",
        quick_replies=["Ok"],
    )
    assert template.status == TemplateStatus.PENDING
    submitted = meta_emulator.templates["200000000000001"][-1]
    assert submitted["name"] == "order_ready"
    body = next(c for c in submitted["components"] if c["type"] == "BODY")
    assert body["example"] == {"body_text": [["example1", "example2"]]}

    update = dict(
        fixture("template_status.json"),
        message_template_id=int(template.template_id),
        message_template_name="order_ready",
    )
    post_meta(meta_envelope(update, field="message_template_status_update"))
    drain_batch()
    connection.set_tenant(tenant_a)
    template.refresh_from_db()
    assert template.status == TemplateStatus.APPROVED


def test_bad_template_names_are_refused_before_meta(in_tenant_a: Any, channels: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        template_create(
            channel=Channel.objects.get(pk=channels["whatsapp"]),
            name="Order Ready!",
            category="UTILITY",
            language="pt_BR",
            body="x",
        )


def test_a_rejected_template_raises_an_alert_and_its_approval_clears_it(
    tenant_a: Tenant, channels: dict[str, int], meta_emulator: MetaEmulator, django_capture_on_commit_callbacks: Any
) -> None:
    from alerts.models import Alert

    connection.set_tenant(tenant_a)
    channel = Channel.objects.get(pk=channels["whatsapp"])
    template = template_create(
        channel=channel, name="promo_rejeitada", category="MARKETING", language="pt_BR", body="Oferta {{1}}"
    )
    for event, reason in (("REJECTED", "INVALID_FORMAT"), ("APPROVED", "NONE")):
        update = dict(
            fixture("template_status.json"),
            event=event,
            reason=reason,
            message_template_id=int(template.template_id),
            message_template_name="promo_rejeitada",
        )
        post_meta(meta_envelope(update, field="message_template_status_update"))
        with django_capture_on_commit_callbacks(execute=True):
            drain_batch()
        connection.set_tenant(tenant_a)
        (alert,) = Alert.objects.filter(kind="template.rejected", key=template.template_id)
        if event == "REJECTED":
            assert alert.is_open and alert.detail["reason"] == "INVALID_FORMAT"
            assert alert.detail["channel_id"] == channel.pk and alert.detail["name"] == "promo_rejeitada"
    assert alert.resolution == "cleared"
