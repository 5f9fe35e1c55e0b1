"""Settings for every environment, read from environment variables (12-factor).

`make run` works with none of them set: SQLite under var/, the embedded local provider and
Celery on kombu's filesystem transport. Production sets DEBUG=0, SECRET_KEY, ALLOWED_HOSTS,
DATABASE_URL and CELERY_BROKER_URL; see the configuration table in README.md.
"""

import shlex
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from controlplane.env import env_bool, env_choice, env_float, env_int, env_list, env_str
from controlplane.role_rules import parse_role_rules

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
# Written by `make run`'s process supervisor (controlplane/supervisor.py); pages warn about the
# unexpected exits it records. Absent outside `make run`.
SUPERVISOR_STATE_FILE = VAR_DIR / "processes.json"

DEBUG = env_bool("DEBUG", False)
# The product's 404/500 pages even under DEBUG, outside /admin/ (`make run` sets it; see
# controlplane/error_views.py). Off: DEBUG shows Django's technical pages, for development.
PRODUCT_ERROR_PAGES_IN_DEBUG = env_bool("PRODUCT_ERROR_PAGES_IN_DEBUG", False)

_DEV_SECRET_KEY = "django-insecure-dev-only-key-never-used-when-debug-is-off"
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "The environment variable SECRET_KEY is required when DEBUG is off (set DEBUG=1 for local development)."
        )
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("The environment variable ALLOWED_HOSTS is required when DEBUG is off.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "controlplane.admin.ControlPlaneAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "workloads",
    "workloads.providers.local",  # the app `localcloud`: the embedded provider's tables
    "dashboards",
    "demo",  # seed_demo, generate_traffic; the product never imports it
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "controlplane.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "controlplane.middleware.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "controlplane.iap.IapMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "controlplane.error_views.ProductErrorPagesMiddleware",
    "dashboards.errors.ErrorPageMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"
ASGI_APPLICATION = "controlplane.asgi.application"

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
                "controlplane.context_processors.roles",
                "dashboards.context_processors.navigation",
                "dashboards.context_processors.incident",
                "dashboards.context_processors.failing_channels",
                "dashboards.context_processors.time_display",
                "dashboards.context_processors.environments",
                "controlplane.context_processors.process_exits",
            ],
        },
    },
]


