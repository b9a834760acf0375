"""The `vetpacs` command line: organisations, tokens, import with reasons, verify, worker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.builders import dicom as build
from vetpacs.apps.archive.models import Instance
from vetpacs.apps.orgs.models import Organisation
from vetpacs.apps.orgs.services import authenticate_token

CLI = str(Path(sys.executable).with_name("vetpacs"))


def test_create_org_and_token_print_a_working_token(db, capsys):
    call_command("create_org", "Chain A", kind="chain")
    call_command("create_org", "Clinic A1", parent="Chain A")
    capsys.readouterr()
    call_command("create_token", org="Chain A")
    token = capsys.readouterr().out.strip()
    principal = authenticate_token(token)
    clinic = Organisation.objects.get(name="Clinic A1")
    # A chain's token sees its member clinics.
    assert clinic.id in principal.organisation_ids


def test_create_org_refuses_a_duplicate_name(db):
    call_command("create_org", "Dup")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_org", "Dup")


@pytest.mark.requirement("R-7.5a")
def test_import_archives_a_folder_and_names_each_refused_file(clinic, tmp_path, capsys):
    folder = tmp_path / "exam"
    folder.mkdir()
    for ds in build.study(3):
        build.write(ds, folder)
    (folder / "notes.txt").write_text("not an image")
    with pytest.raises(SystemExit) as exit_:
        call_command("import", str(folder), org=clinic.name, quiet=True)
    assert exit_.value.code == 1
    out = capsys.readouterr()
    assert "3 stored" in out.out and "1 refused" in out.out
    assert "notes.txt" in out.err and "not a DICOM" in out.err
    assert Instance.objects.count() == 3


def test_verify_is_clean_after_import(clinic, tmp_path, capsys):
    path = build.write(build.image(), tmp_path)
    call_command("import", str(path), org=clinic.name, quiet=True)
    call_command("verify")
    assert "1 blobs checked, 0 problems" in capsys.readouterr().out


@pytest.mark.slow
def test_the_real_cli_imports_migrates_and_the_worker_compresses(tmp_path):
    """End to end in a separate data directory: migrate, create-org, import, worker --batch."""
    env = {**os.environ, "VETPACS_DATA_DIR": str(tmp_path / "var")}
    env.pop("VETPACS_DATABASE_URL", None)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, check=False)

    assert run("migrate", "--verbosity", "0").returncode == 0
    assert run("create-org", "CLI Clinic").returncode == 0
    images = tmp_path / "in"
    images.mkdir()
    for ds in build.study(2):
        build.write(ds, images)
    imported = run("import", str(images))
    assert imported.returncode == 0, imported.stderr
    assert "2 stored" in imported.stdout
    worker = run("worker", "--batch", "--no-startup-delay")
    assert worker.returncode == 0, worker.stderr
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django,os;os.environ['DJANGO_SETTINGS_MODULE']='vetpacs.platform.settings';"
            "django.setup();"
            "from vetpacs.apps.archive.models import Instance;"
            "print(sorted(set(Instance.objects.values_list('transfer_syntax_uid', flat=True))))",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "1.2.840.10008.1.2.4.80" in check.stdout  # JPEG-LS Lossless
    assert (tmp_path / "var" / "keys" / "master.key").stat().st_mode & 0o777 == 0o600
    assert run("verify").returncode == 0


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "VETPACS_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "vetpacs.platform.settings",
    }
    return subprocess.run(
        [CLI, "serve", *args], env=env, capture_output=True, text=True, check=False, timeout=60
    )


def test_serve_on_a_port_already_taken_says_so_and_starts_nothing(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(tmp_path, "--port", str(port))
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "already running there" in done.stderr
    assert "Traceback" not in done.stderr and "serving at" not in done.stdout


def test_serve_with_a_host_name_instead_of_an_address_says_what_it_takes(tmp_path):
    done = _serve(tmp_path, "--host", "clinic-server", "--port", "8000")
    assert done.returncode == 2
    assert "--host takes an IP address" in done.stderr and "Traceback" not in done.stderr
