"""Django settings, all from the environment (VETPACS_*); the defaults make the embedded instance."""

from __future__ import annotations

import dj_database_url

from vetpacs.core import crypto as _crypto
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
    "vetpacs.apps.esign",
    "vetpacs.apps.sso",
    "vetpacs.apps.devices",
    "vetpacs.apps.watermark",
    "vetpacs.web",
    # allauth after our apps, so our templates (accounts/templates/account, mfa, allauth) win.
    "allauth",
    "allauth.account",
    "allauth.mfa",
    # Single sign-on through each organisation's OpenID Connect provider (apps/sso, R-8.2d).
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
]

MIDDLEWARE = [
    # A login flood is turned away before it costs anything (see accounts.hashers).
    "vetpacs.apps.accounts.middleware.LoginAdmissionMiddleware",
    # a gateway over its request rate gets 429 before it costs a query (apps/devices/policing.py).
    "vetpacs.apps.devices.policing.DevicePolicingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "vetpacs.apps.accounts.middleware.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "vetpacs.platform.locale.ChosenLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # R-7.3.2.2a: a blocked address's sessions and tokens are refused while the block lasts.
    "vetpacs.apps.accounts.middleware.BlockedAddressMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # After authentication: end idle/expired sessions, then insist on a new password and MFA.
    "vetpacs.apps.accounts.middleware.SessionTimeoutMiddleware",
    "vetpacs.apps.accounts.middleware.AccountPolicyMiddleware",
    "vetpacs.apps.accounts.middleware.HashingBusyMiddleware",
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
                "vetpacs.web.access.navigation",
                "vetpacs.apps.accounts.middleware.csp_nonce",
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
    # argon2id at OWASP's parameters, at most VETPACS_ARGON2_CONCURRENCY hashes at once per process.
    # (It verifies Django's own "argon2" hashes too: one hasher per algorithm name.)
    "vetpacs.apps.accounts.hashers.BoundedArgon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
# 0: the machine's cores shared among the serve command's worker processes.
VETPACS_ARGON2_CONCURRENCY = env_int("ARGON2_CONCURRENCY", 0)
# Logins that may hash or wait per process; beyond, 503 and a retry (0: the serve threads less one).
VETPACS_ARGON2_QUEUE = env_int("ARGON2_QUEUE", 0)

AUTH_PASSWORD_VALIDATORS = [
    # R-7.3.2.1d: length, classes, account name, consecutive digits (vetpacs.apps.accounts.workflow)
    {"NAME": "vetpacs.apps.accounts.validators.PolicyValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    # Not one of the last 5 passwords; remembers each new one.
    {"NAME": "vetpacs.apps.accounts.validators.PasswordHistoryValidator"},
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

# --- Accounts: allauth login, MFA, lockout, sessions, headers (issue 3 part A) ---
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    # allauth's, finding e-mail logins through the sealed address's blind index (R-7.3.4.1c).
    "vetpacs.apps.accounts.backends.AuthenticationBackend",
]
ACCOUNT_ADAPTER = "vetpacs.apps.accounts.adapter.AccountAdapter"
ACCOUNT_FORMS = {
    "login": "vetpacs.apps.accounts.forms.LoginForm",
    "reset_password": "vetpacs.apps.accounts.forms.ResetPasswordForm",
}
# Username, e-mail or phone plus password (R-7.3.4.4b: phone login; the SMS code via apps.sms).
ACCOUNT_LOGIN_METHODS = {"username", "email", "phone"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email", "phone", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGIN_BY_CODE_ENABLED = True
ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = True
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_LOGOUT_REDIRECT_URL = "/login/"
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
# Failed logins are counted in the database by accounts.services (several processes agree; a
# lock raises a security event), so allauth's per-process cache counters for logins are off.
ACCOUNT_RATE_LIMITS = {"login": None, "login_failed": None}
MFA_SUPPORTED_TYPES = ["totp", "webauthn", "recovery_codes"]
MFA_TOTP_ISSUER = "vetpacs"
MFA_PASSKEY_LOGIN_ENABLED = False
# WebAuthn needs a secure origin; http://localhost counts as one, any other http origin does not.
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = env_bool("WEBAUTHN_ALLOW_INSECURE_ORIGIN", DEBUG)
# R-7.3.2.2a: 5 failures within 15 minutes lock the account for 15 minutes (or until an admin
# unlocks it); 20 failures from one address within 15 minutes (or 10 spread over 3+ accounts)
# block that address for an hour. Counters are rows in the database, shared by every process.
VETPACS_LOCKOUT_FAILURES = env_int("LOCKOUT_FAILURES", 5)
VETPACS_LOCKOUT_WINDOW_SECONDS = env_int("LOCKOUT_WINDOW_SECONDS", 15 * 60)
VETPACS_LOCKOUT_SECONDS = env_int("LOCKOUT_SECONDS", 15 * 60)
VETPACS_IP_BLOCK_FAILURES = env_int("IP_BLOCK_FAILURES", 20)
VETPACS_IP_BLOCK_WINDOW_SECONDS = env_int("IP_BLOCK_WINDOW_SECONDS", 15 * 60)
VETPACS_IP_BLOCK_SECONDS = env_int("IP_BLOCK_SECONDS", 3600)
# R-7.3.2.1d: remind after this many days (0: never); R-7.3.2.1e: flag accounts unused this long.
VETPACS_PASSWORD_MAX_AGE_DAYS = env_int("PASSWORD_MAX_AGE_DAYS", 90)
VETPACS_DORMANT_AFTER_DAYS = env_int("DORMANT_AFTER_DAYS", 90)
# R-7.3.4.2: sessions end after 30 idle minutes, and 12 hours after login whatever happens.
VETPACS_SESSION_IDLE_MINUTES = env_int("SESSION_IDLE_MINUTES", 30)
VETPACS_SESSION_ABSOLUTE_HOURS = env_int("SESSION_ABSOLUTE_HOURS", 12)
SESSION_COOKIE_AGE = VETPACS_SESSION_ABSOLUTE_HOURS * 3600
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# R-6.2.6.1: served over TLS (`vetpacs serve --tls-cert` sets VETPACS_TLS=1, or set it behind a
# TLS-terminating proxy together with VETPACS_PROXY_SSL_HEADER): cookies only over HTTPS, HSTS.
VETPACS_TLS = env_bool("TLS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = VETPACS_TLS
if env("PROXY_SSL_HEADER"):  # e.g. "HTTP_X_FORWARDED_PROTO" from a proxy that always sets it
    SECURE_PROXY_SSL_HEADER = (env("PROXY_SSL_HEADER"), "https")
SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "SAMEORIGIN"
# Sites allowed to embed our pages in a frame (CSP frame-ancestors), space-separated origins.
VETPACS_FRAME_ANCESTORS = (env("FRAME_ANCESTORS") or "").split()

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
# R-7.3.2.2f: audit events are kept at least 6 months; a shorter setting is refused at start-up.
VETPACS_AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 400)
if VETPACS_AUDIT_RETENTION_DAYS < 184:  # audit.retention.MIN_RETENTION_DAYS: the longest 6 months
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"VETPACS_AUDIT_RETENTION_DAYS={VETPACS_AUDIT_RETENTION_DAYS} is below 184 days (6 months)"
    )

# R-7.3.4.3b: pictures leaving the platform carry a signed trace mark (always) and a visible tiled
# mark of clinic, account and time: on downloads by default, off by default on WADO-RS rendered
# frames and thumbnails, which viewers draw (apps/watermark).
VETPACS_WATERMARK_DOWNLOADS = env_bool("WATERMARK_DOWNLOADS", True)
VETPACS_WATERMARK_RENDERED = env_bool("WATERMARK_RENDERED", False)

# Clinic gateways (apps/devices): heartbeat interval (offline after three missed beats) and how
# long a one-time enrolment code stays valid.
VETPACS_GATEWAY_HEARTBEAT_SECONDS = env_int("GATEWAY_HEARTBEAT_SECONDS", 15)
VETPACS_GATEWAY_ENROLMENT_TTL_HOURS = env_int("GATEWAY_ENROLMENT_TTL_HOURS", 24)
# Traffic policing of the device endpoints (R-7.2.4a-e, apps/devices/policing.py): per gateway a
# token bucket of `burst` requests refilled at `requests_per_s` (0: off); in Redis when REDIS_URL is
# set (several platform processes), else in the process.
VETPACS_DEVICE_RATE_LIMIT = {
    "requests_per_s": float(env("DEVICE_RATE_PER_S") or 100),
    "burst": env_int("DEVICE_RATE_BURST", 300),
    "redis_url": env("REDIS_URL") or "",
}

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
# Real-name verification (R-6.2.7a): "development" (checksum only; never in production) or
# "tencent" (Tencent Cloud FaceID IdCardVerification, with these credentials).
VETPACS_REAL_NAME_PROVIDER = env("REAL_NAME_PROVIDER") or "development"
VETPACS_REAL_NAME = {
    "secret_id": env("REAL_NAME_SECRET_ID") or "",
    "secret_key": env("REAL_NAME_SECRET_KEY") or "",
    "endpoint": env("REAL_NAME_ENDPOINT") or "",  # overrides the vendor's host (tests, private endpoints)
}
# Single sign-on (R-8.2d): providers are rows (allauth SocialApp linked to an organisation by
# apps/sso); sign-up happens only through a configured organisation's provider. An e-mail address
# from an identity provider never joins an existing account (no takeover by a provider's claim).
SOCIALACCOUNT_ADAPTER = "vetpacs.apps.sso.adapter.SocialAccountAdapter"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = False
SOCIALACCOUNT_LOGIN_ON_GET = False  # the sign-in starts with a POST carrying the CSRF token
SOCIALACCOUNT_STORE_TOKENS = False
# Envelope encryption of personal data (R-7.3.4.1c): "aes-256-gcm" (default) or "sm4-gcm" (GB/T 32907,
# through OpenSSL); values sealed earlier stay readable after a change (docs/sensitive-data.md).
VETPACS_ENVELOPE_ALGORITHM = env("ENVELOPE_ALGORITHM") or "aes-256-gcm"
_crypto.use_algorithm(VETPACS_ENVELOPE_ALGORITHM)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL") or "WARNING"},
}
