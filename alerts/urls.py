from django.urls import path

from alerts import views

urlpatterns = [
    path("alerts/", views.alert_list, name="alert_list"),
    path("alerts/<int:pk>/<slug:action>/", views.alert_action, name="alert_action"),
]
