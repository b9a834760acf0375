"""Pure rules of gateways: online after a beat, offline after three missed, commands well-formed."""

from __future__ import annotations

import datetime as dt

from vetpacs.apps.devices import workflow

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def test_gateway_is_online_until_three_beats_are_missed():
    assert workflow.is_online(NOW - dt.timedelta(seconds=44), NOW, 15)
    assert workflow.is_online(NOW - dt.timedelta(seconds=45), NOW, 15)
    assert not workflow.is_online(NOW - dt.timedelta(seconds=46), NOW, 15)
    assert not workflow.is_online(None, NOW, 15)


def test_send_report_needs_a_wado_url():
    assert workflow.check_command("send_report", {}) is not None
    assert workflow.check_command("send_report", {"url": "file:///etc/passwd"}) is not None
    assert workflow.check_command("send_report", {"url": "https://p/dicomweb/studies/1"}) is None


def test_unknown_command_is_named_in_the_error():
    assert "reboot" in workflow.check_command("reboot", {})


def test_stop_takes_a_study_an_entry_or_nothing():
    assert workflow.check_command("stop", {}) is None
    assert workflow.check_command("stop", {"study": "1.2.3"}) is None
    assert workflow.check_command("resume", {"entry": 7}) is None
    assert "entry" in workflow.check_command("stop", {"entry": "7"})
    assert workflow.check_command("stop", {"study_uid": "1.2"}) is not None


def test_codes_ignore_case_and_dashes():
    assert workflow.normalise_code(" abcde-fghjk-mnpqr-stvwx ") == "ABCDEFGHJKMNPQRSTVWX"
    assert workflow.looks_like_code("abcde-fghjk-mnpqr-stvwx")
    assert not workflow.looks_like_code("short")