# --- Database -------------------------------------------------------------------------------
def _database_from_url(url: str) -> dict:
    try:
        config = dj_database_url.parse(url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0))
    except ValueError as exc:
        raise ImproperlyConfigured(f"The environment variable DATABASE_URL is not valid: {exc}") from None
    engine = config["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        # Several worker processes share the file in `make run`: WAL lets readers run beside one
        # writer, IMMEDIATE takes the write lock at BEGIN so two writers queue instead of failing
        # with "database is locked" half-way through a transaction.
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    elif engine == "django.db.backends.postgresql":
        config.setdefault("OPTIONS", {})["application_name"] = "controlplane"
        if env_bool("DB_PREPARED_STATEMENTS", True):
            # Parameters bound on the server and statements prepared after 5 runs on a connection:
            # PostgreSQL stops parsing and planning the hot queries again and again, which took half
            # its CPU per ingested event. Mind that Django then binds an IntegerField value (and a
            # bare `Value(int)`) as a 32-bit int4 and a larger number wraps around silently: give
            # such a Value `output_field=BigIntegerField()`. Off (`0`) behind a transaction pooler
            # that cannot keep prepared statements (PgBouncer before 1.21).
            config["OPTIONS"]["server_side_binding"] = True
            config["OPTIONS"]["prepare_threshold"] = 5
        config["CONN_HEALTH_CHECKS"] = True
    else:
        raise ImproperlyConfigured(
            "The environment variable DATABASE_URL must point to PostgreSQL (postgres://) or SQLite "
            f"(sqlite:///path), got engine {engine}."
        )
    return config


DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'controlplane.sqlite3'}")
DATABASES = {"default": _database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Ingestion accepts batches of up to 10 MB (see workloads.services.ingestion.MAX_BODY_BYTES).
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024 + 64 * 1024

# --- Auth -------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboards:overview"
LOGOUT_REDIRECT_URL = "login"

# --- Single sign-on (docs/operations.md, "Single sign-on") ----------------------------------------
# Roles of people who sign in through OIDC or IAP: KIND:VALUE=ROLE rules (controlplane/role_rules.py).
try:
    SSO_ROLE_RULES = parse_role_rules(env_str("SSO_ROLE_RULES", ""))
except ValueError as exc:
    raise ImproperlyConfigured(f"The environment variable SSO_ROLE_RULES is not valid: {exc}.") from None
# Off: the login form is gone and passwords are refused everywhere; SSO and API tokens stay.
LOCAL_PASSWORD_LOGIN = env_bool("LOCAL_PASSWORD_LOGIN", True)
# Any OpenID Connect provider, through mozilla-django-oidc (code flow with PKCE). On when a client id is set.
OIDC_RP_CLIENT_ID = env_str("OIDC_CLIENT_ID", "")
OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
OIDC_RP_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET", "")  # empty for a public client (PKCE only)
OIDC_OP_ISSUER = env_str("OIDC_ISSUER", "", required=OIDC_ENABLED)
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_AUTHORIZATION_ENDPOINT", "", required=OIDC_ENABLED)
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_TOKEN_ENDPOINT", "", required=OIDC_ENABLED)
OIDC_OP_USER_ENDPOINT = env_str("OIDC_USERINFO_ENDPOINT", "", required=OIDC_ENABLED)
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_JWKS_URI", "", required=OIDC_ENABLED)
OIDC_RP_SIGN_ALGO = env_choice("OIDC_SIGN_ALGO", ("rs256", "es256", "ps256"), "rs256").upper()
OIDC_RP_SCOPES = env_str("OIDC_SCOPES", "openid email profile")
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "groups")
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "single sign-on")  # "Sign in with <name>"
OIDC_USE_PKCE = True
OIDC_TIMEOUT = 10
OIDC_CALLBACK_CLASS = "controlplane.oidc.OidcCallbackView"
OIDC_AUTHENTICATE_CLASS = "controlplane.oidc.OidcAuthenticateView"
LOGIN_REDIRECT_URL_FAILURE = "login"
# Identity-Aware Proxy in front of the service: its signed header signs people in. The audience is
# /projects/PROJECT_NUMBER/global/backendServices/SERVICE_ID (or .../apps/PROJECT_ID for App Engine).
IAP_AUDIENCE = env_str("IAP_AUDIENCE", "")
IAP_CERTS_URL = env_str("IAP_CERTS_URL", "https://www.gstatic.com/iap/verify/public_key")
# google-group: role rules ask the Cloud Identity Groups API (workloads/providers/gcp/groups.py) with
# the service's credentials; a person's groups are kept this long, and a lookup waits this long.
GOOGLE_GROUPS_API_URL = env_str("GOOGLE_GROUPS_API_URL", "https://cloudidentity.googleapis.com")
GOOGLE_GROUPS_CACHE_SECONDS = env_int("GOOGLE_GROUPS_CACHE_SECONDS", 300, minimum=0, maximum=86400)
GOOGLE_GROUPS_TIMEOUT_SECONDS = env_float("GOOGLE_GROUPS_TIMEOUT_SECONDS", 5.0, minimum=0.5, maximum=60.0)
if not LOCAL_PASSWORD_LOGIN and not (OIDC_ENABLED or IAP_AUDIENCE):
    raise ImproperlyConfigured(
        "LOCAL_PASSWORD_LOGIN=0 needs single sign-on: set OIDC_CLIENT_ID (and the OIDC_* endpoints) or IAP_AUDIENCE."
    )
AUTHENTICATION_BACKENDS = (
    (["django.contrib.auth.backends.ModelBackend"] if LOCAL_PASSWORD_LOGIN else [])
    + (["controlplane.oidc.OidcBackend"] if OIDC_ENABLED else [])
    + (["controlplane.iap.IapBackend"] if IAP_AUDIENCE else [])
)


