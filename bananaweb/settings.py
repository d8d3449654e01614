"""bananaweb's settings: one module, read from the environment with safe dev defaults."""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("BANANAWEB_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).lower() in ("1", "true", "yes", "on")


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def env_list(name: str, default: str = "") -> list[str]:
    return [
        item.strip()
        for item in os.environ.get(name, default).split(",")
        if item.strip()
    ]


# The development switch (`make run` and the tests set it): development keys and
# plain HTTP. Without it the secrets must be given, whatever DEBUG says: a
# missing one stops the start instead of falling back to a public value.
BANANAWEB_DEV = env_bool("BANANAWEB_DEV", False)
DEBUG = env_bool("DEBUG", False)
DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"
SECRET_KEY = os.environ.get("SECRET_KEY", "") or (
    DEV_SECRET_KEY if BANANAWEB_DEV else ""
)
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Set it to a long random value (python -c 'import "
        "secrets; print(secrets.token_urlsafe(50))'), or set BANANAWEB_DEV=1 for "
        "development."
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "bananaweb",
    "bananaweb.gateway",
    "bananaweb.team",
    "bananaweb.prompts",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.forms",  # Django's form templates, for FormRenderer
    "django_htmx",
    "django_tasks_db",
    "axes",
]

MIDDLEWARE = [
    # First: the request id and one log line for every answer, redirects included.
    "bananaweb.logs.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "bananaweb.middleware.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "bananaweb.middleware.GZipPagesMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "bananaweb.middleware.PrivatePagesMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "bananaweb.urls"
WSGI_APPLICATION = "bananaweb.wsgi.application"

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
                "django.template.context_processors.csp",
                "bananaweb.context_processors.upstream",
                # After Django's csrf (always first) and csp: one masked token per
                # response, and placeholders in a page to be remembered.
                "bananaweb.context_processors.per_response_values",
                "bananaweb.prompts.context_processors.prompt_template_menu",
            ],
        },
    },
]
FORM_RENDERER = "bananaweb.forms.FormRenderer"

if not os.environ.get("DATABASE_URL"):
    VAR_DIR.mkdir(parents=True, exist_ok=True)

# SQLite by default, PostgreSQL (or SQLite) from DATABASE_URL.
DATABASES = {
    "default": dj_database_url.config(conn_max_age=60, conn_health_checks=True)
    if os.environ.get("DATABASE_URL")
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": VAR_DIR / "db.sqlite3"}
}
# Every SQLite database, however configured: WAL and immediate transactions with a
# busy timeout, so the web server and the task workers can write side by side
# instead of failing with "database is locked".
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
for _database in DATABASES.values():
    if _database["ENGINE"] == "django.db.backends.sqlite3":
        _database["OPTIONS"] = SQLITE_OPTIONS | _database.get("OPTIONS", {})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# One cache shared by every process and machine (rate limits must count across
