"""`vetpacs-gateway enroll`: trade a one-time code for this gateway's credentials and the platform's key."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any

import requests

from vetpacs import __version__
from vetpacs.gateway.credentials import Credentials, credentials_path, save_credentials

ENROL_PATH = "/api/v1/devices/enrol"
REQUEST_TIMEOUT_S = 30.0


class EnrolmentError(Exception):
    """The platform refused the code or could not be reached; the message says which."""


def enrol(
    *, url: str, code: str, config_dir: Path, force: bool = False, session: requests.Session | None = None
) -> Credentials:
    """Enrol with the platform at `url`; credentials.json is written (0600) only when it succeeded."""
    config_dir = Path(config_dir)
    if credentials_path(config_dir).exists() and not force:
        raise EnrolmentError(
            f"{credentials_path(config_dir)} exists: this gateway is enrolled already "
            "(use --force to replace its credentials with a new enrolment)"
        )
    if not url.startswith(("http://", "https://")):
        raise EnrolmentError(f"--url must start with https:// (or http:// on a test network), not {url!r}")
    http = session or requests.Session()
    try:
        resp = http.post(
            url.rstrip("/") + ENROL_PATH,
            json={"code": code, "hostname": socket.gethostname(), "version": __version__},
            timeout=REQUEST_TIMEOUT_S,
        )
    except requests.RequestException as exc:
        raise EnrolmentError(f"the platform at {url} cannot be reached: {exc}") from exc
    if resp.status_code != 201:
        raise EnrolmentError(f"the platform refused the enrolment ({resp.status_code}): {_detail(resp)}")
    reply: dict[str, Any] = resp.json()
    credentials = Credentials(
        platform_url=url.rstrip("/"),
        key_id=reply["key_id"],
        secret=reply["secret"],
        platform_public_key_pem=reply["platform_public_key_pem"].encode("ascii"),
    )
    save_credentials(config_dir, credentials)
    return credentials


def _detail(resp: requests.Response) -> str:
    try:
        return str(resp.json().get("detail") or resp.text[:300])
    except ValueError:
        return resp.text[:300]


# -- the subcommand ------------------------------------------------------------------------------------
def add_enroll(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("enroll", help="注册网关 / enrol this gateway with the platform using a one-time code")
    p.add_argument("--url", required=True, help="the platform's address, e.g. https://pacs.example.cn")
    p.add_argument(
        "--code", required=True, help="the one-time enrolment code from the platform's gateway page"
    )
    p.add_argument(
        "--config-dir", default="/etc/vetpacs-gateway", help="where credentials.json is written (mode 0600)"
    )
    p.add_argument("--force", action="store_true", help="replace existing credentials")
    p.set_defaults(func=cmd_enroll)


def cmd_enroll(args: argparse.Namespace) -> int:
    try:
        credentials = enrol(
            url=args.url, code=args.code, config_dir=Path(args.config_dir).expanduser(), force=args.force
        )
    except EnrolmentError as exc:
        print(f"vetpacs-gateway enroll: {exc}", file=sys.stderr)
        return 1
    print(
        f"注册成功 enrolled: key id {credentials.key_id}, credentials in {credentials_path(args.config_dir)}"
    )
    return 0
