"""Pure rules for gateways: when one counts as online, which commands exist and what they need."""

from __future__ import annotations

import datetime as dt
from typing import Any

# R-8.3a / issue 4: a gateway that missed three heartbeats in a row is offline.
MISSED_BEATS_OFFLINE = 3
# The gateway's own words (gateway/run.py on_command): stop and resume take args.study (a Study
# Instance UID) or args.entry (a queue entry id); with neither they apply to everything.
COMMAND_KINDS = ("retry_all", "stop", "resume", "send_report")


def offline_after(interval_s: float) -> dt.timedelta:
    return dt.timedelta(seconds=interval_s * MISSED_BEATS_OFFLINE)


def is_online(last_seen_at: dt.datetime | None, now: dt.datetime, interval_s: float) -> bool:
    return last_seen_at is not None and now - last_seen_at <= offline_after(interval_s)


def check_command(kind: str, args: dict[str, Any]) -> str | None:
    """None when the command is well-formed, else what is wrong with it (shown to the admin)."""
    if kind not in COMMAND_KINDS:
        return f"unknown command {kind!r}; one of {', '.join(COMMAND_KINDS)}"
    if not isinstance(args, dict):
        return "args must be a JSON object"
    if kind == "send_report":
        url = args.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return "send_report needs args.url, the WADO-RS URL of the instance to send"
    if kind in ("stop", "resume"):
        unknown = set(args) - {"study", "entry"}
        if unknown:
            return f"{kind} takes args.study or args.entry (or neither: everything), not {sorted(unknown)}"
        if "entry" in args and (isinstance(args["entry"], bool) or not isinstance(args["entry"], int)):
            return "args.entry must be a queue entry id (an integer)"
        if "study" in args and not isinstance(args["study"], str):
            return "args.study must be a Study Instance UID"
    return None


def looks_like_code(code: str) -> bool:
    cleaned = normalise_code(code)
    return 16 <= len(cleaned) <= 64 and cleaned.isalnum()


def normalise_code(code: str) -> str:
    """Codes are read aloud and typed: case and the dashes between groups do not matter."""
    return code.strip().replace("-", "").replace(" ", "").upper()