# them), never a per-process one: Redis when CACHE_URL or REDIS_URL names one
# (Django's own RedisCache), else the database's, whose table a migration creates.
CACHE_URL = os.environ.get("CACHE_URL") or os.environ.get("REDIS_URL", "")
if CACHE_URL and not CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(
        "CACHE_URL (or REDIS_URL) must name a Redis server: redis://host:6379/0, "
        "rediss:// for TLS, or unix:///path/to/socket. Unset it to use the database."
    )
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_URL,
        # Several sites may share one Redis.
        "KEY_PREFIX": "bananaweb",
    }
    if CACHE_URL
    else {
        # Django's, with a one-statement set_many (the cards' HTML, fragments.py).
        "BACKEND": "bananaweb.cache.DatabaseCache",
        "LOCATION": "bananaweb_cache",
        # Room for the cached cards (Django's default, 300, would cull every page).
        "OPTIONS": {"MAX_ENTRIES": 100_000},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
    },
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "bananaweb.passwords.UserNameInPasswordValidator"},
]
# django-axes first: it refuses a locked-out sign-in before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Failed sign-ins, on the site's form and the admin's, are counted per user name and,
# separately, per address (django-axes, in the database). Past the limit both are
# refused, the right password too, until the cool-off has passed since the last
# failure or an admin unlocks them (README, "Admins").
AXES_FAILURE_LIMIT = env_int("BANANAWEB_SIGNIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("BANANAWEB_SIGNIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_LOCKOUT_CALLABLE = "bananaweb.views.signin_locked_out"
# The client's address is REMOTE_ADDR, unless a reverse proxy is declared that sets
# (and overwrites) a header with it: BANANAWEB_CLIENT_IP_HEADER=X-Real-IP. Never a
# header the client could set itself, or the address limit can be dodged.
AXES_IPWARE_META_PRECEDENCE_ORDER = [
    *(
        ["HTTP_" + _ip_header.upper().replace("-", "_")]
        if (_ip_header := os.environ.get("BANANAWEB_CLIENT_IP_HEADER", "").strip())
        else []
    ),
    "REMOTE_ADDR",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "index"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
# Media is never served as public files: images go through views that check ownership
# (bananaweb/media.py streams them). Local files under MEDIA_ROOT, or, when
# AWS_STORAGE_BUCKET_NAME is set, private objects in an S3-compatible bucket
# (django-storages). Its keys come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
# (or an instance role), read by boto3 itself: never copied into the settings.
AWS_STORAGE_BUCKET_NAME = os.environ.get("AWS_STORAGE_BUCKET_NAME", "").strip()
MEDIA_STORAGE = (
    {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            # MinIO, R2, moto...: their URL; unset for AWS itself.
            "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL", "").strip() or None,
            "region_name": os.environ.get("AWS_S3_REGION_NAME", "").strip() or None,
            # "path" for stores without a DNS name per bucket (often MinIO).
            "addressing_style": os.environ.get("AWS_S3_ADDRESSING_STYLE", "").strip()
            or None,
            "location": os.environ.get("AWS_LOCATION", "").strip().strip("/"),
            # Private: no ACL is sent, so objects get the bucket owner's alone;
            # any URL made for an object is signed and short-lived; a name in
            # use is never overwritten (a second save gets a name of its own).
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": 300,
            "file_overwrite": False,
        },
    }
    if AWS_STORAGE_BUCKET_NAME
    else {"BACKEND": "django.core.files.storage.FileSystemStorage"}
)
STORAGES = {
    "default": MEDIA_STORAGE,
    "staticfiles": {
        "BACKEND": "bananaweb.static_storage.StaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# No inline scripts or styles anywhere.
SECURE_CSP = {
    "default-src": ["'self'"],
    # blob: for the previews of pictures about to be sent (static/js/composer.js).
    "img-src": ["'self'", "data:", "blob:"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# HTTPS only, unless developing: HSTS, the redirect and Secure cookies.
HTTPS_ONLY = env_bool("BANANAWEB_HTTPS", not BANANAWEB_DEV)
SECURE_SSL_REDIRECT = HTTPS_ONLY
# Load balancers probe the processes over plain HTTP inside the network: a redirect
# to HTTPS would read as "down". These two answers carry no secret and no cookie.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env_int("BANANAWEB_HSTS_SECONDS", 31536000) if HTTPS_ONLY else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("BANANAWEB_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("BANANAWEB_HSTS_PRELOAD", True)
SESSION_COOKIE_SECURE = HTTPS_ONLY
CSRF_COOKIE_SECURE = HTTPS_ONLY
# Behind a TLS-terminating proxy (nginx, Caddy, a PaaS router): the header it sets
# for the scheme, e.g. BANANAWEB_PROXY_SSL_HEADER=X-Forwarded-Proto. Only set it
# when the proxy always sets (and overwrites) that header.
if _proxy_header := os.environ.get("BANANAWEB_PROXY_SSL_HEADER", "").strip():
    SECURE_PROXY_SSL_HEADER = (
        "HTTP_" + _proxy_header.upper().replace("-", "_"),
        "https",
    )
# Features no page here uses, switched off for every page (PermissionsPolicyMiddleware).
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()"
)

DEFAULT_EXCEPTION_REPORTER_FILTER = "bananaweb.debug.AlwaysSafeExceptionReporterFilter"

# One structured line per request and per background job, every logger through
# the same structlog formatter (bananaweb/logs.py): JSON lines for a log shipper
# with BANANAWEB_LOG_FORMAT=json, plain console lines otherwise.
BANANAWEB_LOG_FORMAT = os.environ.get("BANANAWEB_LOG_FORMAT", "").strip().lower()
if BANANAWEB_LOG_FORMAT not in ("", "console", "json"):
    raise ImproperlyConfigured(
        f"BANANAWEB_LOG_FORMAT is {BANANAWEB_LOG_FORMAT!r}: set it to json (one JSON "
        "object a line) or console (the default: plain lines)."
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {
            "()": "bananaweb.logs.formatter",
            "log_format": BANANAWEB_LOG_FORMAT or "console",
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "structured"}
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "bananaweb": {"level": "INFO"},
        # Django's own console handler off: its lines reach the root's, once.
        "django": {"handlers": [], "level": "INFO"},
        # A 500's traceback; the other answers are in the request lines already.
        "django.request": {"level": "ERROR"},
        # gunicorn's worker processes (its access log stays off: the request
        # lines replace it).
        "gunicorn.error": {
            "handlers": ["console"],
            "level": "INFO",
            "propagate": False,
        },
    },
}

# --- The upstream -------------------------------------------------------------
# A real upstream is configured with MOUNTSEA_BASE_URL. Only when it is not, and
# MOUNTSEA_SIMULATOR_URL names the bundled simulator (as `make run` does), is the
# simulator used; the pages then carry a "Simulated upstream" badge.
MOUNTSEA_SIMULATOR_URL = os.environ.get("MOUNTSEA_SIMULATOR_URL", "").rstrip("/")
MOUNTSEA_SIMULATED = bool(MOUNTSEA_SIMULATOR_URL) and not os.environ.get(
    "MOUNTSEA_BASE_URL"
)
MOUNTSEA_BASE_URL = (
    MOUNTSEA_SIMULATOR_URL
    if MOUNTSEA_SIMULATED
    else os.environ.get("MOUNTSEA_BASE_URL", "https://api.mountsea.ai").rstrip("/")
)
MOUNTSEA_API_TOKEN = os.environ.get("MOUNTSEA_API_TOKEN", "")
MOUNTSEA_CONNECT_TIMEOUT = env_float("MOUNTSEA_CONNECT_TIMEOUT", 5)
MOUNTSEA_READ_TIMEOUT = env_float("MOUNTSEA_READ_TIMEOUT", 30)

# Where the upstream can reach bananaweb, for the signed links to uploads and
# stored results it fetches as references (runstack sets it for the simulator).
BANANAWEB_PUBLIC_URL = os.environ.get("BANANAWEB_PUBLIC_URL", "").rstrip("/")
BANANAWEB_PUBLIC_LINK_MAX_AGE = env_int("BANANAWEB_PUBLIC_LINK_MAX_AGE", 3600)
# The longest a share link (a collection or an image shown without sign-in) may last.
BANANAWEB_SHARE_LINK_MAX_DAYS = env_int("BANANAWEB_SHARE_LINK_MAX_DAYS", 30)
# Images one click may ask for: variations of one prompt.
BANANAWEB_MAX_VARIATIONS = env_int("BANANAWEB_MAX_VARIATIONS", 4)

# --- The pipeline -------------------------------------------------------------
BANANAWEB_MAX_IMAGE_URLS = env_int("BANANAWEB_MAX_IMAGE_URLS", 8)
BANANAWEB_POLL_FIRST_DELAY = env_float("BANANAWEB_POLL_FIRST_DELAY", 3)
BANANAWEB_POLL_MAX_DELAY = env_float("BANANAWEB_POLL_MAX_DELAY", 15)
BANANAWEB_POLL_DEADLINE = env_float("BANANAWEB_POLL_DEADLINE", 15 * 60)
BANANAWEB_FETCH_TIMEOUT = env_float("BANANAWEB_FETCH_TIMEOUT", 20)
BANANAWEB_THUMBNAIL_SIZE = 384
BANANAWEB_HISTORY_PAGE_SIZE = 20
BANANAWEB_GALLERY_PAGE_SIZE = 48
BANANAWEB_DEFAULT_DAILY_QUOTA = env_int("BANANAWEB_DEFAULT_DAILY_QUOTA", 50)
# Who sees a new image unless its owner chose otherwise in their settings: "private"
# (its owner and staff) or "team" (every signed-in member).
BANANAWEB_DEFAULT_VISIBILITY = (
    os.environ.get("BANANAWEB_DEFAULT_VISIBILITY", "").strip().lower() or "private"
)
if BANANAWEB_DEFAULT_VISIBILITY not in ("private", "team"):
    raise ImproperlyConfigured(
        f"BANANAWEB_DEFAULT_VISIBILITY is {BANANAWEB_DEFAULT_VISIBILITY!r}: set it to "
        "private (the default: only the owner and staff see a new image) or team "
        "(every signed-in member sees it)."
    )
# Gateway API requests per user per minute, all their tokens together (counted in
# the shared cache, so across every process).
BANANAWEB_API_RATE_LIMIT = env_int("BANANAWEB_API_RATE_LIMIT", 60)
# Active personal API tokens a user may hold at once.
BANANAWEB_MAX_API_TOKENS = env_int("BANANAWEB_MAX_API_TOKENS", 10)
BANANAWEB_SUBMIT_DEADLINE = env_float("BANANAWEB_SUBMIT_DEADLINE", 10 * 60)
BANANAWEB_TOKEN_RECHECK_DELAY = env_float("BANANAWEB_TOKEN_RECHECK_DELAY", 5 * 60)
# The reconciler: how often it looks for requests whose background step was lost
# (a worker died, an enqueue failed) and for deadlines that passed, and how long
# past its due time a step counts as lost.
BANANAWEB_RECONCILE_INTERVAL = env_float("BANANAWEB_RECONCILE_INTERVAL", 30)
BANANAWEB_LOST_TASK_GRACE = env_float("BANANAWEB_LOST_TASK_GRACE", 90)
# A send counts as never finished (outcome unknown) this long after the client's
# own timeouts would have ended it.
BANANAWEB_SEND_MARGIN = env_float("BANANAWEB_SEND_MARGIN", 30)
# Tries to download a finished image when the failure may pass (timeouts, 5xx).
BANANAWEB_FETCH_ATTEMPTS = env_int("BANANAWEB_FETCH_ATTEMPTS", 5)
# The task queue's table keeps a finished task's row this long (and one a killed
# worker left running), so that it does not grow forever; pruned every hour.
BANANAWEB_TASK_RESULT_RETENTION_DAYS = env_int(
    "BANANAWEB_TASK_RESULT_RETENTION_DAYS", 7
)
BANANAWEB_TASK_PRUNE_INTERVAL = 60 * 60

# --- Secrets at rest ----------------------------------------------------------
# Fernet keys, newest first; never derived from SECRET_KEY outside development.
BANANAWEB_ENCRYPTION_KEYS = env_list("BANANAWEB_ENCRYPTION_KEYS")
if not BANANAWEB_ENCRYPTION_KEYS and not BANANAWEB_DEV:
    raise ImproperlyConfigured(
        "BANANAWEB_ENCRYPTION_KEYS is not set: the upstream tokens are encrypted "
        "with it. Set it to a Fernet key (python -c 'from cryptography.fernet "
        "import Fernet; print(Fernet.generate_key().decode())'), or set "
        "BANANAWEB_DEV=1 for development."
    )
