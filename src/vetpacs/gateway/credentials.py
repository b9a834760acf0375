"""The gateway's credentials: platform URL, key id, secret and the platform's public key (0600 file)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

CREDENTIALS_FILE = "credentials.json"
# Only the gateway's own user may read the secret (R-7.3.2.1: credentials are protected at rest).
CREDENTIALS_MODE = 0o600
_KEYS = ("platform_url", "key_id", "secret", "platform_public_key_pem")


class CredentialsError(Exception):
    """The credentials file is missing, unreadable, too open or malformed; the message says which."""


@dataclass(frozen=True)
class Credentials:
    platform_url: str
    key_id: str
    # A platform API token of the clinic, sent as `Authorization: Bearer <secret>`.
    secret: str
    platform_public_key_pem: bytes

    @property
    def authorization(self) -> str:
        return f"Bearer {self.secret}"

    def url(self, path: str) -> str:
        """An absolute platform URL for a path such as `/api/v1/devices/heartbeat`."""
        return self.platform_url.rstrip("/") + "/" + path.lstrip("/")

    def __repr__(self) -> str:  # never print the secret in a log line or a traceback
        return f"Credentials(platform_url={self.platform_url!r}, key_id={self.key_id!r}, secret='***')"


def credentials_path(config_dir: Path) -> Path:
    return Path(config_dir) / CREDENTIALS_FILE


def load_credentials(config_dir: Path) -> Credentials:
    path = credentials_path(config_dir)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        raise CredentialsError(
            f"{path} does not exist: enrol this gateway first (vetpacs-gateway enroll --url URL --code CODE)"
        ) from None
    if mode & 0o077:
        raise CredentialsError(f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"{path} cannot be read as JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CredentialsError(f"{path} must hold a JSON object")
    missing = [k for k in _KEYS if not isinstance(data.get(k), str) or not data.get(k)]
    if missing:
        raise CredentialsError(f"{path} lacks {', '.join(missing)}")
    return Credentials(
        platform_url=data["platform_url"],
        key_id=data["key_id"],
        secret=data["secret"],
        platform_public_key_pem=data["platform_public_key_pem"].encode("ascii"),
    )


def save_credentials(config_dir: Path, credentials: Credentials) -> Path:
    """Write credentials.json atomically with mode 0600 (created so, never widened even for a moment)."""
    config_dir = Path(config_dir)
    config_dir.mkdir(parents=True, exist_ok=True)
    path = credentials_path(config_dir)
    tmp = path.with_name(path.name + ".tmp")
    body = json.dumps(
        {
            "platform_url": credentials.platform_url,
            "key_id": credentials.key_id,
            "secret": credentials.secret,
            "platform_public_key_pem": credentials.platform_public_key_pem.decode("ascii"),
        },
        indent=2,
    ).encode("utf-8")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, CREDENTIALS_MODE)
    try:
        os.fchmod(fd, CREDENTIALS_MODE)  # an older tmp file may have had another mode
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(config_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path
