from __future__ import annotations

from django_tenants.utils import get_tenant_model, schema_context

from config.celery import app
from inbox.models import Channel, ChannelKind
from whatsapp.services import templates_sync


@app.task(name="whatsapp.templates_sync")
def templates_sync_channel(channel_id: int) -> int:
    return templates_sync(channel=Channel.objects.get(pk=channel_id))


@app.task(name="whatsapp.templates_sync_all")
def templates_sync_all() -> int:
    """Beat: every tenant's Cloud channels (one per WABA) get their templates refreshed."""
    queued = 0
    for schema in get_tenant_model().objects.exclude(schema_name="public").values_list("schema_name", flat=True):
        with schema_context(schema):
            waba_seen: set[str] = set()
            for channel in Channel.objects.filter(kind=ChannelKind.WHATSAPP_CLOUD).exclude(waba_id=""):
                if channel.waba_id not in waba_seen:
                    waba_seen.add(channel.waba_id)
                    templates_sync_channel.apply_async(
                        args=[channel.pk], queue="default", headers={"_schema_name": schema}
                    )
                    queued += 1
    return queued
