"""Search keys for animal names: pinyin and initials, so "wangcai", "wc" or "cai" find 旺财 (R-6.2.4d)."""

from __future__ import annotations

import re

from pypinyin import lazy_pinyin

# Between the full spelling and the initials, so a query never matches across the two.
SEPARATOR = "|"
MAX_LENGTH = 200
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise_query(text: str) -> str:
    """What a user typed, in the key's alphabet: lower case letters and digits only."""
    return _NOT_ALNUM.sub("", text.lower())


def animal_name_key(name: str) -> str:
    """'旺财' -> 'wangcai|wc'; 'Lucky 豆豆' -> 'luckydoudou|ldd'. Latin names keep their letters."""
    if not name.strip():
        return ""
    words = lazy_pinyin(name.strip(), errors=lambda chars: chars.split())
    full = normalise_query("".join(words))
    initials = normalise_query("".join(w[:1] for w in words if normalise_query(w)))
    return f"{full}{SEPARATOR}{initials}"[:MAX_LENGTH]
