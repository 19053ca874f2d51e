from django.urls import path

from inbox import views

urlpatterns = [
    path("channels/", views.channel_list, name="channel_list"),
    path("channels/add/<str:kind>/", views.channel_add, name="channel_add"),
    path("channels/<int:pk>/remove/", views.channel_remove, name="channel_remove"),
    path("conversations/", views.conversation_list, name="conversation_list"),
    path("conversations/<int:pk>/", views.conversation_detail, name="conversation_detail"),
    path("conversations/<int:pk>/messages/<int:message_id>/", views.message_row, name="message_row"),
    path("conversations/<int:pk>/events/<int:event_id>/", views.event_row, name="event_row"),
    path("conversations/<int:pk>/older/", views.conversation_older, name="conversation_older"),
    path("conversations/<int:pk>/action/", views.conversation_action, name="conversation_action"),
    path("inbox/replies/", views.canned_list, name="canned_list"),
    path("inbox/settings/", views.inbox_settings, name="inbox_settings"),
]