# --- Cache and rate limits ------------------------------------------------------------------------
def _cache_from_url(url: str) -> dict:
    if url.startswith(("redis://", "rediss://", "unix://")):
        # Short timeouts: the rate limits fail open when the cache is unreachable, quickly.
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "controlplane",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    if url == "locmem://":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "controlplane"}
    raise ImproperlyConfigured(
        f"The environment variable CACHE_URL must be redis://host:port/db, rediss://... or locmem://, got {url!r}."
    )


# Local memory (one count per process) unless a Redis URL is given: then limits hold across processes.
CACHE_URL = env_str("CACHE_URL") or env_str("REDIS_URL") or "locmem://"
CACHES = {"default": _cache_from_url(CACHE_URL)}
# Failed logins within the window per source address, per username from one address, and per
# username from all addresses together (a much higher ceiling, so a flood from one address cannot
# lock the real user out; see workloads/services/login_limits.py): past any, the login page answers
# 429 with Retry-After until the window ends. 0 turns a limit off.
LOGIN_FAILURES_PER_USERNAME = env_int("LOGIN_FAILURES_PER_USERNAME", 10, minimum=0)
LOGIN_FAILURES_PER_USERNAME_ALL_ADDRESSES = env_int("LOGIN_FAILURES_PER_USERNAME_ALL_ADDRESSES", 100, minimum=0)
LOGIN_FAILURES_PER_IP = env_int("LOGIN_FAILURES_PER_IP", 50, minimum=0)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 300, minimum=1, maximum=86400)
# Ingestion requests per token (or per logged-in user) and window; generous, against runaway
# producers, not as a quota. 0 turns it off.
INGEST_RATE_LIMIT_REQUESTS = env_int("INGEST_RATE_LIMIT_REQUESTS", 60000, minimum=0)
INGEST_RATE_LIMIT_WINDOW_SECONDS = env_int("INGEST_RATE_LIMIT_WINDOW_SECONDS", 60, minimum=1, maximum=86400)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# In development whitenoise serves straight from the app and static/ folders (no collectstatic).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Security (production) ----------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Sent on every HTML response (controlplane/csp.py): scripts and styles from our origin only, no
# inline script, no eval; a page that needs more relaxes it for itself with csp_relaxed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
if not DEBUG:
    # Cloud Run (and most load balancers) terminate TLS and forward the scheme in this header.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
# Only trust X-Forwarded-For for the client's address (audit log, login limits) when a proxy we
# run sets it. Each proxy appends one entry; the client's address is the one the outermost of our
# TRUSTED_PROXY_HOPS proxies appended, counted from the right (Cloud Run's front end: 1; a Google
# external load balancer in front of Cloud Run appends two, "client, lb": 2). Entries further left
# are whatever the client sent and are never used.
TRUST_X_FORWARDED_FOR = env_bool("TRUST_X_FORWARDED_FOR", False)
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 1, minimum=1, maximum=10)

# --- REST API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "workloads.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["workloads.api.permissions.RolePermission"],
    "DEFAULT_FILTER_BACKENDS": [
        # Override-only users' rows: the environments where they have a role.
        "workloads.api.permissions.EnvironmentVisibilityFilterBackend",
        # django-filter's backend, with a refused choice naming the valid ones.
        "workloads.api.choices.ChoiceListingFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "workloads.api.pagination.Pagination",
    "DEFAULT_SCHEMA_CLASS": "workloads.api.schema.ControlPlaneAutoSchema",
    "EXCEPTION_HANDLER": "workloads.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_PARSER_CLASSES": ["workloads.api.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Async workloads control plane API",
    "DESCRIPTION": (
        "Registry of workload classes, ingestion, telemetry and operator actions for async work on "
        "Cloud Run Worker Pools fed by Pub/Sub. Authenticate with `Authorization: Bearer <token>` "
        "(tokens are issued by admins) or a browser session."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs are public: they describe the API, they hold no data.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "workloads.api.schema.mark_old_spellings",
    ],
    "ENUM_NAME_OVERRIDES": {
        "SloKindEnum": "workloads.models.classes.SloKind",
        "DeadLetterStatusEnum": "workloads.models.deadletters.DeadLetterStatus",
        "EventStatusEnum": "workloads.api.ingestion.EVENT_STATUSES",
        "MigrationPhaseEnum": "workloads.models.migration.Phase",
        "MigrationStepEnum": "workloads.api.migration.ADVANCE_PHASES",
    },
}

# --- Celery -----------------------------------------------------------------------------------
CELERY_DATA_DIR = VAR_DIR / "celery"
# Beat keeps its schedule file here whatever the broker, and cannot create the folder itself.
CELERY_DATA_DIR.mkdir(parents=True, exist_ok=True)
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The embedded broker for one machine: messages are files under var/celery/queue.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_DATA_DIR / "queue"),
        "data_folder_out": str(CELERY_DATA_DIR / "queue"),
        "processed_folder": str(CELERY_DATA_DIR / "processed"),
        "control_folder": str(CELERY_DATA_DIR / "control"),
        "store_processed": False,
    }
    # kombu does not create its data folders; without them the first publish fails.
    for _folder in ("queue", "processed", "control"):
        (CELERY_DATA_DIR / _folder).mkdir(parents=True, exist_ok=True)
