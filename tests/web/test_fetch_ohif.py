"""scripts/fetch-ohif.sh: the pinned OHIF build, rebased to /viewer/, fetched once."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "fetch-ohif.sh"


def pinned_stamp() -> str:
    text = SCRIPT.read_text()
    values = dict(re.findall(r'^(OHIF_VERSION|BASE|FIXUP_REVISION)="([^"]+)"', text, re.M))
    return f"@ohif/app@{values['OHIF_VERSION']} base={values['BASE']} fixup={values['FIXUP_REVISION']}"


def test_a_build_with_the_pinned_stamp_is_left_alone(tmp_path):
    build = tmp_path / "ohif"
    build.mkdir()
    (build / ".vetpacs-ohif-stamp").write_text(pinned_stamp() + "\n")
    (build / "index.html").write_text("kept")
    # No npm on PATH, only the two tools the check uses: a second run must not need the registry.
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("dirname", "cat"):
        (tools / tool).symlink_to(shutil.which(tool))
    env = {**os.environ, "VETPACS_OHIF_DIR": str(build), "PATH": str(tools)}
    done = subprocess.run(
        ["/bin/bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert (build / "index.html").read_text() == "kept"


def test_installed_build_is_the_pinned_version_rebased_to_viewer():
    subprocess.run([str(SCRIPT)], check=True, timeout=600)  # does nothing when already installed
    build = ROOT / "build" / "ohif"
    assert (build / ".vetpacs-ohif-stamp").read_text().strip() == pinned_stamp()
    index = (build / "index.html").read_text()
    assert 'window.PUBLIC_URL="/viewer/"' in index
    assert not re.search(r'(href|src)="/(?!viewer/|/)', index), "a root-absolute link is left"
    (bundle,) = build.glob("app.bundle.*.js")
    assert '__webpack_require__.p = "/viewer/";' in bundle.read_text(errors="replace")
    assert (build / (bundle.name + ".gz")).is_file()
