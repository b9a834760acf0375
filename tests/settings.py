"""Settings for the test run: a fresh data directory, and SQLite or PostgreSQL as VETPACS_TEST_DATABASE says.

pytest-django imports the settings before any conftest runs, so the environment the platform's settings
read is decided here, before they are imported.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

TEST_DATA_DIR = Path(tempfile.mkdtemp(prefix="vetpacs-test-"))
TEST_DATABASE = os.environ.get("VETPACS_TEST_DATABASE", "sqlite")

os.environ["VETPACS_DATA_DIR"] = str(TEST_DATA_DIR)
os.environ.setdefault("VETPACS_ORPHAN_GRACE_SECONDS", "3600")
if TEST_DATABASE == "postgresql":
    os.environ["VETPACS_DATABASE_URL"] = os.environ.get(
        "VETPACS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/vetpacs"
    )
else:
    os.environ.pop("VETPACS_DATABASE_URL", None)
# The processes the tests start (`vetpacs serve`, the gateway) read the platform's own settings, with the
# environment each is given; this module is for the test process alone.
os.environ["DJANGO_SETTINGS_MODULE"] = "vetpacs.platform.settings"

from vetpacs.platform.settings import *  # noqa: E402, F403
