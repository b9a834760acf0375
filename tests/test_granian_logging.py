"""`vetpacs serve` logs granian's warnings but not its advice against more workers than cores."""

from __future__ import annotations

import json
import logging

from granian.log import LogLevels, configure_logging

from vetpacs.platform import granian_logging


def test_granian_keeps_its_warnings_but_not_the_worker_count_advice(tmp_path, capsys):
    path = granian_logging.write_config(tmp_path)
    configure_logging(LogLevels.warning, json.loads(path.read_text()))
    log = logging.getLogger("_granian")
    try:
        log.warning(
            "Configured number of workers appears to be higher than the amount of CPU cores available. "
            "Mind that such value might actually decrease the overall throughput of the server."
        )
        log.warning("Workers respawn is configured, but the net.ipv4.tcp_migrate_req sysctl is not enabled")
        log.info("Listening at: http://127.0.0.1:8000")  # below the level vetpacs serve asks for
        out = capsys.readouterr().out
    finally:
        configure_logging(LogLevels.warning)  # granian's own configuration again
    assert "[WARNING] Workers respawn is configured" in out
    assert "number of workers" not in out and "Listening" not in out
