"""Inbox endpoints: conversations (cursor pages, filters, search), their messages, sending, assignment,
status, internal notes; saved replies."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import crud_actions
from accounts.selectors import members_of
from core.api import NextCursorDocumented
from core.roles import Action, permission_check
from inbox.models import CannedResponse, Conversation, ConversationStatus, Message
from inbox.selectors import conversation_messages, conversations_page, conversations_visible_to
from inbox.services import conversation_assign, conversation_set_status, message_send, note_add


class MessageSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Message
        fields = [
            "id",
            "direction",
            "type",
            "body",
            "status",
            "origin",  # platform | business_app (typed on the phone) | history (imported from the app)
            "error_code",
            "error_text",
            "provider_message_id",
            "template_name",
            "created_at",
            "sent_at",
            "delivered_at",
            "read_at",
            "failed_at",
            "author",
        ]


class ConversationSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    contact = serializers.SerializerMethodField()

    class Meta:
        model = Conversation
        fields = [
            "id",
            "contact",
            "channel",
            "status",
            "assignee",
            "last_message_at",
            "last_inbound_at",
            "unread_count",
        ]

    def get_contact(self, conversation: Conversation) -> dict[str, Any]:
        contact = conversation.contact
        return {"id": contact.pk, "name": contact.display_name, "phone": contact.phone}


class SendSerializer(serializers.Serializer):  # type: ignore[type-arg]
    type = serializers.ChoiceField(
        choices=["text", "template", "image", "video", "audio", "document", "location", "interactive", "reaction"],
        default="text",
    )
    body = serializers.CharField(required=False, allow_blank=True, default="")
    media_url = serializers.URLField(required=False, default="")
    template_name = serializers.CharField(required=False, default="")
    template_language = serializers.CharField(required=False, default="")
    template_variables = serializers.JSONField(required=False, default=dict)
    payload = serializers.JSONField(required=False, default=dict)
    idempotency_key = serializers.CharField(required=False, max_length=100, default="")
    is_marketing = serializers.BooleanField(required=False, default=False)


class IdempotencyConflict(exceptions.APIException):
    status_code = 422
    default_detail = "This Idempotency-Key was already used with another body; use a new key for a new message."
    default_code = "idempotency_conflict"


def _same_send(message: Message, fields: dict[str, Any]) -> bool:
    """Whether a request asks for what this message already is (the body of an idempotent replay)."""
    return all(
        getattr(message, name) == fields[name]
        for name in (
            "type",
            "body",
            "media_url",
            "template_name",
            "template_language",
            "template_variables",
            "payload",
            "is_marketing",
        )
    )


class CannedResponseSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = CannedResponse
        fields = ["id", "shortcut", "title", "body"]


class ConversationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """Conversations the caller may see. Filters: ?view=all|mine|unassigned, ?status=, ?channel=, ?tag=,
    ?q= (name, phone, message words); pages by ?cursor= (the `next_cursor` of the previous page)."""

    serializer_class = ConversationSerializer
    pagination_class = NextCursorDocumented  # the list pages by cursor itself (conversations_page)
    required_actions = {
        "list": Action.CONVERSATION_VIEW,
        "retrieve": Action.CONVERSATION_VIEW,
        "messages": Action.CONVERSATION_VIEW,  # POST (send) also needs conversation.reply, checked inside
        "assign": Action.CONVERSATION_ASSIGN,
        "status": Action.CONVERSATION_ASSIGN,
        "notes": Action.CONVERSATION_REPLY,
    }

    def get_queryset(self) -> QuerySet[Conversation]:
        return conversations_visible_to(user=self.request.user, role=self.request.membership.role)  # type: ignore[attr-defined]

    @extend_schema(
        parameters=[
            OpenApiParameter("view", str, enum=["all", "mine", "unassigned"]),
            OpenApiParameter("status", str),
            OpenApiParameter("channel", int),
            OpenApiParameter("tag", str),
            OpenApiParameter("q", str, description="Name, phone or words of a message"),
        ],
        responses=ConversationSerializer,
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        params = request.query_params
        try:
            raw_limit = str(params.get("limit", ""))
            limit = min(int(raw_limit), 200) if raw_limit.isdigit() and int(raw_limit) > 0 else 30
            page, next_cursor = conversations_page(self.get_queryset(), params, user=request.user, limit=limit)
        except ValueError as exc:
            raise ValidationError({"cursor": ["Not a cursor from this API; start again without it."]}) from exc
        return Response({"results": ConversationSerializer(page, many=True).data, "next_cursor": next_cursor or None})

    @extend_schema(
        methods=["GET"],
        parameters=[OpenApiParameter("before", int, description="A message id: the page of older messages")],
        responses=inline_serializer(
            "MessagePage", {"results": MessageSerializer(many=True), "has_older": serializers.BooleanField()}
        ),
    )
    @extend_schema(
        methods=["POST"],
        request=SendSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                location=OpenApiParameter.HEADER,
                required=False,
                description="Up to 100 characters. The same key and body answer the message the first request "
                "made (200, `Idempotent-Replayed: true`) and send nothing more; the same key with another body "
                "is refused (422).",
            )
        ],
        responses={
            201: MessageSerializer,
            200: OpenApiResponse(MessageSerializer, description="A replay: the message this key already made."),
            422: OpenApiResponse(description="This idempotency key was used with another body."),
        },
    )
    @action(detail=True, methods=["get", "post"])
    def messages(self, request: Request, pk: str | None = None) -> Response:
        """GET: newest messages first page (?before=<message id> for older). POST: send a message."""
        conversation = self.get_object()
        if request.method == "GET":
            before = request.query_params.get("before", "")
            items, has_older = conversation_messages(
                conversation=conversation, before=int(before) if before.isdigit() else None
            )
            return Response({"results": MessageSerializer(items, many=True).data, "has_older": has_older})
        permission_check(request.membership, Action.CONVERSATION_REPLY)  # type: ignore[attr-defined]
        data = SendSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        header_key = request.headers.get("Idempotency-Key", "").strip()
        if header_key:
            if len(header_key) > 100:
                raise ValidationError({"Idempotency-Key": ["At most 100 characters."]})
            fields["idempotency_key"] = header_key
        prior = (
            Message.objects.filter(idempotency_key=fields["idempotency_key"]).first()
            if fields["idempotency_key"]
            else None
        )
        if prior is not None and prior.conversation_id == conversation.pk and not _same_send(prior, fields):
            raise IdempotencyConflict()
        try:
            message = message_send(conversation=conversation, author=request.user, **fields)
        except DjangoValidationError as exc:
            raise ValidationError({"detail": exc.messages, "code": exc.code}) from exc
        replayed = prior is not None  # (two racing first requests both answer 201, with the one message)
        response = Response(MessageSerializer(message).data, status=200 if replayed else 201)
        if replayed:
            response["Idempotent-Replayed"] = "true"
        return response

    @action(detail=True, methods=["post"], serializer_class=serializers.Serializer)
    def assign(self, request: Request, pk: str | None = None) -> Response:
        """{"assignee": <user id> | null}"""
        conversation = self.get_object()
        user_id = request.data.get("assignee") if isinstance(request.data, dict) else None
        member = members_of(tenant=request.tenant).filter(user_id=user_id).first() if user_id else None  # type: ignore[attr-defined]
        if user_id and member is None:
            raise ValidationError({"assignee": ["Not a member of this workspace."]})
        conversation_assign(conversation=conversation, assignee=member.user if member else None)
        return Response(ConversationSerializer(conversation).data)

    @action(detail=True, methods=["post"], serializer_class=serializers.Serializer)
    def status(self, request: Request, pk: str | None = None) -> Response:
        """{"status": "open" | "pending" | "resolved"}"""
        conversation = self.get_object()
        value = request.data.get("status") if isinstance(request.data, dict) else None
        if value not in ConversationStatus.values:
            raise ValidationError({"status": [f"One of {', '.join(ConversationStatus.values)}."]})
        conversation_set_status(conversation=conversation, status=str(value))
        return Response(ConversationSerializer(conversation).data)

    @action(detail=True, methods=["post"], serializer_class=serializers.Serializer)
    def notes(self, request: Request, pk: str | None = None) -> Response:
        """{"body": "..."}: an internal note, never sent."""
        body = str(request.data.get("body", "")).strip() if isinstance(request.data, dict) else ""
        if not body:
            raise ValidationError({"body": ["This field is required."]})
        note = note_add(conversation=self.get_object(), body=body, author=request.user)
        return Response(MessageSerializer(note).data, status=201)


class CannedResponseViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    serializer_class = CannedResponseSerializer
    queryset = CannedResponse.objects.all()
    required_actions = crud_actions(read=Action.SAVEDREPLY_VIEW, write=Action.SAVEDREPLY_MANAGE)
