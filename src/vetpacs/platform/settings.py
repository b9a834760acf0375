"""Django settings, all from the environment (VETPACS_*); the defaults make the embedded instance."""

from __future__ import annotations

import dj_database_url

from vetpacs.platform.config import data_dir, env, env_bool, env_int, secret_file

DATA_DIR = data_dir()
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env("SECRET_KEY") or secret_file("django-secret-key", 50).hex()
ALLOWED_HOSTS = (env("ALLOWED_HOSTS") or "127.0.0.1,localhost,[::1],testserver").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_tasks",
    "django_tasks_db",
    "vetpacs.apps.accounts",
    "vetpacs.apps.orgs",
    "vetpacs.apps.audit",
    "vetpacs.apps.identity",
    "vetpacs.apps.archive",
    "vetpacs.apps.uploads",
    "vetpacs.apps.sms",
    "vetpacs.apps.appkeys",
    "vetpacs.apps.devices",
    "vetpacs.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "vetpacs.platform.urls"
WSGI_APPLICATION = "vetpacs.platform.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

_database_url = env("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'vetpacs.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Connections persist per thread (conn_max_age above): a new SQLite connection parses the whole
    # schema and starts with a cold page cache, about 2 ms of CPU per request.
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers run beside the one writer; IMMEDIATE avoids upgrade deadlocks.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    # R-7.3.2.1d: length, classes, account name, consecutive digits (vetpacs.apps.accounts.workflow)
    {"NAME": "vetpacs.apps.accounts.validators.PolicyValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
TIME_ZONE = env("TIME_ZONE") or "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

TASKS = {
    "default": {
        "BACKEND": env("TASK_BACKEND") or "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default"],
    }
}

# Uploads: STOW-RS streams request bodies to disk itself; these guard form posts only.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
VETPACS_MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 4 * 1024 * 1024 * 1024)

# Blob storage: "local" (default), "s3", or "replicated" (see vetpacs.storage.factory).
VETPACS_STORAGE = {
    "backend": env("STORAGE_BACKEND") or "local",
    "local_root": str(DATA_DIR / "blobs"),
    "replica_roots": [r for r in (env("STORAGE_REPLICA_ROOTS") or "").split(",") if r],
    "s3_endpoint_url": env("S3_ENDPOINT_URL"),
    "s3_bucket": env("S3_BUCKET") or "vetpacs",
    "s3_region": env("S3_REGION") or "us-east-1",
    "s3_access_key": env("S3_ACCESS_KEY"),
    "s3_secret_key": env("S3_SECRET_KEY"),
    # backend "replicated": also keep a copy in the S3 bucket above (see docs/storage.md).
    "replica_s3": env_bool("STORAGE_REPLICA_S3", False),
}
# Wraps every clinic's data key; a 0600 file under DATA_DIR/keys unless given (hex) in the environment.
VETPACS_MASTER_KEY = bytes.fromhex(env("MASTER_KEY") or "") or secret_file("master.key", 32)
VETPACS_INCOMING_DIR = DATA_DIR / "incoming"
# tus uploads not completed within this many hours are removed (vetpacs.apps.uploads.services.sweep_expired).
VETPACS_UPLOAD_EXPIRY_HOURS = env_int("UPLOAD_EXPIRY_HOURS", 24)
# Keep a new version when an instance arrives again with different content (else refuse it).
VETPACS_KEEP_VERSIONS = env_bool("KEEP_VERSIONS", False)
# Compress uncompressed instances to JPEG-LS lossless in the background.
VETPACS_COMPRESS_ON_INGEST = env_bool("COMPRESS_ON_INGEST", True)
# Orphan blobs (written, never indexed, e.g. after kill -9) older than this are swept.
VETPACS_ORPHAN_GRACE_SECONDS = env_int("ORPHAN_GRACE_SECONDS", 3600)
VETPACS_AUDIT_RETENTION_DAYS = max(183, env_int("AUDIT_RETENTION_DAYS", 400))
# Clinic gateways (apps/devices): heartbeat interval (offline after three missed beats) and how
# long a one-time enrolment code stays valid.
VETPACS_GATEWAY_HEARTBEAT_SECONDS = env_int("GATEWAY_HEARTBEAT_SECONDS", 15)
VETPACS_GATEWAY_ENROLMENT_TTL_HOURS = env_int("GATEWAY_ENROLMENT_TTL_HOURS", 24)

# --- Security: SMS, real-name, app keys, audit retention, OIDC (issue 3 part B) ---
# SMS codes (R-6.2.7d): provider "console" (logs; development), "aliyun" or "tencent".
VETPACS_SMS = {
    "provider": env("SMS_PROVIDER") or "console",
    "access_key_id": env("SMS_ACCESS_KEY_ID") or "",
    "access_key_secret": env("SMS_ACCESS_KEY_SECRET") or "",
    "sign_name": env("SMS_SIGN_NAME") or "",
    # Template per purpose, "login:SMS_1,phone_verification:SMS_2,password_reset:SMS_3"
    "templates": env("SMS_TEMPLATES") or "",
    "sdk_app_id": env("SMS_SDK_APP_ID") or "",  # Tencent only
    "region": env("SMS_REGION") or "",
    "endpoint": env("SMS_ENDPOINT") or "",  # overrides the vendor's host (tests, private endpoints)
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL") or "WARNING"},
}
