from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from tenants.models import Tenant


def _distance_in(tenant: Tenant) -> float:
    connection.set_tenant(tenant)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE emb (v vector(3))")
        cursor.execute("INSERT INTO emb VALUES ('[1,0,0]'), ('[0,1,0]')")
        cursor.execute("SELECT v <-> '[1,0,0]' FROM emb ORDER BY v <-> '[1,0,0]' LIMIT 1")
        value = float(cursor.fetchone()[0])
        cursor.execute("DROP TABLE emb")
    return value


@pytest.mark.django_db
def test_vector_type_resolves_in_every_tenant_schema(tenant_a: Tenant, tenant_b: Tenant) -> None:
    # Both tenants, not only the first one created: the extension is in public.
    assert _distance_in(tenant_a) == 0.0
    assert _distance_in(tenant_b) == 0.0
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname = 'vector'"
        )
        assert cursor.fetchone()[0] == "public"


def test_cache_keys_carry_the_tenant_schema(tenants: Any, django_db_blocker: Any) -> None:
    from django.core.cache import cache

    alpha, beta = tenants
    with django_db_blocker.unblock():
        connection.set_tenant(alpha)
        cache.set("greeting", "olá")
        connection.set_tenant(beta)
        assert cache.get("greeting") is None
        connection.set_tenant(alpha)
        assert cache.get("greeting") == "olá"
        connection.set_schema_to_public()
