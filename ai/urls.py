from django.urls import path

from ai import views

urlpatterns = [
    path("ai/settings/", views.ai_settings_view, name="ai_settings"),
    path("ai/assistants/", views.assistant_list, name="assistant_list"),
    path("ai/assistants/new/", views.assistant_edit, name="assistant_create"),
    path("ai/assistants/<int:pk>/", views.assistant_edit, name="assistant_edit"),
    path("ai/assistants/<int:pk>/delete/", views.assistant_delete_view, name="assistant_delete"),
    path("ai/assistants/<int:pk>/playground/", views.assistant_playground, name="assistant_playground"),
    path("conversations/<int:pk>/bot/take-over/", views.conversation_take_over, name="conversation_take_over"),
    path("conversations/<int:pk>/bot/give-back/", views.conversation_give_back, name="conversation_give_back"),
    path("ai/faq-suggestions/", views.faq_suggestion_list, name="faq_suggestion_list"),
    path("ai/faq-suggestions/<int:pk>/", views.faq_suggestion_review, name="faq_suggestion_review"),
    path("conversations/<int:pk>/copilot/<slug:task>/", views.copilot_task, name="copilot_task"),
    path("ai/tools/", views.http_tool_list, name="http_tool_list"),
    path("ai/tools/new/", views.http_tool_edit, name="http_tool_create"),
    path("ai/tools/<int:pk>/", views.http_tool_edit, name="http_tool_edit"),
    path("ai/tools/<int:pk>/action/", views.http_tool_action, name="http_tool_action"),
    path("ai/lead-progression/", views.lead_settings_view, name="lead_settings"),
    path("ai/lead-suggestions/<int:pk>/decide/", views.lead_suggestion_decide, name="lead_suggestion_decide"),
]
