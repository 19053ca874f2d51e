"""The `__any` lookup (core.lookups): `field = ANY(array)`, one parameter whatever the list's size."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.models import Contact, Tag


def test_any_matches_as_in_does_with_one_parameter_for_any_size(in_tenant_a: Any) -> None:
    made = Contact.objects.bulk_create(Contact(phone=f"+55119{i:08d}", name=f"Any {i}") for i in range(5))
    ids = [c.pk for c in made]
    assert set(Contact.objects.filter(pk__any=ids[:3]).values_list("pk", flat=True)) == set(ids[:3])
    assert set(Contact.objects.filter(pk__in=ids).exclude(pk__any=ids[:3]).values_list("pk", flat=True)) == set(ids[3:])
    assert not Contact.objects.filter(pk__any=[]).exists()  # an empty list matches nothing, as `__in` does
    assert set(Contact.objects.filter(phone__any=[made[0].phone, "+0"]).values_list("pk", flat=True)) == {ids[0]}
    tag = Tag.objects.create(name="any-lookup")
    tag.contacts.add(made[1])
    through = Tag.contacts.through
    assert list(through.objects.filter(contact_id__any=ids).values_list("contact_id", flat=True)) == [ids[1]]

    with CaptureQueriesContext(connection) as small:
        list(Contact.objects.filter(pk__any=ids[:1]))
    with CaptureQueriesContext(connection) as large:
        list(Contact.objects.filter(pk__any=list(range(1000))))
    # the same statement text for one id and a thousand (only the array literal differs)
    assert small.captured_queries[-1]["sql"].split("ANY(")[0] == large.captured_queries[-1]["sql"].split("ANY(")[0]
    assert large.captured_queries[-1]["sql"].count("%s") == 0 and "::bigint[]" in large.captured_queries[-1]["sql"]
