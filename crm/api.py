"""CRM endpoints: contacts (filter spec as query params), tags, custom fields, segments."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.audit import audit_record
from accounts.models import AuditAction
from accounts.permissions import crud_actions
from core.roles import Action
from crm.export import contacts_csv_rows
from crm.models import Contact, CustomField, Segment, Tag
from crm.selectors import consent_summary, contact_identities, contacts_filter
from crm.services import (
    contact_erase,
    contact_get_or_create,
    contact_merge,
    contact_update,
    phone_normalize,
    segment_save,
)


def filter_spec(params: Any) -> dict[str, Any]:
    """Query parameters -> the filter spec: ?q=&tag=1&tag=2&opted_out=&channel=&segment=&field.city=X"""
    return {
        "q": params.get("q", ""),
        "tags": params.getlist("tag") if hasattr(params, "getlist") else params.get("tags", []),
        "opted_out": params.get("opted_out") or None,
        "channel": params.get("channel") or None,
        "segment": params.get("segment") or None,
        "phone": params.get("phone") or None,  # with | without
        "fields": {
            **{k[6:]: v for k, v in params.items() if k.startswith("field.")},
            # the contacts page's "custom field is" filter
            **({params["field_key"]: params.get("field_value", "")} if params.get("field_key") else {}),
        },
    }


class TagSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Tag
        fields = ["id", "name", "color"]


class CustomFieldSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = CustomField
        fields = ["id", "key", "label", "kind", "choices"]


class SegmentSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Segment
        fields = ["id", "name", "filters"]

    def create(self, validated: dict[str, Any]) -> Segment:
        return segment_save(name=validated["name"], filters=validated.get("filters", {}))

    def update(self, segment: Segment, validated: dict[str, Any]) -> Segment:
        return segment_save(
            segment=segment,
            name=validated.get("name", segment.name),
            filters=validated.get("filters", segment.filters),
        )


class ContactSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    tags = serializers.PrimaryKeyRelatedField(many=True, queryset=Tag.objects.all(), required=False)
    consent = serializers.SerializerMethodField()
    identities = serializers.SerializerMethodField()
    # A WhatsApp user with a username may never show a phone: a contact may have none.
    phone = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=40)

    class Meta:
        model = Contact
        fields = [
            "id",
            "phone",
            "name",
            "email",
            "wa_profile_name",
            "wa_username",
            "identities",
            "tags",
            "custom_fields",
            "consent",
            "created_at",
        ]
        read_only_fields = ["wa_profile_name", "wa_username", "created_at"]

    def get_consent(self, contact: Contact) -> dict[str, Any]:
        return consent_summary(contact)

    def get_identities(self, contact: Contact) -> list[dict[str, Any]]:
        """Phone, WhatsApp user ids (with their business portfolio) and username: read-only, learnt from
        the providers."""
        return contact_identities(contact)

    def validate_phone(self, value: str | None) -> str | None:
        """A number that cannot exist is refused with the reason (400 with the field's error)."""
        if not value:
            return None
        try:
            return phone_normalize(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc

    def create(self, validated: dict[str, Any]) -> Contact:
        phone = validated.get("phone")
        contact = contact_get_or_create(phone=phone) if phone else Contact()
        return contact_update(contact=contact, **{k: v for k, v in validated.items() if k != "phone"})

    def update(self, contact: Contact, validated: dict[str, Any]) -> Contact:
        if "tags" in validated:
            validated["tags"] = [t.pk for t in validated["tags"]]
        return contact_update(contact=contact, **validated)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        validated: dict[str, Any] = super().to_internal_value(data)
        if "tags" in validated and self.instance is None:
            validated["tags"] = [t.pk for t in validated["tags"]]
        return validated


class ContactViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    """Contacts. Filter with ?q= (name, phone, email, WhatsApp username or user id), ?phone=with|without,
    ?tag= (repeatable), ?opted_out=whatsapp|sms|any|none,
    ?channel=<id>, ?segment=<id>, ?field.<key>=<value>."""

    serializer_class = ContactSerializer
    required_actions = {
        **crud_actions(read=Action.CONTACT_VIEW, write=Action.CONTACT_EDIT, delete=Action.CONTACT_DELETE),
        "erase": Action.CONTACT_ERASE,
        "merge": Action.CONTACT_MERGE,
        "export": Action.CONTACT_EXPORT,
    }

    def get_queryset(self) -> QuerySet[Contact]:
        return contacts_filter(filter_spec(self.request.query_params)).prefetch_related(
            "tags", "consents", "identities"
        )

    @extend_schema(parameters=[OpenApiParameter("q", str), OpenApiParameter("tag", int, many=True)])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @action(detail=True, methods=["post"])
    def erase(self, request: Request, pk: str | None = None) -> Response:
        """Erase this person's data (LGPD): identity, custom fields, message content and media."""
        contact_erase(contact=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"], serializer_class=serializers.Serializer)
    def merge(self, request: Request, pk: str | None = None) -> Response:
        """Merge the contact given as {"duplicate": <id>} into this one."""
        duplicate_id = str(request.data.get("duplicate", "")) if isinstance(request.data, dict) else ""
        duplicate = contacts_filter().filter(pk=int(duplicate_id)).first() if duplicate_id.isdigit() else None
        if duplicate is None:
            raise ValidationError({"duplicate": ["No such contact."]})
        merged = contact_merge(
            primary=self.get_object(),
            duplicate=duplicate,
            user=request.user,
            role=request.membership.role,  # type: ignore[attr-defined]
        )
        return Response(ContactSerializer(merged).data)

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    @action(detail=False, methods=["get"], url_path="export")
    def export(self, request: Request) -> StreamingHttpResponse:
        """CSV of every contact that matches the filter."""
        return csv_response(self.get_queryset())


def csv_response(contacts: QuerySet[Contact]) -> StreamingHttpResponse:
    audit_record(action=AuditAction.EXPORT, target_type="crm.contact", metadata={"count": contacts.count()})
    response = StreamingHttpResponse(contacts_csv_rows(contacts), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="contacts.csv"'
    return response


class TagViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    serializer_class = TagSerializer
    queryset = Tag.objects.all()
    required_actions = {**crud_actions(read=Action.CONTACT_VIEW, write=Action.TAG_MANAGE), "create": Action.TAG_CREATE}


class CustomFieldViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    serializer_class = CustomFieldSerializer
    queryset = CustomField.objects.all()
    required_actions = crud_actions(
        read=Action.CONTACT_VIEW, write=Action.CUSTOMFIELD_MANAGE, delete=Action.CUSTOMFIELD_DELETE
    )


class SegmentViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    serializer_class = SegmentSerializer
    queryset = Segment.objects.all()
    required_actions = {
        **crud_actions(read=Action.CONTACT_VIEW, write=Action.SEGMENT_MANAGE),
        "contacts": Action.CONTACT_VIEW,
    }

    @action(detail=True, methods=["get"])
    def contacts(self, request: Request, pk: str | None = None) -> Response:
        page = self.paginate_queryset(contacts_filter(self.get_object().filters).prefetch_related("tags", "consents"))
        return self.get_paginated_response(ContactSerializer(page, many=True).data)
