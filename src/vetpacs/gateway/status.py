"""The gateway's status: one snapshot for the CLI, the heartbeat and the local page (R-6.1.4).

The page is small on purpose: a table of studies with counts, progress, throughput and failures,
and stop/resume/retry buttons. It listens on 127.0.0.1 unless configured otherwise. Buttons POST
a per-run token (a stolen page cannot be replayed after a restart, another site cannot forge it)
and the Origin, when a browser sends one, must be this page's own.
"""

from __future__ import annotations

import hmac
import html
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from vetpacs import __version__
from vetpacs.gateway.queue import DONE, FAILED, STATE_LABELS, STATES, STOPPED, Queue, StudySummary
from vetpacs.gateway.spool import Spool

MAX_FORM_BYTES = 4096
CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"


@dataclass
class Snapshot:
    version: str
    counts: dict[str, int]
    queue_depth: int
    failures: int
    last_failure: str
    instances_per_s: float
    bytes_per_s: float
    disk_free_bytes: int
    studies: list[StudySummary]
    pull: dict[str, Any] | None = None  # the scheduled pull from the clinic's PACS, when `run` has one

    def heartbeat(self) -> dict[str, Any]:
        """What the platform's device endpoint is told every beat."""
        return {
            "version": self.version,
            "queue_depth": self.queue_depth,
            "failures": self.failures,
            "disk_free_bytes": self.disk_free_bytes,
            "last_failure": self.last_failure[:500],
            "instances_per_s": round(self.instances_per_s, 2),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            **self.heartbeat(),
            "counts": self.counts,
            "bytes_per_s": round(self.bytes_per_s),
            "studies": [
                {
                    "study_instance_uid": s.study_instance_uid,
                    "patient_id": s.patient_id,
                    "study_date": s.study_date,
                    "study_description": s.study_description,
                    "modalities": s.modalities,
                    "total": s.total,
                    "counts": s.counts,
                    "progress": round(s.progress, 4),
                    "bytes_total": s.bytes_total,
                    "bytes_sent": s.bytes_sent,
                    "reason": s.reason,
                }
                for s in self.studies
            ],
            **({"pull": self.pull} if self.pull is not None else {}),
        }


def snapshot(queue: Queue, spool: Spool, *, studies: int = 200) -> Snapshot:
    counts = queue.counts()
    per_s, bytes_per_s = queue.throughput()
    return Snapshot(
        version=__version__,
        counts=counts,
        queue_depth=sum(n for s, n in counts.items() if s != DONE),
        failures=counts.get(FAILED, 0),
        last_failure=queue.last_failure(),
        instances_per_s=per_s,
        bytes_per_s=bytes_per_s,
        disk_free_bytes=spool.free_bytes(),
        studies=queue.studies(limit=studies),
    )


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def render_table(snap: Snapshot) -> str:
    """`vetpacs-gateway status`: the queue by study, as text."""
    per_s = f"{snap.instances_per_s:.2f}/s, {human_bytes(snap.bytes_per_s)}/s"
    lines = [
        f"vetpacs-gateway {snap.version}  队列 queue: {snap.queue_depth}  失败 failures: {snap.failures}"
        f"  吞吐 throughput (60 s): {per_s}  磁盘可用 disk free: {human_bytes(snap.disk_free_bytes)}",
        "  ".join(f"{STATE_LABELS[s]}={snap.counts.get(s, 0)}" for s in STATES),
    ]
    if snap.last_failure:
        lines.append(f"最近失败 last failure: {snap.last_failure}")
    lines.append("")
    head = f"{'study':<40} {'date':<8} {'mod':<6} {'done':>9} {'fail':>5} {'stop':>5} {'progress':>8}  reason"
    lines.append(head)
    for s in snap.studies:
        lines.append(
            f"{s.study_instance_uid[-40:]:<40} {s.study_date:<8} {s.modalities[:6]:<6}"
            f" {s.counts.get(DONE, 0):>4}/{s.total:<4} {s.counts.get(FAILED, 0):>5}"
            f" {s.counts.get(STOPPED, 0):>5} {s.progress:>7.0%}  {s.reason[:80]}"
        )
    if not snap.studies:
        lines.append("(队列为空 / the queue is empty)")
    return "\n".join(lines)


