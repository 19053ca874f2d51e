from django.urls import path

from voice import views

urlpatterns = [
    path("calls/", views.call_list, name="call_list"),
    path("calls/start/", views.call_start_view, name="call_start"),
    path("calls/<int:pk>/", views.call_detail, name="call_detail"),
    path("calls/<int:pk>/refresh/", views.call_refresh_view, name="call_refresh"),
    path("voice/agents/", views.agent_list, name="voice_agent_list"),
    path("voice/agents/new/", views.agent_edit, name="voice_agent_create"),
    path("voice/agents/<int:pk>/", views.agent_edit, name="voice_agent_edit"),
    path("voice/settings/", views.voice_settings_view, name="voice_settings"),
]
