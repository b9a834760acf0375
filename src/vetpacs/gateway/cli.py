"""`vetpacs-gateway`: the on-premises agent's command line.

Each subcommand is one `add_<name>(sub)` function that registers its parser and its `func`;
`main` lists them in COMMANDS. Exit codes: 0 done, 1 failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

DEFAULT_CONFIG_DIR = Path("/etc/vetpacs-gateway")


def _config_dir(args: argparse.Namespace) -> Path:
    return Path(args.config_dir).expanduser()


def _load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from vetpacs.gateway.config import load_config

    return load_config(_config_dir(args))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config-dir",
        default=str(DEFAULT_CONFIG_DIR),
        help="folder holding gateway.toml and credentials.json (default /etc/vetpacs-gateway)",
    )


# -- run -----------------------------------------------------------------------------------------


def add_run(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="receive (DICOM SCP, watch folders) and upload until stopped")
    _common(p)
    p.add_argument("--no-heartbeat", action="store_true", help="do not call the platform's device endpoint")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from vetpacs.gateway.credentials import load_credentials
    from vetpacs.gateway.run import Gateway

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = _load(args)
    credentials = load_credentials(config.config_dir)
    gateway = Gateway(config, credentials)
    gateway.run_forever(heartbeat=not args.no_heartbeat)
    return 0


# -- status, stop, resume, retry -------------------------------------------------------------------


def add_status(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("status", help="the upload queue by study: counts, progress, throughput, failures")
    _common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--entries", metavar="STUDY_UID", help="list the entries of one study with their steps")
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from vetpacs.gateway.queue import STATE_LABELS, Queue
    from vetpacs.gateway.spool import Spool
    from vetpacs.gateway.status import render_table, snapshot

    config = _load(args)
    queue = Queue(config.queue_path)
    if args.entries:
        for e in queue.entries(study=args.entries):
            print(f"#{e.id} {e.sop_instance_uid} {STATE_LABELS[e.state]} {e.reason}")
            for step in json.loads(e.steps):
                print(f"    {step['step']}: {step['detail']}")
        return 0
    snap = snapshot(queue, Spool(config.spool_dir, queue))
    print(json.dumps(snap.as_json(), ensure_ascii=False, indent=2) if args.json else render_table(snap))
    return 0


def _add_action(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(name, help=help_text)
    _common(p)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("entry", nargs="?", type=int, help="queue entry id (see `status --entries`)")
    target.add_argument("--study", metavar="STUDY_UID", help="every entry of this study")
    target.add_argument("--all", action="store_true", help="every entry")
    p.set_defaults(func=cmd_action, action=name)


def add_stop(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    _add_action(sub, "stop", "停止上传 / stop uploading an entry, a study or everything")


def add_resume(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    _add_action(sub, "resume", "继续上传 / resume what was stopped")


def add_retry(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    _add_action(sub, "retry", "立即重试 / retry failed entries now")


def cmd_action(args: argparse.Namespace) -> int:
    from vetpacs.gateway.queue import Queue
    from vetpacs.gateway.run import apply_action

    config = _load(args)
    n = apply_action(Queue(config.queue_path), args.action, entry_id=args.entry, study=args.study)
    print(f"{args.action}: {n} entries")
    return 0


# -- enroll, convert, hl7 (their parsers live beside their code) ------------------------------------

from vetpacs.gateway.convert.cli import add_convert  # noqa: E402
from vetpacs.gateway.enrol import add_enroll  # noqa: E402
from vetpacs.gateway.hl7 import add_hl7  # noqa: E402
from vetpacs.gateway.pull import add_pull  # noqa: E402

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [  # type: ignore[type-arg]
    add_run,
    add_status,
    add_stop,
    add_resume,
    add_retry,
    add_enroll,
    add_convert,
    add_hl7,
    add_pull,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vetpacs-gateway", description="vetpacs clinic gateway (前置机影像网关); docs/gateway.md"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from vetpacs.gateway.config import ConfigError
    from vetpacs.gateway.credentials import CredentialsError
    from vetpacs.gateway.protect import ProtectionError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, CredentialsError, ProtectionError) as exc:
        print(f"vetpacs-gateway: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
