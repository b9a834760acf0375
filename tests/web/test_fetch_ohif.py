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


def test_installed_build_starts_only_the_modes_we_use_and_preloads_their_chunks():
    subprocess.run([str(SCRIPT)], check=True, timeout=600)
    build = ROOT / "build" / "ohif"
    (bundle,) = build.glob("app.bundle.*.js")
    text = bundle.read_text(errors="replace")
    modes = re.findall(r'pluginImports_modes\.push\("([^"]+)"\)', text)
    assert modes == ["@ohif/mode-longitudinal", "@ohif/mode-basic"]
    assert re.findall(r'pluginImports_extensions\.push\("([^"]+)"\)', text) == [
        "@ohif/extension-default",
        "@ohif/extension-cornerstone",
    ]
    index = (build / "index.html").read_text()
    # The bundle is asked for first, then every chunk the viewer route needs, each a file of the build.
    head = index.index(f'<script defer fetchpriority="high" src="/viewer/{bundle.name}">')
    preloads = re.findall(r'<link rel="preload" as="(script|style)" href="/viewer/([^"]+)">', index)
    assert len(preloads) >= 10 and index.index('<link rel="preload" as="script"') > head
    for _, name in preloads:
        assert (build / name).is_file(), name
    # The chunks of the default extension and of the viewer's (longitudinal) mode are among them.
    loader = text[text.index("async function loadModule(module)") :]
    for module in ("@ohif/extension-default", "@ohif/mode-longitudinal"):
        branch = re.search(rf'if \(module === "{re.escape(module)}"\) \{{(.*?)return imported', loader, re.S)
        for chunk in re.findall(r"__webpack_require__\.e\((?:/\* import\(\) \*/ )?(\d+)\)", branch.group(1)):
            assert any(name.startswith(f"{chunk}.") for _, name in preloads), (module, chunk)