# The broker of Celery *runtimes* the control plane observes and dispatches to (a class whose
# runtime is `celery`: its events are sent as tasks there, and `manage.py observe_celery` receives
# that broker's task events). By default the embedded broker's URL, in folders of its own.
RUNTIME_CELERY_BROKER_URL = env_str("RUNTIME_CELERY_BROKER_URL", CELERY_BROKER_URL)
RUNTIME_CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if RUNTIME_CELERY_BROKER_URL.startswith("filesystem://"):
    _runtime_dir = VAR_DIR / "runtime-celery"
    RUNTIME_CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_runtime_dir / "queue"),
        "data_folder_out": str(_runtime_dir / "queue"),
        "processed_folder": str(_runtime_dir / "processed"),
        "control_folder": str(_runtime_dir / "control"),
        "store_processed": False,
    }
    for _folder in ("queue", "processed", "control"):
        (_runtime_dir / _folder).mkdir(parents=True, exist_ok=True)
RUNTIME_CELERY_REPORT_INTERVAL_SECONDS = env_int("RUNTIME_CELERY_REPORT_INTERVAL_SECONDS", 60, minimum=1)
# The escape hatch's control signals to observed runtimes (docs/migration.md): the HMAC secret of
# their signature (empty: signals go unsigned) and how long a sent
# signal may go unacknowledged before the screen calls the runtime silent.
RUNTIME_CONTROL_SIGNING_SECRET = env_str("RUNTIME_CONTROL_SIGNING_SECRET", "")
RUNTIME_CONTROL_ACK_SECONDS = env_int("RUNTIME_CONTROL_ACK_SECONDS", 120, minimum=1)
# Backfill (docs/migration.md section 2): how far back a class's past is read from Cloud
# Monitoring (its retention of full-resolution points is 6 weeks), and whether registering a
# class on an observed runtime that publishes its own metrics reads that past at once.
RUNTIME_BACKFILL_MAX_DAYS = env_int("RUNTIME_BACKFILL_MAX_DAYS", 42, minimum=1, maximum=42)
RUNTIME_BACKFILL_ON_REGISTER = env_bool("RUNTIME_BACKFILL_ON_REGISTER", True)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_BEAT_SCHEDULE_FILENAME = str(CELERY_DATA_DIR / "beat-schedule")
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict = {
    # Pending actions the broker never delivered, and running ones whose worker died.
    "actions-resume": {"task": "workloads.tasks.actions_resume", "schedule": 30.0},
}

