"""Knowledge bases, their documents (multipart upload, pasted text or a web page; status and progress),
Q&A pairs, and search: `POST /api/v1/knowledge-bases/{id}/search/` runs the same `retrieve()` the
assistants use."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import crud_actions
from core.roles import Action
from knowledge import services
from knowledge.models import Document, DocumentKind, KnowledgeBase, QAPair
from knowledge.selectors import knowledge_bases_list


def _django_errors(exc: DjangoValidationError) -> ValidationError:
    return ValidationError({"detail": exc.messages})


def _kb_filter(request: Request) -> int | None:
    raw = request.query_params.get("knowledge_base", "")
    return int(raw) if raw.isdigit() else None


class KnowledgeBaseSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    document_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = KnowledgeBase
        fields = ["id", "name", "description", "document_count", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class SearchSerializer(serializers.Serializer):  # type: ignore[type-arg]
    query = serializers.CharField(max_length=2000)
    k = serializers.IntegerField(min_value=1, max_value=50, default=10)


class PassageSerializer(serializers.Serializer):  # type: ignore[type-arg]
    chunk_id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    document_name = serializers.CharField()
    text = serializers.CharField()
    score = serializers.FloatField()


class KnowledgeBaseViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    """Knowledge bases of the tenant. `search` answers the ranked passages (hybrid retrieval)."""

    serializer_class = KnowledgeBaseSerializer
    required_actions = {
        **crud_actions(read=Action.KNOWLEDGE_VIEW, write=Action.KNOWLEDGE_MANAGE),
        "search": Action.KNOWLEDGE_VIEW,
    }

    def get_queryset(self) -> QuerySet[KnowledgeBase]:
        return knowledge_bases_list()

    def perform_create(self, serializer: Any) -> None:
        try:
            serializer.instance = services.knowledge_base_create(**serializer.validated_data)
        except DjangoValidationError as exc:
            raise _django_errors(exc) from exc

    def perform_update(self, serializer: Any) -> None:
        kb = serializer.instance
        data = serializer.validated_data
        try:
            serializer.instance = services.knowledge_base_update(
                knowledge_base=kb, name=data.get("name", kb.name), description=data.get("description", kb.description)
            )
        except DjangoValidationError as exc:
            raise _django_errors(exc) from exc

    def perform_destroy(self, instance: KnowledgeBase) -> None:
        services.knowledge_base_delete(knowledge_base=instance)

    @extend_schema(request=SearchSerializer, responses={200: PassageSerializer(many=True)})
    @action(detail=True, methods=["post"])
    def search(self, request: Request, pk: str | None = None) -> Response:
        kb = self.get_object()
        data = SearchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        passages = services.retrieve(
            query=data.validated_data["query"], knowledge_base_ids=[kb.pk], k=data.validated_data["k"]
        )
        return Response({"results": PassageSerializer(passages, many=True).data})


class DocumentSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Document
        fields = [
            "id",
            "knowledge_base",
            "name",
            "kind",
            "source_url",
            "status",
            "progress",
            "error",
            "chunk_count",
            "version",
            "indexed_version",
            "created_at",
            "updated_at",
            "indexed_at",
        ]
        read_only_fields = fields


class DocumentCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """One of: `file` (multipart: PDF, DOCX, TXT, Markdown, CSV of question/answer), `url` (a web page), or
    `text` (pasted; `markdown` true to keep its headings as sections)."""

    knowledge_base = serializers.PrimaryKeyRelatedField(queryset=KnowledgeBase.objects.all())
    file = serializers.FileField(required=False)
    url = serializers.URLField(required=False, max_length=2000)
    text = serializers.CharField(required=False, trim_whitespace=True)
    name = serializers.CharField(required=False, max_length=255, default="")
    markdown = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [key for key in ("file", "url", "text") if attrs.get(key)]
        if len(given) != 1:
            raise ValidationError(_("Send exactly one of: a file, a web page address, or text."))
        return attrs


class DocumentTextSerializer(serializers.Serializer):  # type: ignore[type-arg]
    text = serializers.CharField()
    name = serializers.CharField(required=False, max_length=255, default="")


@extend_schema_view(list=extend_schema(parameters=[OpenApiParameter("knowledge_base", int)]))
class DocumentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    """Documents; ?knowledge_base=<id>. Indexing runs in the background: poll `status` and `progress`.
    PATCH/PUT edits the text of a pasted-text document (and re-indexes it)."""

    serializer_class = DocumentSerializer
    required_actions = {
        **crud_actions(read=Action.KNOWLEDGE_VIEW, write=Action.KNOWLEDGE_MANAGE),
        "reindex": Action.KNOWLEDGE_MANAGE,
    }

    def get_queryset(self) -> QuerySet[Document]:
        found = Document.objects.all()
        kb = _kb_filter(self.request)
        return found.filter(knowledge_base_id=kb) if kb is not None else found

    @extend_schema(request=DocumentCreateSerializer, responses={201: DocumentSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = DocumentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        kb = values["knowledge_base"]
        try:
            if values.get("file"):
                upload = values["file"]
                document = services.document_add_file(
                    knowledge_base=kb,
                    filename=upload.name or "",
                    data=upload.read(settings.KNOWLEDGE_UPLOAD_MAX_BYTES + 1),
                )
            elif values.get("url"):
                document = services.document_add_url(knowledge_base=kb, url=values["url"])
            else:
                document = services.document_add_text(
                    knowledge_base=kb, name=values["name"], text=values["text"], markdown=values["markdown"]
                )
        except DjangoValidationError as exc:
            raise _django_errors(exc) from exc
        return Response(DocumentSerializer(document).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=DocumentTextSerializer, responses={200: DocumentSerializer})
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        document = self.get_object()
        data = DocumentTextSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            document = services.document_update_text(document=document, **data.validated_data)
        except DjangoValidationError as exc:
            raise _django_errors(exc) from exc
        return Response(DocumentSerializer(document).data)

    def perform_destroy(self, instance: Document) -> None:
        services.document_delete(document=instance)

    @extend_schema(request=None, responses={202: DocumentSerializer})
    @action(detail=True, methods=["post"])
    def reindex(self, request: Request, pk: str | None = None) -> Response:
        document = self.get_object()
        services.document_index_enqueue(document)
        return Response(DocumentSerializer(document).data, status=status.HTTP_202_ACCEPTED)


class QAPairSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    knowledge_base = serializers.PrimaryKeyRelatedField(
        queryset=KnowledgeBase.objects.all(), source="document.knowledge_base", required=False
    )

    class Meta:
        model = QAPair
        fields = ["id", "knowledge_base", "document", "question", "answer", "position", "updated_at"]
        read_only_fields = ["document", "position", "updated_at"]


@extend_schema_view(list=extend_schema(parameters=[OpenApiParameter("knowledge_base", int)]))
class QAPairViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    """Question/answer pairs typed by staff (each knowledge base keeps them in one document); every write
    re-indexes that document. Pairs imported from a CSV are listed too but change with their file."""

    serializer_class = QAPairSerializer
    required_actions = crud_actions(read=Action.KNOWLEDGE_VIEW, write=Action.KNOWLEDGE_MANAGE)

    def get_queryset(self) -> QuerySet[QAPair]:
        found = QAPair.objects.select_related("document")
        kb = _kb_filter(self.request)
        return found.filter(document__knowledge_base_id=kb) if kb is not None else found

    def perform_create(self, serializer: Any) -> None:
        kb = serializer.validated_data.get("document", {}).get("knowledge_base")
        if kb is None:
            raise ValidationError({"knowledge_base": [_("This field is required.")]})
        try:
            serializer.instance = services.qa_pair_create(
                knowledge_base=kb,
                question=serializer.validated_data["question"],
                answer=serializer.validated_data["answer"],
            )
        except DjangoValidationError as exc:
            raise _django_errors(exc) from exc

    def perform_update(self, serializer: Any) -> None:
        pair = serializer.instance
        if pair.document.kind != DocumentKind.QA:
            raise ValidationError(
                {"detail": [_("This pair comes from a CSV file: upload the file again to change it.")]}
            )
        data = serializer.validated_data
        try:
            serializer.instance = services.qa_pair_update(
                pair=pair, question=data.get("question", pair.question), answer=data.get("answer", pair.answer)
            )
        except DjangoValidationError as exc:
            raise _django_errors(exc) from exc

    def perform_destroy(self, instance: QAPair) -> None:
        if instance.document.kind != DocumentKind.QA:
            raise ValidationError(
                {"detail": [_("This pair comes from a CSV file: upload the file again to change it.")]}
            )
        services.qa_pair_delete(pair=instance)
