from django.urls import path

from automations import views

urlpatterns = [
    path("automations/", views.rule_list, name="rule_list"),
    path("automations/new/", views.rule_new, name="rule_new"),
    path("automations/runs/", views.run_list, name="rule_runs"),
    path("automations/<int:pk>/", views.rule_detail, name="rule_detail"),
    path("automations/<int:pk>/test/", views.rule_test, name="rule_test"),
    path("automations/<int:pk>/toggle/", views.rule_toggle, name="rule_toggle"),
    path("automations/<int:pk>/delete/", views.rule_remove, name="rule_delete"),
]
