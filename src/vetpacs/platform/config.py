"""Configuration from the environment (VETPACS_ prefix) with an embedded default under var/."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"VETPACS_{name}", default)


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = env(name)
    return default if value in (None, "") else int(value)


def data_dir() -> Path:
    path = Path(env("DATA_DIR") or "var").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def secret_file(name: str, nbytes: int = 32) -> bytes:
    """A generated secret kept under DATA_DIR/keys with mode 0600; made on first use."""
    keys = data_dir() / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    path = keys / name
    if not path.exists():
        value = secrets.token_bytes(nbytes)
        # O_EXCL: two processes starting together must not both write a key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(fd, "wb") as f:
            f.write(value)
            f.flush()
            os.fsync(f.fileno())
        return value
    return path.read_bytes()