# --- Telemetry ----------------------------------------------------------------------------------
# Metric polling into rollups, SLO evaluation and downsampling run as beat ticks (each idempotent).
TELEMETRY_POLL_INTERVAL_SECONDS = env_int("TELEMETRY_POLL_INTERVAL_SECONDS", 60, minimum=10)
TELEMETRY_ALERTS_INTERVAL_SECONDS = env_int("TELEMETRY_ALERTS_INTERVAL_SECONDS", 60, minimum=10)
TELEMETRY_DOWNSAMPLE_INTERVAL_SECONDS = env_int("TELEMETRY_DOWNSAMPLE_INTERVAL_SECONDS", 3600, minimum=60)
# Each poll re-reads the last N minutes: Cloud Monitoring points arrive minutes late.
TELEMETRY_POLL_WINDOW_MINUTES = env_int("TELEMETRY_POLL_WINDOW_MINUTES", 10, minimum=1, maximum=1440)
# Also poll the minute under way (partial values, replaced by later polls). For the embedded local
# provider, which answers for "now" exactly; Cloud Monitoring's points arrive minutes late anyway.
TELEMETRY_POLL_CURRENT_MINUTE = env_bool("TELEMETRY_POLL_CURRENT_MINUTE", False)
TELEMETRY_MINUTE_RETENTION_DAYS = env_int("TELEMETRY_MINUTE_RETENTION_DAYS", 14, minimum=1, maximum=90)
TELEMETRY_HOUR_RETENTION_DAYS = env_int("TELEMETRY_HOUR_RETENTION_DAYS", 400, minimum=7)
TELEMETRY_POLL_RUN_RETENTION_DAYS = env_int("TELEMETRY_POLL_RUN_RETENTION_DAYS", 7, minimum=1)
# A class whose newest sample is older than this is shown as stale, never as healthy.
TELEMETRY_STALE_AFTER_SECONDS = env_int("TELEMETRY_STALE_AFTER_SECONDS", 900, minimum=60)
CELERY_BEAT_SCHEDULE["telemetry-poll"] = {
    "task": "workloads.tasks.telemetry_poll",
    "schedule": float(TELEMETRY_POLL_INTERVAL_SECONDS),
}
CELERY_BEAT_SCHEDULE["telemetry-alerts"] = {
    "task": "workloads.tasks.telemetry_alerts_evaluate",
    "schedule": float(TELEMETRY_ALERTS_INTERVAL_SECONDS),
}
CELERY_BEAT_SCHEDULE["telemetry-downsample"] = {
    "task": "workloads.tasks.telemetry_downsample",
    "schedule": float(TELEMETRY_DOWNSAMPLE_INTERVAL_SECONDS),
}

# --- Scaling controller, incident mode and pauses ----------------------------------------------
SCALING_CONTROLLER_INTERVAL_SECONDS = env_int("SCALING_CONTROLLER_INTERVAL_SECONDS", 60, minimum=10)
# A change waits this long after the last one we made: short up (latency), long down (money).
SCALING_COOLDOWN_UP_SECONDS = env_int("SCALING_COOLDOWN_UP_SECONDS", 180, minimum=0)
SCALING_COOLDOWN_DOWN_SECONDS = env_int("SCALING_COOLDOWN_DOWN_SECONDS", 600, minimum=0)
# Differences smaller than this share of the current count (and never less than 1) are ignored.
SCALING_HYSTERESIS_PERCENT = env_int("SCALING_HYSTERESIS_PERCENT", 10, minimum=0, maximum=100)
INCIDENT_DEFAULT_EXPIRY_MINUTES = env_int("INCIDENT_DEFAULT_EXPIRY_MINUTES", 240, minimum=5, maximum=7 * 24 * 60)
POOL_HOLDS_EXPIRY_INTERVAL_SECONDS = env_int("POOL_HOLDS_EXPIRY_INTERVAL_SECONDS", 60, minimum=10)
CELERY_BEAT_SCHEDULE["scaling-controller"] = {
    "task": "workloads.tasks.scaling_controller_tick",
    "schedule": float(SCALING_CONTROLLER_INTERVAL_SECONDS),
}
CELERY_BEAT_SCHEDULE["pool-holds-expire"] = {
    "task": "workloads.tasks.pool_holds_expire",
    "schedule": float(POOL_HOLDS_EXPIRY_INTERVAL_SECONDS),
}

