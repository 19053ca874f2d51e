"""URLs of the main domain (BASE_DOMAIN): landing, signup, login hand-off, OAuth, superadmin."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from django.views.i18n import set_language

from accounts import public_views
from core import pwa
from core.health import health, live
from sms.webhooks import twilio_inbound, twilio_status
from voice.webhooks import retell_webhook, twilio_voice, twilio_voice_recorded, twilio_voice_status
from whatsapp.webhooks import meta_app_webhook, meta_webhook

admin.site.site_header = "Superadmin"
admin.site.site_title = "Superadmin"

urlpatterns = [
    path("", public_views.landing, name="landing"),
    path("signup/", public_views.signup, name="signup"),
    path("login/", public_views.public_login, name="public_login"),
    path("logout/", public_views.public_logout, name="public_logout"),
    path("workspaces/", public_views.workspaces, name="workspaces"),
    path("verify-email/<str:token>/", public_views.verify_email, name="verify_email"),
    path("auth/handoff/start/", public_views.handoff_start, name="handoff_start"),
    path("auth/social/<str:provider>/", public_views.social_start, name="public_social_start"),
    path("accounts/login/", RedirectView.as_view(pattern_name="public_login", query_string=True)),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("i18n/setlang/", set_language, name="set_language"),
    path("health", health, name="health"),
    path("livez", live, name="livez"),
    path("webhooks/whatsapp/", meta_webhook, name="webhook_meta"),
    path("webhooks/whatsapp/app/<str:key>/", meta_app_webhook, name="webhook_meta_app"),
    path("webhooks/twilio/inbound/", twilio_inbound, name="webhook_twilio_inbound"),
    path("webhooks/twilio/status/", twilio_status, name="webhook_twilio_status"),
    path("webhooks/retell/<str:route>/", retell_webhook, name="webhook_retell"),
    path("webhooks/twilio/voice/<str:route>/", twilio_voice, name="webhook_twilio_voice"),
    path("webhooks/twilio/voice/<str:route>/status/", twilio_voice_status, name="webhook_twilio_voice_status"),
    path("webhooks/twilio/voice/<str:route>/recorded/", twilio_voice_recorded, name="webhook_twilio_voice_recorded"),
    path("manifest.webmanifest", pwa.manifest, name="pwa_manifest"),
    path("sw.js", pwa.service_worker, name="pwa_sw"),
    path("offline/", pwa.offline, name="pwa_offline"),
]
