"""Django settings. Values come from backend/config/env.py; see the README's configuration table."""
from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from backend.config.env import BASE_DIR, env

# local (zero-setup defaults), test, or production (refuses to start without real secrets).
# Anything else refuses to start: a misspelt "prod" must never run with the dev keys.
ENVIRONMENTS = ("local", "test", "production")
ENVIRONMENT = env("BROKERSYNC_ENV", default="local")
if ENVIRONMENT not in ENVIRONMENTS:
    raise ImproperlyConfigured(f"BROKERSYNC_ENV={ENVIRONMENT!r} is not one of {', '.join(ENVIRONMENTS)}")
PRODUCTION = ENVIRONMENT == "production"
DEBUG = env.bool("DEBUG", default=ENVIRONMENT == "local")

# The dev keys are public (they are in this file): only local and test runs may use them.
_DEV_SECRET_KEY = "insecure-dev-only-secret-key-do-not-use-in-production"
_DEV_FERNET_KEY = "insecure-dev-only-credential-key"
SECRET_KEY = env("SECRET_KEY", default="" if PRODUCTION else _DEV_SECRET_KEY)
# Credential encryption keys, newest first: the first encrypts, every key decrypts
# (MultiFernet). Rotate: prepend a new key, run `manage.py rotate_credentials`, drop the old.
FERNET_KEYS = env.list("FERNET_KEYS", default=[] if PRODUCTION else [_DEV_FERNET_KEY])

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if PRODUCTION else ["*"] if DEBUG else ["localhost", "127.0.0.1"])
# Origins allowed to POST forms with a session (the admin behind a proxy on another host name).
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

if PRODUCTION:
    from backend.config.production import refuse_unsafe

    refuse_unsafe(secret_key=SECRET_KEY, fernet_keys=FERNET_KEYS, allowed_hosts=ALLOWED_HOSTS, debug=DEBUG,
                  dev_keys=(_DEV_SECRET_KEY, _DEV_FERNET_KEY))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "backend.core",
    "backend.portfolio",
    "backend.market",
    "backend.ledger",
    "backend.connections",
    "backend.sync",
    "backend.imports",
    "backend.reconcile",
    "workers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "backend.core.middleware.ApiRequestLimitsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "backend.config.urls"
WSGI_APPLICATION = "backend.config.wsgi.application"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]

# SQLite file by default so a local run needs no database server; PostgreSQL in production and tests.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'brokersync.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    (BASE_DIR / "var").mkdir(exist_ok=True)
    # Web, worker and beat share the file: wait for the lock instead of failing at once.
    # IMMEDIATE: a transaction takes the write lock when it begins; a deferred one that reads
    # and then writes gets "database is locked" at once when another thread writes (SQLite
    # cannot upgrade its lock without risking a deadlock, so it does not wait).
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 30, "transaction_mode": "IMMEDIATE"})
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
# Without collectstatic (local runs, tests) WhiteNoise serves straight from the apps.
WHITENOISE_USE_FINDERS = ENVIRONMENT != "production"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "backend.core.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Only views that name throttle_scopes are throttled (backend/core/throttling.py).
    "DEFAULT_THROTTLE_CLASSES": ["backend.core.throttling.UserThrottle", "backend.core.throttling.IPThrottle"],
    "DEFAULT_PARSER_CLASSES": [
        "backend.core.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "backend.core.schema.AutoSchema",
    "EXCEPTION_HANDLER": "backend.core.api.exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "brokersync API",
    "DESCRIPTION": "Connect brokerage and exchange accounts and keep them in sync.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Request and response bodies as separate components: what a client sends and what it
    # gets back differ (write-only keys, read-only ids, non-blank input).
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the drf-spectacular-sidecar package: the docs work offline, and no
    # third party learns who reads them.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "brokersync": {"level": LOG_LEVEL},
        "celery": {"level": "INFO"},
        # urllib3 logs every URL at DEBUG, query string included: IBKR's Flex token travels there.
        "urllib3": {"level": "INFO"},
    },
}
