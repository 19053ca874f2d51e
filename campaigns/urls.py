from django.urls import path

from campaigns import views

urlpatterns = [
    path("campaigns/", views.campaign_list, name="campaign_list"),
    path("campaigns/new/", views.campaign_edit, name="campaign_new"),
    path("campaigns/quiet-hours/", views.quiet_hours, name="quiet_hours"),
    path("campaigns/<int:pk>/", views.campaign_detail, name="campaign_detail"),
    path("campaigns/<int:pk>/edit/", views.campaign_edit, name="campaign_edit"),
    path("campaigns/<int:pk>/export.csv", views.campaign_export, name="campaign_export"),
    path("campaigns/<int:pk>/<slug:action>/", views.campaign_action, name="campaign_action"),
    path("cadences/", views.cadence_list, name="cadence_list"),
    path("cadences/new/", views.cadence_edit, name="cadence_new"),
    path("cadences/<int:pk>/", views.cadence_detail, name="cadence_detail"),
    path("cadences/<int:pk>/edit/", views.cadence_edit, name="cadence_edit"),
    path("cadences/<int:pk>/live/", views.cadence_live, name="cadence_live"),
    path("cadences/<int:pk>/<str:action>/", views.cadence_pause_resume, name="cadence_pause_resume"),
    path("cadences/enrollments/<int:pk>/stop/", views.enrollment_stop, name="enrollment_stop"),
    path("cadences/enrollments/<int:pk>/<str:action>/", views.enrollment_pause_resume, name="enrollment_pause_resume"),
    path("contacts/<int:contact_id>/cadence/", views.cadence_enroll_contact, name="cadence_enroll_contact"),
]
