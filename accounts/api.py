from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiToken, AuditEntry, Membership
from accounts.permissions import crud_actions
from accounts.selectors import api_tokens_of, audit_entries_of, members_of
from accounts.services import (
    api_token_create,
    api_token_revoke,
    membership_remove,
    membership_set_role,
    ownership_transfer,
)
from core.roles import Action


class MeSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField()
    role = serializers.CharField()
    tenant = serializers.CharField()


class MemberSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    email = serializers.EmailField(source="user.email", read_only=True)
    name = serializers.CharField(source="user.name", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "name", "role", "created_at"]
        read_only_fields = ["created_at"]


class ApiTokenSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at"]


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    key = serializers.CharField(read_only=True, help_text="Shown only in the response that creates the token.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]
        read_only_fields = [*ApiTokenSerializer.Meta.read_only_fields, "key"]


class MeView(APIView):
    required_actions = {"get": Action.WORKSPACE_VIEW}

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        user = request.user
        data = {
            "id": user.pk,
            "email": user.email,  # type: ignore[union-attr]
            "name": getattr(user, "name", ""),
            "role": request.membership.role,  # type: ignore[attr-defined]
            "tenant": request.tenant.slug,  # type: ignore[attr-defined]
        }
        return Response(MeSerializer(data).data)


class MemberViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    """The team. PATCH {"role": ...} changes a role (owners only make or unmake owners), DELETE removes a
    member, POST .../transfer-ownership/ (owner only) makes that member the owner and you an admin."""

    serializer_class = MemberSerializer
    http_method_names = ["get", "patch", "delete", "post", "head", "options"]
    required_actions = {
        **crud_actions(read=Action.TEAM_VIEW, write=Action.MEMBER_ROLE_CHANGE, delete=Action.MEMBER_REMOVE),
        "transfer_ownership": Action.OWNERSHIP_TRANSFER,
    }

    def get_queryset(self) -> QuerySet[Membership]:
        return members_of(tenant=self.request.tenant)  # type: ignore[attr-defined]

    def perform_update(self, serializer: Any) -> None:
        membership_set_role(
            actor=self.request.membership,  # type: ignore[attr-defined]
            membership=serializer.instance,
            role=serializer.validated_data.get("role", serializer.instance.role),
        )

    def perform_destroy(self, instance: Membership) -> None:
        membership_remove(actor=self.request.membership, membership=instance)  # type: ignore[attr-defined]

    @extend_schema(request=None, responses=MemberSerializer)
    @action(detail=True, methods=["post"], url_path="transfer-ownership")
    def transfer_ownership(self, request: Request, pk: str | None = None) -> Response:
        new_owner = ownership_transfer(actor=request.membership, to=self.get_object())  # type: ignore[attr-defined]
        return Response(MemberSerializer(new_owner).data)


class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    """Your own API tokens in this workspace. DELETE revokes."""

    serializer_class = ApiTokenSerializer
    required_actions = {"list": Action.TOKEN_MANAGE, "create": Action.TOKEN_MANAGE, "destroy": Action.TOKEN_MANAGE}

    def get_queryset(self) -> QuerySet[ApiToken]:
        return api_tokens_of(user=self.request.user, tenant=self.request.tenant)  # type: ignore[arg-type, attr-defined]

    @extend_schema(responses={201: ApiTokenCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, raw = api_token_create(user=request.user, tenant=request.tenant, name=serializer.validated_data["name"])  # type: ignore[arg-type, attr-defined]
        body = dict(ApiTokenSerializer(token).data, key=raw)
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ApiToken) -> None:
        api_token_revoke(token=instance)


class AuditEntrySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "created_at",
            "actor",
            "action",
            "target_type",
            "target_id",
            "target_label",
            "ip",
            "request_id",
            "metadata",
        ]
        read_only_fields = fields


class AuditEntryViewSet(viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """The workspace's audit log, newest first (owners and admins). Filter with ?action=."""

    serializer_class = AuditEntrySerializer
    required_actions = {"list": Action.AUDIT_VIEW, "retrieve": Action.AUDIT_VIEW}

    def get_queryset(self) -> QuerySet[AuditEntry]:
        return audit_entries_of(tenant=self.request.tenant, action=self.request.query_params.get("action", ""))  # type: ignore[attr-defined]

    @extend_schema(parameters=[OpenApiParameter("action", str)])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)
