"""`vetpacs watermark verify FILE`: who took this picture out of the platform, and when (R-7.3.4.3b)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from vetpacs.apps.audit import services as audit
from vetpacs.apps.watermark import services

_STATUS = {
    "forged": "水印无效（非本平台签发）The mark is FORGED: not signed by this platform",
    "missing": "未发现水印 No trace mark found",
    "unknown_event": "水印有效，但审计日志中无此事件 The mark is genuine, but its audit event is gone",
}


class Command(BaseCommand):
    help = "Watermarks: read a downloaded picture's trace mark and name the download event."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        check = sub.add_parser(
            "verify", help="say who downloaded FILE and when, or that its mark is missing/forged"
        )
        check.add_argument("file")

    def handle(self, *args: Any, **opts: Any) -> None:
        path = Path(opts["file"])
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        verdict = services.verify(body)
        # Tracing a leaked picture is itself an audited act.
        audit.record(
            "watermark.verified",
            actor="cli",
            result="ok" if verdict.status == "traced" else verdict.status,
            target=f"audit:{verdict.event.id}" if verdict.event else "",
            detail={"file": path.name, "status": verdict.status, "source": verdict.source},
        )
        if verdict.event is None:
            extra = f" ({verdict.detail})" if verdict.detail else ""
            raise CommandError(f"{path}: {_STATUS[verdict.status]}{extra}")
        event = verdict.event
        when = timezone.localtime(event.at).isoformat(timespec="seconds")
        clinic, account = services.who(event)
        lines = [
            f"{path}: 水印有效 trace mark verified (from the {verdict.source})",
            f"  event:  {event.id} {event.action} {event.target}",
            f"  who:    {account} ({event.actor}) of {clinic or '-'}",
            f"  when:   {when}",
            f"  from:   {event.ip or '-'}",
            f"  detail: {event.detail}",
        ]
        if verdict.detail:
            lines.append(f"  note:   {verdict.detail}")
        self.stdout.write("\n".join(lines))
