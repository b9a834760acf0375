"""Real-name verification providers: one interface, a development provider, adapters configured by name."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class RealNameAnswer:
    verified: bool
    reference: str  # the provider's id for this check, kept as evidence
    reason: str = ""
    raw: dict[str, Any] = field(default_factory=dict)  # the answer as received (hashed, not stored)

    @property
    def evidence_sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class RealNameProvider(Protocol):
    """Checks a name against a resident ID number with an authority (公安 identity services)."""

    name: str

    def verify(self, *, name: str, id_number: str) -> RealNameAnswer: ...


class DevelopmentProvider:
    """For development and tests: a checksum-valid number matches any name, except names starting
    with "未通过" or "REJECT", which the provider answers as not matching (to exercise refusals)."""

    name = "development"
    REJECT_PREFIXES = ("未通过", "REJECT")

    def verify(self, *, name: str, id_number: str) -> RealNameAnswer:
        digest = hashlib.sha256(f"{name}|{id_number}".encode()).hexdigest()[:16]
        if name.startswith(self.REJECT_PREFIXES):
            return RealNameAnswer(
                False, f"dev-{digest}", "姓名与身份证号不一致 / name does not match", {"res": "2"}
            )
        return RealNameAnswer(True, f"dev-{digest}", "", {"res": "1", "ref": f"dev-{digest}"})


PROVIDERS: dict[str, type] = {"development": DevelopmentProvider}


def provider(name: str) -> RealNameProvider:
    try:
        return PROVIDERS[name]()  # type: ignore[no-any-return]
    except KeyError:
        raise ValueError(f"unknown real-name provider {name!r}; configured: {sorted(PROVIDERS)}") from None
