"""An agent that answers a number but is not published (its sync or publish failed) raises an alert that
names it and links to it; publishing it again clears the alert."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from alerts import kinds
from alerts.models import Alert
from emulators.retell import RetellEmulator
from voice.models import AgentStatus, VoiceNumber, VoiceSettings
from voice.numbers import voice_number_assign
from voice.services import voice_agent_create, voice_agent_sync

pytestmark = pytest.mark.django_db


def open_alerts(agent_id: int) -> list[Alert]:
    return list(Alert.objects.filter(kind=kinds.VOICE_AGENT_UNPUBLISHED, key=str(agent_id), resolved_at=None))


def test_a_failed_publish_of_an_agent_on_a_number_raises_the_alert_and_publishing_clears_it(
    voice_a: VoiceSettings, retell_script: RetellEmulator, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        agent = voice_agent_create(name="Recepção loja", prompt="Atenda.", voice_id="11labs-Adrian")
        assert agent.status == AgentStatus.PUBLISHED
        loose = voice_agent_create(name="Sem número", prompt="p", voice_id="11labs-Adrian")
        number = VoiceNumber.objects.create(e164="+5511931110001")
        voice_number_assign(number=number, agent=agent)
    assert open_alerts(agent.pk) == []  # published: nothing to say

    httpx.post(f"{retell_script.base_url}/_emulator/errors", json={"status": 422, "path": "publish-agent", "count": 2})
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError):
        voice_agent_sync(agent=agent)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError):
        voice_agent_sync(agent=loose)  # fails too, but answers no number: no alert
    agent.refresh_from_db()
    assert agent.status == AgentStatus.ERROR
    [alert] = open_alerts(agent.pk)
    assert open_alerts(loose.pk) == []
    assert alert.detail["numbers"] == "+5511931110001" and alert.detail["status"] == "error"
    with translation.override("en"):
        worded = kinds.word(alert.kind, alert.detail)
    assert "Recepção loja" in worded.title and "+5511931110001" in worded.happened
    assert "Sync and publish" in worded.fix and worded.link == f"/voice/agents/{agent.pk}/"
    with translation.override("pt-br"):
        assert kinds.word(alert.kind, alert.detail).title != worded.title

    with django_capture_on_commit_callbacks(execute=True):
        voice_agent_sync(agent=agent)
    assert agent.status == AgentStatus.PUBLISHED
    assert open_alerts(agent.pk) == []
    assert Alert.objects.filter(kind=kinds.VOICE_AGENT_UNPUBLISHED, key=str(agent.pk)).count() == 1  # closed


def test_assigning_a_number_to_an_unpublished_agent_raises_it_and_unassigning_clears_it(
    voice_a: VoiceSettings, retell_script: RetellEmulator, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        agent = voice_agent_create(name="Rascunho", prompt="p", voice_id="11labs-Adrian")
        voice_agent_sync(agent=agent, publish=False)  # synced, not published
        number = VoiceNumber.objects.create(e164="+5511931110002")
        voice_number_assign(number=number, agent=agent)
    assert len(open_alerts(agent.pk)) == 1
    with django_capture_on_commit_callbacks(execute=True):
        voice_number_assign(number=number, agent=None)
    assert open_alerts(agent.pk) == []
