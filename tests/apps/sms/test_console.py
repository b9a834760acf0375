"""The console provider: what development and tests use instead of a real SMS gateway."""

from vetpacs.apps.sms import services
from vetpacs.apps.sms.providers import ConsoleProvider


def test_send_sms_lands_in_the_console_outbox(settings):
    settings.VETPACS_SMS = {**settings.VETPACS_SMS, "provider": "console"}
    ConsoleProvider.outbox.clear()
    services.send_sms(phone="13812345678", purpose="login", code="482913")
    assert [(m.phone, m.purpose, m.code) for m in ConsoleProvider.outbox] == [
        ("13812345678", "login", "482913")
    ]
