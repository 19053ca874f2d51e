from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny
from rest_framework.routers import DefaultRouter

from accounts.api import ApiTokenViewSet, AuditEntryViewSet, MemberViewSet, MeView
from ai.api import AssistantViewSet, CopilotView, FaqSuggestionViewSet, HttpToolViewSet, LeadSuggestionViewSet
from alerts.api import AlertViewSet
from analytics.api import AnalyticsViewSet
from automations.api import RuleRunViewSet, RuleViewSet
from campaigns.api import CadenceViewSet, CampaignViewSet, EnrollmentViewSet
from crm.api import ContactViewSet, CustomFieldViewSet, SegmentViewSet, TagViewSet
from inbox.api import CannedResponseViewSet, ConversationViewSet
from kanban.api import BoardViewSet, CardViewSet, StageViewSet
from knowledge.api import DocumentViewSet, KnowledgeBaseViewSet, QAPairViewSet
from voice.api import CallViewSet, VoiceAgentViewSet, VoiceCampaignViewSet, VoiceNumberViewSet
from webhooks.api import DeliveryViewSet, EndpointViewSet

router = DefaultRouter()
router.register("members", MemberViewSet, basename="member")
router.register("tokens", ApiTokenViewSet, basename="token")
router.register("audit", AuditEntryViewSet, basename="audit-entry")
router.register("contacts", ContactViewSet, basename="contact")
router.register("tags", TagViewSet, basename="tag")
router.register("custom-fields", CustomFieldViewSet, basename="custom-field")
router.register("segments", SegmentViewSet, basename="segment")
router.register("conversations", ConversationViewSet, basename="conversation")
router.register("saved-replies", CannedResponseViewSet, basename="saved-reply")
router.register("boards", BoardViewSet, basename="board")
router.register("stages", StageViewSet, basename="stage")
router.register("cards", CardViewSet, basename="card")
router.register("campaigns", CampaignViewSet, basename="campaign")
router.register("cadences", CadenceViewSet, basename="cadence")
router.register("enrollments", EnrollmentViewSet, basename="enrollment")
router.register("calls", CallViewSet, basename="call")
router.register("voice-agents", VoiceAgentViewSet, basename="voice-agent")
router.register("voice-numbers", VoiceNumberViewSet, basename="voice-number")
router.register("voice-campaigns", VoiceCampaignViewSet, basename="voice-campaign")
router.register("webhook-endpoints", EndpointViewSet, basename="webhook-endpoint")
router.register("webhook-deliveries", DeliveryViewSet, basename="webhook-delivery")
router.register("knowledge-bases", KnowledgeBaseViewSet, basename="knowledge-base")
router.register("knowledge-documents", DocumentViewSet, basename="knowledge-document")
router.register("qa-pairs", QAPairViewSet, basename="qa-pair")
router.register("assistants", AssistantViewSet, basename="assistant")
router.register("ai-tools", HttpToolViewSet, basename="ai-tool")
router.register("lead-suggestions", LeadSuggestionViewSet, basename="lead-suggestion")
router.register("faq-suggestions", FaqSuggestionViewSet, basename="faq-suggestion")
router.register("analytics", AnalyticsViewSet, basename="analytics")
router.register("rules", RuleViewSet, basename="rule")
router.register("rule-runs", RuleRunViewSet, basename="rule-run")
router.register("alerts", AlertViewSet, basename="alert")

urlpatterns = [
    path("me/", MeView.as_view(), name="api-me"),
    path("schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="api-schema"),
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", permission_classes=[AllowAny]),
        name="api-docs",
    ),
    path("conversations/<int:pk>/copilot/", CopilotView.as_view(), name="api-copilot"),
    path("", include(router.urls)),
]
