from django.urls import path

from whatsapp import views

urlpatterns = [
    path("channels/<int:pk>/templates/", views.template_list, name="template_list"),
    path("channels/<int:pk>/templates/sync/", views.template_sync, name="template_sync"),
    path("conversations/<int:pk>/template/", views.template_send, name="template_send"),
    path("channels/qr/new/", views.qr_channel_new, name="qr_channel_new"),
    path("channels/whatsapp/signup/", views.embedded_signup, name="whatsapp_embedded_signup"),
    path("channels/<int:pk>/qr/", views.qr_channel, name="qr_channel"),
    path("channels/<int:pk>/qr/pacing/", views.qr_pacing, name="qr_pacing"),
]
