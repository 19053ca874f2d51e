"""An import as a user runs it: upload and mapping through the pages on committed rows, the after-commit
task on the real worker, the contacts and the progress page at the end."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from accounts.models import Role
from crm.models import Contact, ContactImport
from tests.conftest import Worker, tenant_client
from tests.support import make_member, wait_until


def test_an_uploaded_csv_is_imported_by_the_worker(celery_worker: Worker, tenants: Any, committed: Any) -> None:
    alpha = tenants[0]
    run = uuid.uuid4().hex[:6]
    owner = make_member(alpha, f"import-{run}@alpha.test", Role.OWNER)
    client = tenant_client(alpha, owner, lang="en")
    numbers = [f"9{uuid.uuid4().int % 10**8:08d}" for _ in range(3)]
    body = "nome;telefone\n" + "".join(f"Cliente {run} {i};(11) {n[:5]}-{n[5:]}\n" for i, n in enumerate(numbers))
    uploaded = client.post("/contacts/import/", {"file": SimpleUploadedFile(f"{run}.csv", body.encode())})
    assert uploaded.status_code == 302, uploaded.content
    connection.set_tenant(alpha)
    upload = ContactImport.objects.get(original_name=f"{run}.csv")
    mapping = {f"map_{i}": target for i, target in enumerate(["name", "phone"])}
    assert client.post(f"/contacts/imports/{upload.pk}/", mapping).status_code == 302

    def finished() -> bool:
        connection.set_tenant(alpha)
        return ContactImport.objects.get(pk=upload.pk).status == "done"

    wait_until(finished, timeout=30, what="the worker to finish the import")
    connection.set_tenant(alpha)
    assert set(Contact.objects.filter(name__startswith=f"Cliente {run}").values_list("phone", flat=True)) == {
        f"+5511{n}" for n in numbers
    }
    progress = client.get(f"/contacts/imports/{upload.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'data-status="done"' in progress and "3 / 3" in progress and "3 created" in progress
