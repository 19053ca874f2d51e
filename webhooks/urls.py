from django.urls import path

from webhooks import views

urlpatterns = [
    path("settings/webhooks/", views.endpoint_list, name="webhook_endpoints"),
    path("settings/webhooks/<int:pk>/", views.endpoint_detail, name="webhook_endpoint"),
    path("settings/webhooks/<int:pk>/rotate/", views.endpoint_rotate, name="webhook_endpoint_rotate"),
    path("settings/webhooks/<int:pk>/test/", views.endpoint_test, name="webhook_endpoint_test"),
    path("settings/webhooks/<int:pk>/delete/", views.endpoint_remove, name="webhook_endpoint_delete"),
    path("settings/webhooks/deliveries/<int:pk>/", views.delivery_detail, name="webhook_delivery"),
    path("settings/webhooks/deliveries/<int:pk>/replay/", views.delivery_resend, name="webhook_delivery_replay"),
    path("hooks/in/<str:key>/", views.inbound_receive, name="inbound_receive"),
    path("settings/webhooks/inbound/", views.inbound_list, name="inbound_hooks"),
    path("settings/webhooks/inbound/<int:pk>/", views.inbound_detail, name="inbound_hook"),
    path("settings/webhooks/inbound/<int:pk>/preview/", views.inbound_preview, name="inbound_hook_preview"),
    path("settings/webhooks/inbound/<int:pk>/delete/", views.inbound_delete, name="inbound_hook_delete"),
    path("settings/webhooks/inbound/events/<int:pk>/replay/", views.inbound_event_replay, name="inbound_event_replay"),
]
