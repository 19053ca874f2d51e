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
]
