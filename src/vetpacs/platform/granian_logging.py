"""granian's logging for `vetpacs serve`: its own format, without one piece of advice that does not apply.

granian warns at every start when it runs more workers than the machine has cores. `vetpacs serve`
does that on purpose (two per core, measured faster: see `cli.serve`), so the warning would only
mislead whoever starts the platform. Every other message of granian's is kept.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

WORKER_COUNT_ADVICE = "number of workers appears to be higher than the amount of CPU cores"


class SkipWorkerCountAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return WORKER_COUNT_ADVICE not in record.getMessage()


def config() -> dict[str, Any]:
    """The part of granian's logging configuration (granian.log.LOGGING_CONFIG) that vetpacs changes."""
    stdout = {"class": "logging.StreamHandler", "stream": "ext://sys.stdout"}
    return {
        "filters": {"skip_worker_count_advice": {"()": f"{__name__}.SkipWorkerCountAdvice"}},
        "handlers": {
            "console": {**stdout, "formatter": "generic", "filters": ["skip_worker_count_advice"]},
            "access": {**stdout, "formatter": "access"},
        },
    }


def write_config(folder: Path) -> Path:
    """The configuration as the JSON file granian's --log-config reads."""
    path = folder / "granian-logging.json"
    path.write_text(json.dumps(config()))
    return path