# --- Alert notifications ------------------------------------------------------------------------
# Burn-rate incidents are written to an outbox with the alert change; a beat task delivers them
# (docs/runbook.md, "Alerts and notifications").
NOTIFICATION_DELIVERY_INTERVAL_SECONDS = env_int("NOTIFICATION_DELIVERY_INTERVAL_SECONDS", 10, minimum=1)
NOTIFICATION_HTTP_TIMEOUT_SECONDS = env_float("NOTIFICATION_HTTP_TIMEOUT_SECONDS", 10.0, minimum=0.1, maximum=60)
# Retries back off exponentially (base x 2^attempt, capped) with jitter; give up after N attempts.
NOTIFICATION_RETRY_BASE_SECONDS = env_float("NOTIFICATION_RETRY_BASE_SECONDS", 15.0, minimum=0.1)
NOTIFICATION_RETRY_MAX_SECONDS = env_float("NOTIFICATION_RETRY_MAX_SECONDS", 900.0, minimum=1)
NOTIFICATION_MAX_ATTEMPTS = env_int("NOTIFICATION_MAX_ATTEMPTS", 12, minimum=1, maximum=100)
# A channel whose deliveries have failed for this long raises a banner on every dashboard.
NOTIFICATION_CHANNEL_FAILING_BANNER_SECONDS = env_int("NOTIFICATION_CHANNEL_FAILING_BANNER_SECONDS", 900, minimum=60)
# Notifications and their delivery attempts, resolved incidents and expired silences are deleted
# after this many days by the hourly `prune` task.
NOTIFICATION_RETENTION_DAYS = env_int("NOTIFICATION_RETENTION_DAYS", 30, minimum=1)
NOTIFICATION_EMAIL_FROM = env_str("NOTIFICATION_EMAIL_FROM", "controlplane@localhost")
# Links in notifications: the product's address and the runbook (a class or SLO may set its own).
CONTROLPLANE_PUBLIC_URL = env_str("CONTROLPLANE_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
RUNBOOK_BASE_URL = env_str("RUNBOOK_BASE_URL", "docs/runbook.md")
CELERY_BEAT_SCHEDULE["notifications-deliver"] = {
    "task": "workloads.tasks.notifications_deliver",
    "schedule": float(NOTIFICATION_DELIVERY_INTERVAL_SECONDS),
}

# --- Dead letters -------------------------------------------------------------------------------
# Mirror each class's dead-letter subscription into the database, then run the triage rules.
DEAD_LETTER_SYNC_INTERVAL_SECONDS = env_int("DEAD_LETTER_SYNC_INTERVAL_SECONDS", 30, minimum=5)
# Dead-letter subscriptions read at once (Pub/Sub calls in threads; the mirror's writes stay in
# the task's own thread): an empty read waits on Pub/Sub (about 1 s), so 200 classes take four
# such waits; at most 100, about what one gRPC channel carries at once. A subscription the last
# sync found empty is skipped until this long has passed, or the telemetry poll sees dead letters
# in it.
DEAD_LETTER_SYNC_CONCURRENCY = env_int("DEAD_LETTER_SYNC_CONCURRENCY", 50, minimum=1, maximum=100)
DEAD_LETTER_SYNC_RECHECK_SECONDS = env_int("DEAD_LETTER_SYNC_RECHECK_SECONDS", 300, minimum=0)
TRIAGE_INTERVAL_SECONDS = env_int("TRIAGE_INTERVAL_SECONDS", 60, minimum=10)
# The oldest dead letter not mirrored yet, as a share of the dead-letter subscription's retention
# (7 days), at which the overview warns and an incident opens as a ticket, then as a page
# (docs/runbook.md): past the retention Pub/Sub drops it.
DEAD_LETTER_AGE_TICKET_PERCENT = env_int("DEAD_LETTER_AGE_TICKET_PERCENT", 25, minimum=1, maximum=100)
DEAD_LETTER_AGE_PAGE_PERCENT = env_int("DEAD_LETTER_AGE_PAGE_PERCENT", 50, minimum=1, maximum=100)
# The severity of the incident an unhealthy pool opens (docs/runbook.md section 6): its backlog
# waits with no worker doing anything, so by default someone is paged.
POOL_UNHEALTHY_SEVERITY = env_choice("POOL_UNHEALTHY_SEVERITY", ("page", "ticket"), "page")
# A replay or a discard by filter that would act on more dead letters than this, or on every one
# of its class (in the statuses it selects), needs `confirm_count` naming how many.
DEAD_LETTER_BULK_CONFIRM_THRESHOLD = env_int("DEAD_LETTER_BULK_CONFIRM_THRESHOLD", 100, minimum=1)
# A replay publishes at most this many messages as one batch (and at most half a second's worth
# at its velocity cap). On Pub/Sub a worker killed between a batch's publish and its record
# republishes that batch once on resume (same idempotency keys), so this bounds those copies.
REPLAY_CHUNK_SIZE = env_int("REPLAY_CHUNK_SIZE", 500, minimum=1)
CELERY_BEAT_SCHEDULE["dead-letters-sync"] = {
    "task": "workloads.tasks.dead_letters_sync",
    "schedule": float(DEAD_LETTER_SYNC_INTERVAL_SECONDS),
}
CELERY_BEAT_SCHEDULE["triage-rules-run"] = {
    "task": "workloads.tasks.triage_rules_run",
    "schedule": float(TRIAGE_INTERVAL_SECONDS),
}
# Replayed and discarded dead letters are deleted this long after they were resolved (and last
# seen); new and held ones are kept however old.
DEAD_LETTER_RETENTION_DAYS = env_int("DEAD_LETTER_RETENTION_DAYS", 30, minimum=1)

# --- Retention: scheduled prunes (workloads/services/pruning.py, docs/operations.md) ------------------
# One beat task runs every prune (idempotency keys, local queue and metrics tables, work results,
# actions, dead letters, audit events, sessions); the telemetry downsample prunes rollups itself.
PRUNE_INTERVAL_SECONDS = env_int("PRUNE_INTERVAL_SECONDS", 3600, minimum=60)
# Rows deleted per statement (and transaction): small enough that no prune holds locks for long.
PRUNE_BATCH_SIZE = env_int("PRUNE_BATCH_SIZE", 2000, minimum=1, maximum=100000)
# Finished actions and their steps are deleted this long after they finished.
ACTION_RETENTION_DAYS = env_int("ACTION_RETENTION_DAYS", 90, minimum=1)
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 400, minimum=30)
# Deployment markers (their audit events follow AUDIT_RETENTION_DAYS).
DEPLOYMENT_RETENTION_DAYS = env_int("DEPLOYMENT_RETENTION_DAYS", 90, minimum=7)
CELERY_BEAT_SCHEDULE["prune"] = {"task": "workloads.tasks.prune", "schedule": float(PRUNE_INTERVAL_SECONDS)}

