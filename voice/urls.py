from django.urls import path

from voice import campaign_views, views

urlpatterns = [
    path("calls/", views.call_list, name="call_list"),
    path("calls/start/", views.call_start_view, name="call_start"),
    path("calls/<int:pk>/", views.call_detail, name="call_detail"),
    path("calls/<int:pk>/refresh/", views.call_refresh_view, name="call_refresh"),
    path("voice/agents/", views.agent_list, name="voice_agent_list"),
    path("voice/agents/new/", views.agent_edit, name="voice_agent_create"),
    path("voice/agents/<int:pk>/", views.agent_edit, name="voice_agent_edit"),
    path("voice/agents/<int:pk>/sync/", views.agent_sync_view, name="voice_agent_sync"),
    path("voice/campaigns/", campaign_views.voice_campaign_list, name="voice_campaign_list"),
    path("voice/campaigns/new/", campaign_views.voice_campaign_create, name="voice_campaign_create"),
    path("voice/campaigns/<int:pk>/", campaign_views.voice_campaign_detail, name="voice_campaign_detail"),
    path(
        "voice/campaigns/<int:pk>/<slug:operation>/",
        campaign_views.voice_campaign_operation,
        name="voice_campaign_operation",
    ),
    path("voice/settings/", views.voice_settings_view, name="voice_settings"),
    path("voice/numbers/", views.number_list, name="voice_number_list"),
    path("voice/numbers/buy/", views.number_buy_view, name="voice_number_buy"),
    path("voice/numbers/<int:pk>/", views.number_detail, name="voice_number_detail"),
    path("voice/numbers/<int:pk>/<slug:operation>/", views.number_operation, name="voice_number_operation"),
]
