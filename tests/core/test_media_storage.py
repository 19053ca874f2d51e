"""Media stays inside its tenant: on local disk (MEDIA_ROOT/<schema>/) and on S3 (a key prefix per schema,
existing keys never overwritten), and by URL (accounts.views.media_serve).

S3 is a real S3 API: moto's server on loopback, spoken to by boto3 through django-storages."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from django.db import connection
from django.test import override_settings
from moto.server import ThreadedMotoServer

from accounts.models import Role, User
from core.storage import TenantS3Storage
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.support import make_member

BUCKET = "cp-media-test"
CREDENTIALS = {"access_key": "testing", "secret_key": "testing", "region_name": "us-east-1"}


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else bytes(response.content)


def _save_in(tenant: Tenant, name: str, data: bytes) -> str:
    connection.set_tenant(tenant)
    saved = default_storage.save(name, ContentFile(data))
    connection.set_schema_to_public()
    return str(saved)


def _assert_a_cannot_fetch_b(alpha: Tenant, beta: Tenant, owner_a: User, owner_b: User) -> None:
    tag = uuid.uuid4().hex[:8]
    secret_b = f"beta secret {tag}".encode()
    name_a = _save_in(alpha, f"isolation/{tag}-a.txt", f"alpha file {tag}".encode())
    name_b = _save_in(beta, f"isolation/{tag}-b.txt", secret_b)
    try:
        client_a = tenant_client(alpha, owner_a)
        own = client_a.get(f"/media/{alpha.schema_name}/{name_a}")
        assert own.status_code == 200 and _body(own) == f"alpha file {tag}".encode()  # control
        attempts = [
            f"/media/{beta.schema_name}/{name_b}",  # B's URL, on A's host
            f"/media/{alpha.schema_name}/{name_b}",  # B's name under A's prefix
            f"/media/{alpha.schema_name}/../{beta.schema_name}/{name_b}",
            f"/media/{alpha.schema_name}/%2e%2e/{beta.schema_name}/{name_b}",
            f"/media/{alpha.schema_name}/..%2f{beta.schema_name}/{name_b}",
            f"/media/{alpha.schema_name}/messages/../../{beta.schema_name}/{name_b}",
        ]
        for url in attempts:
            response = client_a.get(url)
            assert response.status_code in (400, 404), f"{url}: {response.status_code}"
            assert secret_b not in _body(response)
        # A's session on B's host is not a session there
        response = tenant_client(beta, owner_a).get(f"/media/{beta.schema_name}/{name_b}")
        assert response.status_code == 302 and "/login/" in response["Location"]
        # and B's owner reads B's file (so the URLs above were right)
        mine = tenant_client(beta, owner_b).get(f"/media/{beta.schema_name}/{name_b}")
        assert mine.status_code == 200 and _body(mine) == secret_b
    finally:
        for tenant, name in ((alpha, name_a), (beta, name_b)):
            connection.set_tenant(tenant)
            default_storage.delete(name)
        connection.set_schema_to_public()


@pytest.fixture
def owners(db: Any, tenants: tuple[Tenant, Tenant]) -> tuple[User, User]:
    tag = uuid.uuid4().hex[:8]
    return (
        make_member(tenants[0], f"media-a-{tag}@alpha.test", Role.OWNER),
        make_member(tenants[1], f"media-b-{tag}@beta.test", Role.OWNER),
    )


def test_local_disk_keeps_each_tenant_in_its_folder(tenants: tuple[Tenant, Tenant], owners: Any) -> None:
    alpha, beta = tenants
    name = _save_in(beta, f"messages/iso/{uuid.uuid4().hex[:8]}.txt", b"x")
    try:
        connection.set_tenant(beta)
        assert default_storage.path(name).startswith(str(settings.MEDIA_ROOT / beta.schema_name) + "/")
        connection.set_tenant(alpha)
        assert not default_storage.exists(name)
        with pytest.raises(SuspiciousOperation):
            default_storage.exists(f"../{beta.schema_name}/{name}")
    finally:
        connection.set_tenant(beta)
        default_storage.delete(name)
        connection.set_schema_to_public()


def test_a_cannot_fetch_b_files_by_url_on_local_disk(tenants: tuple[Tenant, Tenant], owners: Any) -> None:
    _assert_a_cannot_fetch_b(*tenants, *owners)


# --- S3 ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, **_boto_credentials()).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["access_key"],
        "aws_secret_access_key": CREDENTIALS["secret_key"],
        "region_name": CREDENTIALS["region_name"],
    }


def _storage(endpoint: str, **extra: Any) -> TenantS3Storage:
    return TenantS3Storage(bucket_name=BUCKET, endpoint_url=endpoint, **CREDENTIALS, **extra)


def _object(endpoint: str, key: str) -> bytes:
    client = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
    return bytes(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def test_s3_keys_carry_the_tenant_prefix_and_are_never_overwritten(
    s3_endpoint: str, tenants: tuple[Tenant, Tenant], db: Any
) -> None:
    alpha, beta = tenants
    storage = _storage(s3_endpoint)
    tag = uuid.uuid4().hex[:8]
    connection.set_tenant(alpha)
    first = storage.save(f"messages/{tag}.jpg", ContentFile(b"first"))
    assert first == f"messages/{tag}.jpg"
    assert _object(s3_endpoint, f"{alpha.schema_name}/{first}") == b"first"

    second = storage.save(f"messages/{tag}.jpg", ContentFile(b"second"))  # same name: a new key
    assert second != first and second.startswith(f"messages/{tag}_")
    assert _object(s3_endpoint, f"{alpha.schema_name}/{first}") == b"first"
    assert _object(s3_endpoint, f"{alpha.schema_name}/{second}") == b"second"

    # Another process wrote the key between our look and our write: the conditional PUT refuses, we rename.
    raced = storage._save(first, ContentFile(b"raced"))
    assert raced != first
    assert _object(s3_endpoint, f"{alpha.schema_name}/{first}") == b"first"
    assert _object(s3_endpoint, f"{alpha.schema_name}/{raced}") == b"raced"
    with pytest.raises(ClientError) as refused:  # the store itself refuses the overwrite
        storage.bucket.Object(f"{alpha.schema_name}/{first}").put(Body=b"x", IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"

    connection.set_tenant(beta)  # the same name in B is B's key, which does not exist
    assert not storage.exists(first)
    with pytest.raises(FileNotFoundError):
        storage.open(first)
    with pytest.raises(SuspiciousOperation):
        storage.exists(f"../{alpha.schema_name}/{first}")
    connection.set_schema_to_public()

    based = _storage(s3_endpoint, location="media")
    connection.set_tenant(beta)
    name = based.save(f"imports/{tag}.csv", ContentFile(b"phone\n"))
    connection.set_schema_to_public()
    assert _object(s3_endpoint, f"media/{beta.schema_name}/{name}") == b"phone\n"


def test_a_cannot_fetch_b_files_by_url_on_s3(s3_endpoint: str, tenants: tuple[Tenant, Tenant], owners: Any) -> None:
    s3 = {
        "BACKEND": "core.storage.TenantS3Storage",
        "OPTIONS": {"bucket_name": BUCKET, "endpoint_url": s3_endpoint, **CREDENTIALS},
    }
    with override_settings(STORAGES={**settings.STORAGES, "default": s3}):
        assert isinstance(storages["default"], TenantS3Storage)  # what media_serve reads from
        _assert_a_cannot_fetch_b(*tenants, *owners)