def _page(snap: Snapshot, token: str) -> str:
    template = resources.files("vetpacs.gateway").joinpath("templates/status.html").read_text("utf-8")
    rows = []
    for s in snap.studies:
        uid = html.escape(s.study_instance_uid)
        failed = s.counts.get(FAILED, 0)
        stopped = s.counts.get(STOPPED, 0)
        pct = round(s.progress * 100)
        state_bits = " ".join(
            f'<span class="pill {st}">{html.escape(STATE_LABELS[st].split(" / ")[0])} {n}</span>'
            for st, n in sorted(s.counts.items(), key=lambda kv: STATES.index(kv[0]))
        )
        reason = f'<div class="reason">{html.escape(s.reason)}</div>' if s.reason else ""
        buttons = []
        if s.total - s.counts.get(DONE, 0) - stopped > 0:
            buttons.append(_button("stop", uid, token, "停止上传", "Stop upload"))
        if stopped:
            buttons.append(_button("resume", uid, token, "继续上传", "Resume"))
        if failed:
            buttons.append(_button("retry", uid, token, "立即重试", "Retry now"))
        rows.append(
            f"<tr><td><div class='study'>{html.escape(s.study_description or '—')}</div>"
            f"<div class='uid'>{uid}</div><div class='meta'>{html.escape(s.patient_id)} · "
            f"{html.escape(s.study_date)} · {html.escape(s.modalities)}</div></td>"
            f"<td class='num'>{s.counts.get(DONE, 0)} / {s.total}</td>"
            f"<td><div class='bar'><div style='width:{pct}%'></div></div>"
            f"<div class='pct'>{pct}% · {human_bytes(s.bytes_sent)} / {human_bytes(s.bytes_total)}</div>"
            f"{state_bits}{reason}</td><td class='actions'>{''.join(buttons)}</td></tr>"
        )
    if not rows:
        rows.append("<tr><td colspan='4' class='empty'>队列为空 · The queue is empty</td></tr>")
    alert = ""
    if snap.failures:
        alert = (
            f"<div class='alert'><strong>上传失败 / Upload failed</strong> ({snap.failures}): "
            f"{html.escape(snap.last_failure.removeprefix('上传失败 / upload failed: '))}</div>"
        )
    values = {
        "pull": _pull_line(snap.pull),
        "version": html.escape(snap.version),
        "pending": str(snap.queue_depth),
        "failures": str(snap.failures),
        "done": str(snap.counts.get(DONE, 0)),
        "rate": f"{snap.instances_per_s:.1f}",
        "bytes_rate": human_bytes(snap.bytes_per_s),
        "disk": human_bytes(snap.disk_free_bytes),
        "alert": alert,
        "rows": "\n".join(rows),
        "all_buttons": _button("stop", "", token, "全部停止", "Stop all")
        + _button("resume", "", token, "全部继续", "Resume all")
        + _button("retry", "", token, "全部重试", "Retry all"),
    }
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def _pull_line(pull: dict[str, Any] | None) -> str:
    """The scheduled pull from the clinic's PACS (R-6.1.2): when it last ran, what it did, its error."""
    if pull is None:
        return ""
    if not pull.get("last_at"):
        said = "尚未运行 · Not run yet"
    else:
        said = f"{html.escape(pull['last_at'])} · {html.escape(pull.get('last_pull') or '—')}"
    error = pull.get("last_error") or ""
    failed = f"<div class='reason'>拉取失败 / Pull failed: {html.escape(error)}</div>" if error else ""
    css = "pull bad" if error else "pull"
    pulled = int(pull.get("studies_pulled") or 0)
    return (
        f"<div class='{css}'><strong>从诊所 PACS 拉取 / Pull from the clinic PACS</strong>"
        f" · 最近一次 Last round: {said} · 已拉取检查 Studies pulled: {pulled}{failed}</div>"
    )


def _button(action: str, study: str, token: str, zh: str, en: str) -> str:
    return (
        f"<form method='post' action='/actions'><input type='hidden' name='token' value='{token}'>"
        f"<input type='hidden' name='action' value='{action}'><input type='hidden' name='study' "
        f"value='{study}'><button class='{action}' type='submit'>{zh}<small>{en}</small></button></form>"
    )


class StatusServer:
    """The local page on its own thread; `actions(action, study)` does what a button asks."""

    def __init__(
        self,
        host: str,
        port: int,
        snap: Callable[[], Snapshot],
        actions: Callable[[str, str | None], int],
    ) -> None:
        self.token = secrets.token_urlsafe(32)
        self._snap = snap
        self._actions = actions
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "vetpacs-gateway"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
                return

            def _send(self, code: int, body: str, ctype: str, extra: dict[str, str] | None = None) -> None:
                data = body.encode("utf-8")
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Frame-Options", "DENY")
                self.send_header(
                    "Content-Security-Policy",
                    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
                )
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == "/":
                    self._send(200, _page(outer._snap(), outer.token), "text/html; charset=utf-8")
                elif path == "/status.json":
                    body = json.dumps(outer._snap().as_json(), ensure_ascii=False)
                    self._send(200, body, "application/json")
                else:
                    self._send(404, "未找到 / not found", "text/plain; charset=utf-8")

            def do_POST(self) -> None:
                if urlsplit(self.path).path != "/actions":
                    self._send(404, "未找到 / not found", "text/plain; charset=utf-8")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_FORM_BYTES:
                    self._send(413, "请求过大 / request too large", "text/plain; charset=utf-8")
                    return
                form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
                origin = self.headers.get("Origin")
                host = self.headers.get("Host", "")
                token = (form.get("token") or [""])[0]
                if not hmac.compare_digest(token, outer.token) or (
                    origin and urlsplit(origin).netloc != host
                ):
                    self._send(403, "令牌无效 / invalid or missing page token", "text/plain; charset=utf-8")
                    return
                action = (form.get("action") or [""])[0]
                study = (form.get("study") or [""])[0] or None
                if action not in ("stop", "resume", "retry"):
                    self._send(400, f"未知操作 / unknown action {action!r}", "text/plain; charset=utf-8")
                    return
                outer._actions(action, study)
                self._send(303, "", "text/plain", {"Location": "/"})

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="status-page", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
