"""The `vetpacs` command: serve, worker, and the management commands (create-org, import, verify...)."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

USAGE = """usage: vetpacs COMMAND [options]

commands:
  serve [--host IP] [--port P] [--workers N] [--with-worker] [--tls-cert F --tls-key F]
  worker                       run background tasks
  migrate                      create or update the database
  create-org NAME [--kind clinic|chain|center] [--parent NAME]
  create-token --org NAME [--name LABEL]
  create-user USERNAME --org NAME [--password P] [--role ROLE]
  import PATH...               archive DICOM files or folders (progress bar)
  verify                       re-hash every stored blob and report mismatches
  sweep                        remove blobs left behind by interrupted writes
  audit verify                 prove the audit hash chain unbroken; name the first broken event
  audit export [--format csv|json] [--since D] [--until D] [-o FILE]
  audit purge                  remove audit events older than the retention (>= 184 days)
  watermark verify FILE        who downloaded this JPEG/PNG and when (or: mark missing/forged)
  create-app-key --org NAME --name LABEL --scopes S,...   key id + secret for signed requests
  configure-sso --org NAME --provider-id ID --server-url URL --client-id X --secret S
  demo                         create the demo clinic, user, token and studies
  (any other Django management command, with '-' or '_')
"""


def _django_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetpacs.platform.settings")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    _django_setup()
    command, rest = args[0], args[1:]
    if command == "serve":
        return serve(rest)
    if command == "worker":
        command, rest = "db_worker", ["--queue-name", "default", *rest]
    from django.core.management import execute_from_command_line

    execute_from_command_line(["vetpacs", command.replace("-", "_"), *rest])
    return 0


# Connections waiting to be accepted: R-7.1.2a asks for 1024 concurrent users, with room to spare.
BACKLOG = 4096


def serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vetpacs serve")
    parser.add_argument("--host", default=os.environ.get("VETPACS_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("VETPACS_PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("VETPACS_WORKERS", "0")))
    # Python threads per worker running requests. Django holds the GIL for most of a request, so
    # more threads mostly add switching: QIDO under 1024 connections on 2 cores gave 520 requests/s
    # with 2 threads, 450 with 4 and 400 with 8. Four leave room for requests that wait on I/O
    # (blob reads, long WADO-RS streams) without stalling the rest of the worker.
    parser.add_argument("--threads", type=int, default=int(os.environ.get("VETPACS_THREADS", "4")))
    parser.add_argument("--with-worker", action="store_true", help="also run a task worker")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    opts = parser.parse_args(argv)
    busy = _cannot_listen(opts.host, opts.port)
    if busy:
        print(f"vetpacs serve: cannot listen on {opts.host}:{opts.port}: {busy}", file=sys.stderr)
        return 2
    # Two worker processes per core. Each worker runs Python under its own interpreter lock, so it
    # uses at most about one core, and granian does not balance connections between workers: with one
    # worker per core, a few long-lived connections (gateways, a viewer) often land unevenly and leave
    # a core idle. With two per core, 4 ingest clients gave 224-247 images/s against 141-221 and export
    # capacity 1013-1171/s against 831-977 in alternating runs on 2 cores (docs/benchmarks.md).
    workers = opts.workers or 2 * max(1, os.cpu_count() or 1)
    # Read by settings in every worker: the argon2 pool's share of the cores, and (with TLS)
    # secure-only cookies and HSTS (R-6.2.6.1).
    os.environ["VETPACS_SERVE_WORKERS"] = str(workers)
    os.environ["VETPACS_SERVE_THREADS"] = str(opts.threads)
    if opts.tls_cert:
        os.environ["VETPACS_TLS"] = "1"

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from vetpacs.platform import granian_logging

    call_command("collectstatic", interactive=False, verbosity=0)
    # Blobs a crash left unindexed (older than the grace period) go before serving.
    call_command("sweep", verbosity=0)
    cmd = [
        str(Path(sys.executable).with_name("granian")),
        "--interface",
        "wsgi",
        "--host",
        opts.host,
        "--port",
        str(opts.port),
        "--workers",
        str(workers),
        "--blocking-threads",
        str(opts.threads),
        "--backlog",
        str(BACKLOG),
        # Accept every waiting connection and serve them in turn. A small backpressure makes a
        # load test's p99 look short only because the connections it leaves unaccepted never
        # finish inside the test; a user arriving then waits until the load is gone.
        "--backpressure",
        str(BACKLOG // workers),
        "--respawn-failed-workers",
        "--static-path-route",
        settings.STATIC_URL.rstrip("/"),
        "--static-path-mount",
        str(settings.STATIC_ROOT),
        "--log-level",
        "warning",
        "--log-config",
        str(granian_logging.write_config(Path(settings.DATA_DIR))),
    ]
    if opts.tls_cert or opts.tls_key:
        if not (opts.tls_cert and opts.tls_key):
            parser.error("--tls-cert and --tls-key go together")
        cmd += ["--ssl-certificate", opts.tls_cert, "--ssl-keyfile", opts.tls_key]
    cmd.append("vetpacs.platform.wsgi:application")
    worker = None
    if opts.with_worker:
        # Quiet: one log line per task would bury the login details printed before serving.
        worker = subprocess.Popen([sys.executable, "-m", "vetpacs.cli", "worker", "--verbosity", "0"])
    server = subprocess.Popen(cmd)
    scheme = "https" if opts.tls_cert else "http"
    print(f"vetpacs is serving at {scheme}://{opts.host}:{opts.port} (Ctrl-C stops it)", flush=True)

    def stop(signum: int, _frame: object) -> None:
        for proc in (server, worker):
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = server.wait()
    if worker and worker.poll() is None:
        worker.terminate()
        worker.wait(timeout=30)
    return code


def _cannot_listen(host: str, port: int) -> str:
    """Why `vetpacs serve` could not listen on host:port ("" if it can), said before granian starts:
    granian would fail with a traceback instead. Another process may still take the port in between."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "--host takes an IP address (such as 127.0.0.1 or 0.0.0.0), not a name"
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if exc.errno == errno.EADDRINUSE:
                reason += "; is vetpacs (or another server) already running there? Stop it or pass --port"
            return reason
    return ""


if __name__ == "__main__":
    sys.exit(main())
