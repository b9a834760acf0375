"""The gateway's settings: `gateway.toml` in the config directory, each overridable by VETPACS_GATEWAY_*."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_FILE = "gateway.toml"
ENV_PREFIX = "VETPACS_GATEWAY_"
MiB = 1024 * 1024


class ConfigError(ValueError):
    """The configuration names something impossible; the message says which setting."""


@dataclass(frozen=True)
class GatewayConfig:
    """Every setting, with the defaults a small clinic starts from (docs/gateway.md lists them)."""

    config_dir: Path
    # DICOM receiver (R-6.1.1a/b)
    ae_title: str = "VETPACS_GW"
    dicom_host: str = "0.0.0.0"  # noqa: S104 - modalities on the clinic's LAN must reach the SCP
    dicom_port: int = 11112
    allowed_calling_aes: tuple[str, ...] = ()  # empty: any calling AE title is accepted
    # Where received files wait (fsynced) until the platform confirmed them
    spool_dir: Path = Path()
    min_free_bytes: int = 512 * MiB  # below this the SCP answers Out of Resources (0xA700)
    # Uploads (R-6.2.1g/h, R-7.2.4)
    platform_url: str = ""
    bandwidth_bytes_per_s: int = 0  # 0: no cap
    parallel_uploads: int = 4
    chunk_size: int = 4 * MiB
    parallel_parts: int = 4  # a large file goes as this many parts at once (tus concatenation)
    parallel_parts_min_bytes: int = 32 * MiB  # from this size on; smaller files go in one upload
    retry_base_s: float = 2.0
    retry_cap_s: float = 300.0
    request_timeout_s: float = 60.0
    # Pipeline (R-6.1.3a-c)
    compress: bool = True
    protect_identity: bool = True
    # Local status page: loopback only unless deliberately opened
    status_host: str = "127.0.0.1"
    status_port: int = 8765
    # Watch folders for non-DICOM files (R-6.1.1c)
    watch_folders: tuple[Path, ...] = ()
    # The clinic's PACS, where reports are returned (R-6.2.3d); empty pacs_host: no report return
    pacs_host: str = ""
    pacs_port: int = 104
    pacs_ae_title: str = ""
    # HIS/RIS records inside `run`: HL7 v2 over MLLP (0: no listener) and a CSV/JSON drop folder
    hl7_host: str = "0.0.0.0"  # noqa: S104 - the HIS is on the clinic's LAN
    hl7_port: int = 0
    records_drop_folder: str = ""
    # Query/retrieve from that PACS: 0 pull_interval_s: only `vetpacs-gateway pull`
    pull_interval_s: float = 0.0
    pull_days: int = 7  # studies of today and the days before; 0: any date
    pull_modalities: tuple[str, ...] = ()  # empty: every modality
    pull_retrieve: str = "move"  # "move": C-MOVE to ae_title (the PACS must know it); "get": C-GET

    @property
    def queue_path(self) -> Path:
        return self.spool_dir / "queue.sqlite3"

    @property
    def records_path(self) -> Path:
        return self.spool_dir / "records.sqlite3"

    @property
    def pull_path(self) -> Path:
        return self.spool_dir / "pull.sqlite3"

    @property
    def credentials_path(self) -> Path:
        return self.config_dir / "credentials.json"


_FIELDS = {f.name: f for f in dataclasses.fields(GatewayConfig)}


def _coerce(name: str, raw: Any) -> Any:
    kind = str(_FIELDS[name].type)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in ("1", "true", "yes", "on")
        if kind == "Path":
            return Path(str(raw)).expanduser()
        if kind.startswith("tuple"):
            items = raw if isinstance(raw, list | tuple) else [s for s in str(raw).split(",") if s.strip()]
            return tuple(Path(str(i)).expanduser() if "Path" in kind else str(i).strip() for i in items)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name!r}: {raw!r} is not a valid {kind}") from exc


def load_config(config_dir: Path, **overrides: Any) -> GatewayConfig:
    """gateway.toml, then the environment, then explicit overrides (the command line)."""
    config_dir = Path(config_dir).expanduser().resolve()
    values: dict[str, Any] = {}
    path = config_dir / CONFIG_FILE
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        for section in (data, *(v for v in data.values() if isinstance(v, dict))):
            for key, value in section.items():
                if not isinstance(value, dict):
                    if key not in _FIELDS or key == "config_dir":
                        raise ConfigError(f"{path}: unknown setting {key!r}")
                    values[key] = value
    for name in _FIELDS:
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env is not None and name != "config_dir":
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    values = {k: _coerce(k, v) for k, v in values.items()}
    spool = values.get("spool_dir") or config_dir / "spool"
    if not Path(spool).is_absolute():
        spool = config_dir / spool
    values["spool_dir"] = Path(spool)
    cfg = GatewayConfig(config_dir=config_dir, **values)
    _check(cfg)
    return cfg


def _check(cfg: GatewayConfig) -> None:
    ae = cfg.ae_title
    if not ae.strip() or len(ae) > 16 or "\\" in ae:
        raise ConfigError(f"ae_title {ae!r}: an AE title is 1-16 characters without backslash (PS3.5 6.2)")
    if not all(0 <= port <= 65535 for port in (cfg.dicom_port, cfg.status_port, cfg.hl7_port)):
        raise ConfigError("dicom_port, status_port and hl7_port must be between 0 and 65535")
    if cfg.parallel_uploads < 1:
        raise ConfigError("parallel_uploads must be at least 1")
    if cfg.chunk_size < 64 * 1024:
        raise ConfigError("chunk_size must be at least 65536 bytes")
    if cfg.parallel_parts < 1 or cfg.parallel_parts_min_bytes < 0:
        raise ConfigError("parallel_parts must be at least 1 and parallel_parts_min_bytes 0 or positive")
    if cfg.bandwidth_bytes_per_s < 0:
        raise ConfigError("bandwidth_bytes_per_s must be 0 (no cap) or positive")
    if cfg.retry_base_s <= 0 or cfg.retry_cap_s < cfg.retry_base_s:
        raise ConfigError("retry_base_s must be positive and retry_cap_s at least retry_base_s")
    if cfg.pull_retrieve not in ("move", "get"):
        raise ConfigError(f"pull_retrieve {cfg.pull_retrieve!r}: it is 'move' (C-MOVE) or 'get' (C-GET)")
    if cfg.pull_interval_s < 0 or cfg.pull_days < 0:
        raise ConfigError("pull_interval_s and pull_days must be 0 (off / any date) or positive")
    if cfg.pull_interval_s and not (cfg.pacs_host and cfg.pacs_ae_title):
        raise ConfigError("pull_interval_s needs the clinic PACS: pacs_host, pacs_port and pacs_ae_title")


def write_default(config_dir: Path, **values: Any) -> Path:
    """A gateway.toml with the given settings (installation, tests)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# vetpacs gateway settings (docs/gateway.md)"]
    for key, value in values.items():
        if key not in _FIELDS:
            raise ConfigError(f"unknown setting {key!r}")
        lines.append(f"{key} = {_toml(value)}")
    path = config_dir / CONFIG_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


__all__ = ["ConfigError", "GatewayConfig", "load_config", "write_default"]
