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
]
