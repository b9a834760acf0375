"""SMS providers behind one small interface: console (development), Aliyun and Tencent Cloud."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import requests

from vetpacs.core import cloud_signing as signing

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


HTTP_TIMEOUT_SECONDS = 10


def _templates(spec: str) -> dict[str, str]:
    """ "login:SMS_1,password_reset:SMS_2" -> {"login": "SMS_1", ...}"""
    pairs = (item.split(":", 1) for item in spec.split(",") if ":" in item)
    return {purpose.strip(): template.strip() for purpose, template in pairs}


class AliyunProvider:
    """Aliyun SMS (dysmsapi) SendSms, RPC style with signature version 1.0 (signing.aliyun_signature)."""

    name = "aliyun"
    ENDPOINT = "https://dysmsapi.aliyuncs.com/"
    VERSION = "2017-05-25"

    def __init__(self, config: dict[str, str]) -> None:
        self.config = config
        self.templates = _templates(config.get("templates", ""))

    def params(self, message: SmsMessage, *, nonce: str, timestamp: str) -> dict[str, str]:
        template = self.templates.get(message.purpose)
        if not template:
            raise SmsSendError(f"no Aliyun template configured for purpose {message.purpose!r}")
        return {
            "AccessKeyId": self.config["access_key_id"],
            "Action": "SendSms",
            "Format": "JSON",
            "PhoneNumbers": message.phone,
            "RegionId": self.config.get("region") or "cn-hangzhou",
            "SignName": self.config["sign_name"],
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": nonce,
            "SignatureVersion": "1.0",
            "TemplateCode": template,
            "TemplateParam": json.dumps({"code": message.code}, separators=(",", ":")),
            "Timestamp": timestamp,
            "Version": self.VERSION,
        }

    def send(self, message: SmsMessage) -> None:
        params = self.params(
            message,
            nonce=str(uuid.uuid4()),
            timestamp=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        params["Signature"] = signing.aliyun_signature(params, self.config["access_key_secret"])
        try:
            resp = requests.get(
                self.config.get("endpoint") or self.ENDPOINT, params=params, timeout=HTTP_TIMEOUT_SECONDS
            )
            body = resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise SmsSendError(f"Aliyun SMS unreachable or answered badly: {exc}") from exc
        if body.get("Code") != "OK":
            raise SmsSendError(f"Aliyun SMS refused: {body.get('Code')}: {body.get('Message')}")


class TencentProvider:
    """Tencent Cloud SMS (API 3.0, version 2021-01-11) SendSms, signed TC3-HMAC-SHA256."""

    name = "tencent"
    HOST = "sms.tencentcloudapi.com"
    VERSION = "2021-01-11"

    def __init__(self, config: dict[str, str]) -> None:
        self.config = config
        self.templates = _templates(config.get("templates", ""))

    def payload(self, message: SmsMessage) -> str:
        template = self.templates.get(message.purpose)
        if not template:
            raise SmsSendError(f"no Tencent template configured for purpose {message.purpose!r}")
        phone = message.phone if message.phone.startswith("+") else "+86" + message.phone
        return json.dumps(
            {
                "PhoneNumberSet": [phone],
                "SmsSdkAppId": self.config["sdk_app_id"],
                "SignName": self.config["sign_name"],
                "TemplateId": template,
                "TemplateParamSet": [message.code],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    def send(self, message: SmsMessage) -> None:
        endpoint = self.config.get("endpoint") or f"https://{self.HOST}/"
        host = urlsplit(endpoint).netloc
        payload = self.payload(message)
        timestamp = int(time.time())
        headers = {
            **signing.tencent_api_headers(
                secret_id=self.config["access_key_id"],
                secret_key=self.config["access_key_secret"],
                service="sms",
                host=host,
                payload=payload,
                action="SendSms",
                version=self.VERSION,
                timestamp=timestamp,
            ),
            "X-TC-Region": self.config.get("region") or "ap-guangzhou",
        }
        try:
            resp = requests.post(
                endpoint, data=payload.encode(), headers=headers, timeout=HTTP_TIMEOUT_SECONDS
            )
            body = resp.json().get("Response", {})
        except (requests.RequestException, ValueError, AttributeError) as exc:
            raise SmsSendError(f"Tencent Cloud SMS unreachable or answered badly: {exc}") from exc
        if "Error" in body:
            raise SmsSendError(
                f"Tencent Cloud SMS refused: {body['Error'].get('Code')}: {body['Error'].get('Message')}"
            )
        statuses = body.get("SendStatusSet") or [{}]
        if statuses[0].get("Code") != "Ok":
            raise SmsSendError(
                f"Tencent Cloud SMS refused: {statuses[0].get('Code')}: {statuses[0].get('Message')}"
            )
