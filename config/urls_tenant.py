"""URLs of a tenant domain (<slug>.<BASE_DOMAIN>): the staff UI and the API."""

from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.i18n import set_language

from accounts import views
from analytics import views as analytics_views
from core import pwa
from core.health import health, live

# URLs that name nothing: under /api/ the API's problem+json, elsewhere the usual page.
handler404 = "core.api.not_found_handler"

urlpatterns = [
    path("", analytics_views.dashboard, name="home"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("auth/handoff/", views.handoff_finish, name="handoff_finish"),
    path("auth/social/<str:provider>/", views.social_start, name="social_start"),
    path("invite/<str:token>/", views.invite_accept, name="invite_accept"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(template_name="accounts/password_reset_complete.html"),
        name="password_reset_complete",
    ),
    path("media/<str:schema>/<path:path>", views.media_serve, name="media_serve"),
    path("team/", views.team, name="team"),
    path("team/invitations/<int:pk>/revoke/", views.team_invitation_revoke, name="team_invitation_revoke"),
    path("team/members/<int:pk>/role/", views.team_member_role, name="team_member_role"),
    path("team/members/<int:pk>/remove/", views.team_member_remove, name="team_member_remove"),
    path("team/ownership/", views.team_ownership_transfer, name="team_ownership_transfer"),
    path("settings/", views.tenant_settings, name="tenant_settings"),
    path("settings/api-tokens/", views.api_tokens, name="api_tokens"),
    path("settings/api-tokens/<int:pk>/revoke/", views.api_token_revoke_view, name="api_token_revoke"),
    path("settings/audit/", views.audit_log, name="audit_log"),
    path("i18n/setlang/", set_language, name="set_language"),
    path("health", health, name="health"),
    path("livez", live, name="livez"),
    path("manifest.webmanifest", pwa.manifest, name="pwa_manifest"),
    path("sw.js", pwa.service_worker, name="pwa_sw"),
    path("offline/", pwa.offline, name="pwa_offline"),
    path("api/v1/", include("config.api_urls")),
    path("", include("crm.urls")),
    path("", include("inbox.urls")),
    path("", include("whatsapp.urls")),
    path("", include("kanban.urls")),
    path("", include("campaigns.urls")),
    path("", include("voice.urls")),
    path("", include("webhooks.urls")),
    path("", include("knowledge.urls")),
    path("", include("ai.urls")),
    path("", include("analytics.urls")),
    path("", include("automations.urls")),
    path("", include("alerts.urls")),
    path("", include("reports.urls")),
]
