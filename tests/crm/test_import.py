from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.core.files.base import ContentFile
from openpyxl import Workbook

from accounts.models import User
from crm.imports import import_configure, import_run, import_start
from crm.models import Contact, ContactImport, CustomField, ImportStatus, Tag
from tenants.models import Tenant
from tests.conftest import tenant_client

pytestmark = pytest.mark.django_db

CSV = """Nome;Telefone;E-mail;Cidade
Ana;(11) 98765-0001;ana@example.com;Campinas
Bruno;11 8765-0002;;Santos
Carla;0 21 11 98765-0003;carla@;Sorocaba
Sem telefone;abc;;
Ana Repetida;+55 11 98765-0001;ana2@example.com;Jundiaí
Diego;011987650004;diego@example.com;
"""


def run(upload: ContactImport, *, update: bool = True, tags: list[int] | None = None) -> ContactImport:
    import_configure(upload=upload, mapping=upload.mapping, update_existing=update, tag_ids=tags or [])
    return import_run(import_id=upload.pk)


def test_csv_import_normalizes_dedupes_tags_and_reports_bad_rows(in_tenant_a: Any) -> None:
    CustomField.objects.create(key="cidade", label="Cidade", kind="text")
    Contact.objects.create(phone="+5511987650004", name="Diego Antigo")
    tag = Tag.objects.create(name="planilha")
    upload = import_start(file=ContentFile(CSV.encode()), original_name="clientes.csv")
    assert upload.columns == ["Nome", "Telefone", "E-mail", "Cidade"]
    assert upload.mapping == {"Nome": "name", "Telefone": "phone", "E-mail": "email", "Cidade": "cf:cidade"}
    done = run(upload, tags=[tag.pk])
    assert done.status == ImportStatus.DONE
    assert (done.total_rows, done.processed_rows) == (6, 6)
    assert (done.created_count, done.updated_count, done.failed_count) == (2, 1, 2)  # Ana (twice), Bruno; Diego existed
    ana = Contact.objects.get(phone="+5511987650001")
    assert (ana.name, ana.email, ana.custom_fields) == ("Ana Repetida", "ana2@example.com", {"cidade": "Jundiaí"})
    assert Contact.objects.get(phone="+5511987650002").name == "Bruno"  # ninth digit added
    assert Contact.objects.get(phone="+5511987650004").name == "Diego"  # updated
    assert set(tag.contacts.values_list("phone", flat=True)) >= {"+5511987650001", "+5511987650002", "+5511987650004"}
    report = list(csv.reader(io.StringIO(done.error_report.read().decode("utf-8-sig"))))
    assert report[0] == ["row", "Nome", "Telefone", "E-mail", "Cidade", "error"]
    assert [r[0] for r in report[1:]] == ["4", "5"]  # Carla's bad email, the row with no phone
    assert "e-mail" in report[1][-1].lower() or "email" in report[1][-1].lower()


def test_skip_mode_keeps_what_exists(in_tenant_a: Any) -> None:
    Contact.objects.create(phone="+5511987650001", name="Original")
    upload = import_start(file=ContentFile(CSV.encode()), original_name="c.csv")
    done = run(upload, update=False)
    assert Contact.objects.get(phone="+5511987650001").name == "Original"
    assert done.skipped_count == 2  # existing Ana, and her repeat in the file


def test_xlsx_import(in_tenant_a: Any) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["phone", "name"])
    sheet.append([5511987650100, "Planilha Um"])
    sheet.append(["(11) 98765-0101", "Planilha Dois"])
    buffer = io.BytesIO()
    book.save(buffer)
    upload = import_start(file=ContentFile(buffer.getvalue()), original_name="lista.xlsx")
    done = run(upload)
    assert done.created_count == 2
    assert Contact.objects.get(phone="+5511987650100").name == "Planilha Um"


def test_import_needs_a_phone_column(in_tenant_a: Any) -> None:
    from django.core.exceptions import ValidationError

    upload = import_start(file=ContentFile(b"a,b\n1,2\n"), original_name="x.csv")
    with pytest.raises(ValidationError):
        import_configure(upload=upload, mapping={"a": "name", "b": ""}, update_existing=True, tag_ids=[])


def test_import_pages_upload_map_and_progress(in_tenant_a: Any, tenant_a: Tenant, owner_a: User) -> None:
    client = tenant_client(tenant_a, owner_a, lang="en")
    assert client.get("/contacts/import/").status_code == 200
    uploaded = client.post("/contacts/import/", {"file": ContentFile(CSV.encode(), name="clientes.csv")})
    assert uploaded.status_code == 302
    upload = ContactImport.objects.get()
    page = client.get(uploaded["Location"]).content.decode()
    assert "Telefone" in page and "Goes to" in page
    started = client.post(uploaded["Location"], {"map_0": "name", "map_1": "phone", "map_2": "email", "map_3": ""})
    assert started.status_code == 302
    upload.refresh_from_db()
    assert upload.status == ImportStatus.QUEUED  # the worker takes it after commit
    import_run(import_id=upload.pk)
    progress = client.get(uploaded["Location"], HTTP_HX_REQUEST="true").content.decode()
    assert 'data-status="done"' in progress and "Download the error report" in progress
    upload.refresh_from_db()
    report = client.get(upload.error_report.url)
    assert report.status_code == 200


def test_media_is_served_only_to_members_of_its_tenant(in_tenant_a: Any, tenant_a: Tenant, agent_a: User) -> None:
    from django.core.files.storage import default_storage

    name = default_storage.save("probe/hello.txt", ContentFile(b"hi"))
    url = default_storage.url(name)
    assert url.startswith(f"/media/{tenant_a.schema_name}/")
    assert b"".join(tenant_client(tenant_a, agent_a).get(url).streaming_content) == b"hi"
    assert tenant_client(tenant_a).get(url).status_code == 302  # anonymous: to the login page
    other = url.replace(tenant_a.schema_name, "t_beta")
    assert tenant_client(tenant_a, agent_a).get(other).status_code == 404
