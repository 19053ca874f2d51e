"""Property-based tests (hypothesis) of the CSV/XLSX import: what was written is what is read, and every
row of any file lands as a contact or as a line of the error report with a reason, never both, never lost."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from crm.export import csv_cell_safe
from crm.imports import import_configure, import_run, import_start, rows_from_bytes
from crm.models import Contact, ImportStatus
from crm.phones import BR_AREA_CODES, phone_normalize

pytestmark = pytest.mark.django_db

HEADER = ["telefone", "nome", "cidade"]
# Any text a spreadsheet cell can hold (XML 1.0 excludes most control characters, and openpyxl writes a
# leading "=" as a formula, so those are left to the CSV tests).
cell_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\t\n"), max_size=30)
csv_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=30)
mobile = st.tuples(st.sampled_from(sorted(BR_AREA_CODES)), st.integers(0, 99_999_999)).map(
    lambda t: f"{t[0]} 9{t[1]:08d}"
)
phone_cell = st.one_of(
    mobile,
    mobile.map(lambda m: "+55 " + m),
    mobile.map(lambda m: m.replace(" ", "") + ".0"),
    st.sampled_from(["0800 123 4567", "(20) 98765-4321", "98765-4321", "5.51198765432E+12", "abc", "", "190"]),
    csv_text,
)


def _csv(rows: list[list[str]], delimiter: str) -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows(rows)
    return out.getvalue().encode()


@settings(max_examples=200, deadline=None)
@given(
    body=st.lists(st.lists(csv_text, min_size=3, max_size=3), max_size=12),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
)
def test_a_csv_reads_back_as_written(body: list[list[str]], delimiter: str) -> None:
    rows = [HEADER, *body]
    read = list(rows_from_bytes(_csv(rows, delimiter), "contatos.csv"))
    assert read == rows


@settings(max_examples=100, deadline=None)
@given(
    body=st.lists(
        st.lists(
            st.one_of(
                cell_text.filter(lambda t: not t.startswith("=")),
                st.integers(10**10, 10**13),  # a phone typed as a number
                st.integers(10**10, 10**13).map(float),  # ...that the spreadsheet keeps as a float
                st.none(),
            ),
            max_size=4,
        ),
        max_size=10,
    )
)
def test_an_xlsx_reads_back_as_written(body: list[list[Any]]) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for row in body:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)

    def text(value: Any) -> str:
        return "" if value is None else str(int(value)) if isinstance(value, float) else str(value)

    expected = [HEADER]
    for row in body:
        cells = [text(v) for v in row]
        while cells and cells[-1] == "":
            cells.pop()
        expected.append(cells)
    written = [bool(row) for row in body]
    while written and not written[-1]:  # the sheet ends at its last written row (openpyxl skips empty ones)
        written.pop()
        expected.pop()
    assert list(rows_from_bytes(buffer.getvalue(), "contatos.xlsx")) == expected


def _normalized(raw: str) -> str | None:
    try:
        return phone_normalize(raw.strip())
    except ValidationError:
        return None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.lists(st.tuples(phone_cell, csv_text, csv_text), min_size=1, max_size=15),
    delimiter=st.sampled_from([",", ";"]),
)
def test_every_row_lands_or_is_reported_with_a_reason(
    in_tenant_a: Any, body: list[tuple[str, str, str]], delimiter: str
) -> None:
    rows = [list(row) for row in body]
    with transaction.atomic():
        Contact.objects.all().delete()
        upload = import_start(file=ContentFile(_csv([HEADER, *rows], delimiter)), original_name=f"{uuid.uuid4()}.csv")
        mapping = {"telefone": "phone", "nome": "name", "cidade": ""}
        import_configure(upload=upload, mapping=mapping, update_existing=True, tag_ids=[])
        done = import_run(import_id=upload.pk)
        good = {number: row for number, row in enumerate(rows, start=2) if _normalized(row[0])}
        bad = [number for number in range(2, len(rows) + 2) if number not in good]
        assert done.status == ImportStatus.DONE
        assert (done.total_rows, done.processed_rows, done.failed_count) == (len(rows), len(rows), len(bad))
        phones = {_normalized(row[0]) for row in good.values()}
        assert set(Contact.objects.values_list("phone", flat=True)) == phones
        assert done.created_count == len(phones)
        last_name = {_normalized(row[0]): row[1].strip() for row in good.values() if row[1].strip()}
        for contact in Contact.objects.all():  # a phone repeated in the file keeps its last non-empty name
            assert contact.name == last_name.get(contact.phone, "")[:150]
        if bad:
            report = list(csv.reader(io.StringIO(done.error_report.read().decode("utf-8-sig"))))
            assert report[0] == ["row", *HEADER, "error"]
            assert [int(line[0]) for line in report[1:]] == bad
            for line in report[1:]:
                original = rows[int(line[0]) - 2]
                assert line[1:-1] == [csv_cell_safe(cell) for cell in original]  # no cell runs as a formula
                assert line[-1]  # the reason
            done.error_report.delete(save=False)
        else:
            assert not done.error_report
        upload.file.delete(save=False)
        transaction.set_rollback(True)


@given(st.text(max_size=40))
def test_a_neutralised_cell_never_starts_a_formula(value: str) -> None:
    shown = csv_cell_safe(value)
    assert shown in (value, "'" + value)
    if shown[:1] in ("=", "+", "-", "@", "\t", "\r"):
        assert shown == value and all(ch in "+-0123456789 .,()" for ch in value)
