from django.urls import path

from crm import views

urlpatterns = [
    path("contacts/", views.contact_list, name="contact_list"),
    path("contacts/export/", views.contact_export, name="contact_export"),
    path("contacts/bulk/", views.contact_bulk, name="contact_bulk"),
    path("contacts/fields/", views.custom_field_list, name="custom_field_list"),
    path("contacts/import/", views.import_upload, name="import_upload"),
    path("contacts/imports/<int:pk>/", views.import_detail, name="import_detail"),
    path("contacts/<int:pk>/", views.contact_detail, name="contact_detail"),
    path("contacts/<int:pk>/erase/", views.contact_erase_view, name="contact_erase"),
    path("contacts/<int:pk>/merge/", views.contact_merge_view, name="contact_merge"),
]
