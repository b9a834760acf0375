"""SMS providers behind one small interface: console (development), Aliyun and Tencent Cloud."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("vetpacs.sms")


@dataclass(frozen=True)
class SmsMessage:
    phone: str
    purpose: str
    code: str


class SmsProvider(Protocol):
    """Sends one verification code; raises SmsSendError when the provider refuses or is unreachable."""

    name: str

    def send(self, message: SmsMessage) -> None: ...


class SmsSendError(Exception):
    """The provider did not accept the message (its own code and message are in the text)."""


class ConsoleProvider:
    """Development provider: logs the message and keeps it in `outbox` (like Django's locmem e-mail)."""

    name = "console"
    outbox: list[SmsMessage] = []
    _lock = threading.Lock()

    def send(self, message: SmsMessage) -> None:
        with self._lock:
            ConsoleProvider.outbox.append(message)
        log.warning("SMS to %s (%s): code %s", message.phone, message.purpose, message.code)