# --- Providers ----------------------------------------------------------------------------------
CONTROLPLANE_PROVIDER = env_choice("CONTROLPLANE_PROVIDER", ("local", "gcp"), "local")
GOOGLE_CLOUD_PROJECT = env_str("GOOGLE_CLOUD_PROJECT", "local-project")
if CONTROLPLANE_PROVIDER == "gcp" and GOOGLE_CLOUD_PROJECT == "local-project":
    raise ImproperlyConfigured(
        "The environment variable GOOGLE_CLOUD_PROJECT is required when CONTROLPLANE_PROVIDER=gcp."
    )
GOOGLE_CLOUD_REGION = env_str("GOOGLE_CLOUD_REGION", "us-central1")
# The environment (workloads/models/environments.py) a class joins when none is named; created on
# first use from GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_REGION (the upgrade puts existing classes there).
DEFAULT_ENVIRONMENT = env_str("DEFAULT_ENVIRONMENT", "default")
# Endpoint overrides for the Cloud Run Admin and Cloud Monitoring clients (tests, private endpoints).
CLOUD_RUN_ENDPOINT = env_str("CLOUD_RUN_ENDPOINT")
CLOUD_MONITORING_ENDPOINT = env_str("CLOUD_MONITORING_ENDPOINT")
# The longest a consuming worker extends a message's lease at a time (and its stream's ack
# deadline); 0 keeps the client library's default. A worker that vanishes without a nack Pub/Sub
# accepts (killed, or the emulator after the stream closed: docs/gcp.md) has its messages
# redelivered within this; shorter means more ModifyAckDeadline calls while handlers run.
PUBSUB_MAX_LEASE_EXTENSION_SECONDS = env_int("PUBSUB_MAX_LEASE_EXTENSION_SECONDS", 0, minimum=0, maximum=600)
# How long an ingestion request waits for Pub/Sub to take its events. Past it the request answers
# 503 with Retry-After and gives its idempotency keys back, so a web thread is never held for the
# library's whole retry budget (60 s) during an outage; see docs/gcp.md, "Ingestion during an outage".
# A class on Celery gets the same bound for RUNTIME_CELERY_BROKER_URL (workloads/providers/celery.py
# derives its connect, socket and AMQP read/write timeouts from it; docs/migration.md).
INGESTION_PUBLISH_TIMEOUT_SECONDS = env_float("INGESTION_PUBLISH_TIMEOUT_SECONDS", 8.0, minimum=0.5, maximum=60.0)

