"""docs/conformance.md is generated; it must match the tests' requirement markers."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_conformance_doc_is_up_to_date_and_markers_name_real_requirements():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "conformance.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
