from django.urls import path

from reports import views

urlpatterns = [
    path("settings/reports/", views.report_settings_page, name="report_settings"),
    path("settings/reports/test/", views.report_test, name="report_test"),
]
