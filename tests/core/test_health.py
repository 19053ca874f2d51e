from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from core import health


@pytest.mark.django_db
def test_health_reports_every_part_ok() -> None:
    response = Client().get("/health", HTTP_HOST="localhost")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "broker"}
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.django_db
def test_health_names_the_failing_part(settings: Any) -> None:
    # A Redis that is not there: point at a socket path nobody listens on.
    settings.REDIS_URL = "unix:///nonexistent/redis.sock?db=0"
    response = Client().get("/health", HTTP_HOST="localhost")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["redis"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"] == {"ok": False, "error": "ConnectionError"}


@pytest.mark.django_db
def test_health_names_a_failing_broker(settings: Any) -> None:
    settings.CELERY_BROKER_URL = "redis+socket:///nonexistent/broker.sock"
    response = Client().get("/health", HTTP_HOST="localhost")
    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]


@pytest.mark.django_db
def test_health_is_served_on_tenant_domains(tenant_a: Any) -> None:
    response = Client().get("/health", HTTP_HOST="alpha.localhost")
    assert response.status_code == 200


def test_health_checks_are_the_documented_ones() -> None:
    assert list(health.CHECKS) == ["database", "redis", "broker"]
