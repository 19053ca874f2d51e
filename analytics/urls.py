from django.urls import path

from analytics import views

urlpatterns = [
    path("settings/usage/", views.usage, name="usage"),
    path("analytics/export/<str:report>.csv", views.export_csv, name="analytics_export"),
]
