"""The gateway's settings: file, environment, and a clear refusal of anything impossible."""

from __future__ import annotations

import pytest

from vetpacs.gateway.config import ConfigError, load_config, write_default


def test_defaults_need_no_file(tmp_path):
    cfg = load_config(tmp_path)
    assert cfg.ae_title == "VETPACS_GW"
    assert cfg.dicom_port == 11112
    assert cfg.status_host == "127.0.0.1"
    assert cfg.spool_dir == tmp_path.resolve() / "spool"


def test_file_then_environment(tmp_path, monkeypatch):
    write_default(
        tmp_path, ae_title="CLINIC_GW", allowed_calling_aes=["DR1", "US2"], bandwidth_bytes_per_s=1000
    )
    monkeypatch.setenv("VETPACS_GATEWAY_BANDWIDTH_BYTES_PER_S", "2500000")
    cfg = load_config(tmp_path)
    assert cfg.ae_title == "CLINIC_GW"
    assert cfg.allowed_calling_aes == ("DR1", "US2")
    assert cfg.bandwidth_bytes_per_s == 2_500_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('ae_title = "A_TITLE_LONGER_THAN_16"', "ae_title"),
        ("dicom_port = 70000", "dicom_port"),
        ("parallel_uploads = 0", "parallel_uploads"),
        ('colour = "blue"', "unknown setting 'colour'"),
        ('dicom_port = "eleven"', "dicom_port"),
        ("ae_title = ", "gateway.toml"),
    ],
)
def test_an_impossible_setting_is_named(tmp_path, text, message):
    (tmp_path / "gateway.toml").write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path)
