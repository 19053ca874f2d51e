"""What the inbox adds to the contacts table: a filter by channel."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string

from inbox.models import Channel


def channel_filter(*, params: Any, **kwargs: Any) -> list[str]:
    channels = list(Channel.objects.order_by("name"))
    if not channels:
        return []
    return [
        render_to_string(
            "inbox/_contact_channel_filter.html", {"channels": channels, "selected": params.get("channel", "")}
        )
    ]