# --- Local fleet (`manage.py runfleet`, the local provider's worker pools) --------------------------
# The command each local worker instance runs, split like a shell line; {slug} is the class,
# {pool} the pool's resource name, {instance} the instance id. Run from the project directory.
LOCAL_FLEET_WORKER_COMMAND = shlex.split(env_str("LOCAL_FLEET_WORKER_COMMAND") or "") or [
    sys.executable,
    "manage.py",
    "runworker",
    "{slug}",
]
# The local provider's metric history: worker reports (what its metrics are computed from) and
# each pool's instance-count changes. Cloud Monitoring keeps points for weeks, too.
LOCAL_WORKER_REPORT_RETENTION_DAYS = env_int("LOCAL_WORKER_REPORT_RETENTION_DAYS", 7, minimum=1)
LOCAL_POOL_CHANGE_RETENTION_DAYS = env_int("LOCAL_POOL_CHANGE_RETENTION_DAYS", 30, minimum=1)

# --- Worker kit (`manage.py runworker <class>`, the Worker Pool's entrypoint) -----------------------
# Modules whose @handler functions runworker registers; the demo's four handlers by default.
WORKER_HANDLER_MODULES = env_list("WORKER_HANDLER_MODULES", ["demo.handlers"])
# Workers write their counters and latency histogram once per interval (Cloud Monitoring accepts a
# point per series at most every 5 s; a minute matches the rollups).
WORKER_REPORT_INTERVAL_SECONDS = env_int("WORKER_REPORT_INTERVAL_SECONDS", 60, minimum=1, maximum=3600)
# The worker's custom metrics on Cloud Monitoring carry an `instance_id` label so each instance
# writes its own series; it is one of this many slots (a hash of hostname and pid), not the
# hostname itself, so a pool's restarts never make new series without end (docs/gcp.md).
WORKER_METRIC_INSTANCE_SLOTS = env_int("WORKER_METRIC_INSTANCE_SLOTS", 64, minimum=1, maximum=1000)
# Work results (one per delivery settled) are deleted after this many days. At least 8: longer than
# the longest dedup TTL (7 days), so a success that still deduplicates a key is never deleted.
WORK_RESULT_RETENTION_DAYS = env_int("WORK_RESULT_RETENTION_DAYS", 30, minimum=8)
# On SIGTERM a worker stops pulling at once and is gone within this grace: in-flight work finishes
# or is handed back (nacked, redelivered elsewhere), the final metrics report is given what is left
# (at most 2 s) and dropped if the endpoint does not answer. Cloud Run kills 10 s after SIGTERM.
WORKER_SHUTDOWN_GRACE_SECONDS = env_float("WORKER_SHUTDOWN_GRACE_SECONDS", 8.0, minimum=1.0, maximum=3600.0)
# The demo handlers fail on purpose, so the demo shows retries and dead letters: this share of
# attempts fails transiently, and this share of units is poison (fails on every attempt). Both are
# small: failed attempts count against success-ratio SLOs, and the traffic generator already sends
# each class its own share of poison, so only the classes meant to be in trouble burn budget.
DEMO_TRANSIENT_FAILURE_RATE = env_float("DEMO_TRANSIENT_FAILURE_RATE", 0.001, minimum=0.0, maximum=1.0)
DEMO_POISON_RATE = env_float("DEMO_POISON_RATE", 0.0, minimum=0.0, maximum=1.0)

# --- Logging ------------------------------------------------------------------------------------
LOG_LEVEL = env_choice("LOG_LEVEL", ("debug", "info", "warning", "error"), "info").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
