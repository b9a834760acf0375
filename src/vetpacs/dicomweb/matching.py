"""QIDO-RS query parameters (PS3.18 8.3.4) turned into database filters: keys, wildcards, ranges, fuzzy."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db.models import Q
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from vetpacs.apps.identity import services as identity
from vetpacs.core.errors import Errors, VetpacsError

STUDY, SERIES, INSTANCE = "study", "series", "instance"
LEVELS = (STUDY, SERIES, INSTANCE)

# PS3.18 8.3.4.2: the query parameters that are not matching keys.
LIMIT, OFFSET, FUZZY, INCLUDE = "limit", "offset", "fuzzymatching", "includefield"
# The most results one response carries; more are paged with a Warning (PS3.18 8.3.4.4).
MAX_RESULTS = 1000

_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$")
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
# One component of a stored Person Name: anything up to the next component or group separator.
_COMPONENT_CHAR = r"[^\^=]"
_COMPONENT = _COMPONENT_CHAR + "*"
_REST = r"([\^=].*)?"


@dataclass(frozen=True)
class MatchKey:
    """A supported matching key: its level, how it matches (by VR), and the column at that level."""

    keyword: str
    level: str
    kind: str  # date | time | uid | text | int | pn | modalities | patient_name | responsible_person
    column: str


_KEYS = [
    MatchKey("StudyDate", STUDY, "date", "study_date"),
    MatchKey("StudyTime", STUDY, "time", "study_time"),
    MatchKey("AccessionNumber", STUDY, "text", "accession_number"),
    MatchKey("ModalitiesInStudy", STUDY, "modalities", "modalities_in_study"),
    MatchKey("ReferringPhysicianName", STUDY, "pn", "referring_physician_name"),
    MatchKey("PatientName", STUDY, "patient_name", "patient_name"),
    MatchKey("PatientID", STUDY, "text", "dicom_patient_id"),
    MatchKey("StudyInstanceUID", STUDY, "uid", "study_instance_uid"),
    MatchKey("StudyID", STUDY, "text", "study_id"),
    MatchKey("StudyDescription", STUDY, "text", "study_description"),
    MatchKey("PatientBirthDate", STUDY, "date", "patient_birth_date"),
    MatchKey("PatientSex", STUDY, "text", "patient_sex"),
    MatchKey("PatientSpeciesDescription", STUDY, "text", "species_description"),
    MatchKey("PatientBreedDescription", STUDY, "text", "breed_description"),
    MatchKey("ResponsiblePerson", STUDY, "responsible_person", "responsible_person"),
    MatchKey("Modality", SERIES, "text", "modality"),
    MatchKey("SeriesInstanceUID", SERIES, "uid", "series_instance_uid"),
    MatchKey("SeriesNumber", SERIES, "int", "series_number"),
    MatchKey("SeriesDescription", SERIES, "text", "series_description"),
    MatchKey("BodyPartExamined", SERIES, "text", "body_part_examined"),
    MatchKey("PerformedProcedureStepStartDate", SERIES, "date", "performed_procedure_step_start_date"),
    MatchKey("PerformedProcedureStepStartTime", SERIES, "time", "performed_procedure_step_start_time"),
    MatchKey("SOPClassUID", INSTANCE, "uid", "sop_class_uid"),
    MatchKey("SOPInstanceUID", INSTANCE, "uid", "sop_instance_uid"),
    MatchKey("InstanceNumber", INSTANCE, "int", "instance_number"),
]
MATCH_KEYS = {k.keyword: k for k in _KEYS}


@functools.cache
def tag_key(keyword: str) -> str:
    """The DICOM JSON key (8 upper-case hex digits) of a keyword."""
    return f"{tag_for_keyword(keyword):08X}"


@functools.cache
def vr_of(tag: str) -> str:
    try:
        return dictionary_VR(int(tag, 16))
    except KeyError:
        return "UN"


def attribute_keyword(name: str) -> str | None:
    """A query parameter's attribute as a keyword, given as keyword or as tag (PS3.18 8.3.4.1)."""
    if _TAG.match(name):
        return keyword_for_tag(int(name, 16)) or None
    return name if tag_for_keyword(name) is not None else None


def attribute_tag(name: str) -> str | None:
    if _TAG.match(name):
        return name.upper()
    tag = tag_for_keyword(name)
    return f"{tag:08X}" if tag is not None else None


@dataclass
class Search:
    """A parsed QIDO-RS request: filters for the target level's queryset, and what to return."""

    level: str
    filters: list[Q] = field(default_factory=list)
    matched_tags: list[str] = field(default_factory=list)
    include_all: bool = False
    include_tags: set[str] = field(default_factory=set)
    fuzzy: bool = False
    limit: int = MAX_RESULTS
    offset: int = 0


def parse_search(
    params: dict[str, list[str]],
    *,
    level: str,
    allowed_levels: tuple[str, ...],
    organisation_ids: frozenset[int],
) -> Search:
    """Read the query string of a search at `level`; keys may come from any of `allowed_levels`.

    Raises VetpacsError(BAD_REQUEST) naming the parameter that is wrong.
    """
    search = Search(level=level)
    search.fuzzy = _flag(params, FUZZY)
    search.limit = _count(params, LIMIT, default=MAX_RESULTS, minimum=1)
    search.limit = min(search.limit, MAX_RESULTS)
    search.offset = _count(params, OFFSET, default=0, minimum=0)
    for raw in params.get(INCLUDE, []):
        for item in filter(None, (s.strip() for s in raw.split(","))):
            if item.lower() == "all":
                search.include_all = True
                continue
            tag = attribute_tag(item)
            if tag is None:
                raise VetpacsError(Errors.BAD_REQUEST, f"includefield names an unknown attribute: {item!r}")
            search.include_tags.add(tag)
    for name, values in params.items():
        if name in (LIMIT, OFFSET, FUZZY, INCLUDE):
            continue
        keyword = attribute_keyword(name)
        if keyword is None:
            raise VetpacsError(
                Errors.BAD_REQUEST, f"unknown query parameter {name!r}: not a DICOM keyword or tag"
            )
        key = MATCH_KEYS.get(keyword)
        if key is None or key.level not in allowed_levels:
            raise VetpacsError(
                Errors.BAD_REQUEST,
                f"{keyword} is not supported as a matching key at the {level} level of this resource",
            )
        search.matched_tags.append(tag_key(keyword))
        prefix = _prefix(level, key.level)
        for value in values:
            q = _match(key, value.strip(), prefix, fuzzy=search.fuzzy, organisation_ids=organisation_ids)
            if q is not None:
                search.filters.append(q)
    return search


def _flag(params: dict[str, list[str]], name: str) -> bool:
    values = params.get(name, [])
    if not values:
        return False
    value = values[-1].strip().lower()
    if value not in ("true", "false"):
        raise VetpacsError(Errors.BAD_REQUEST, f"{name} must be true or false, not {values[-1]!r}")
    return value == "true"


def _count(params: dict[str, list[str]], name: str, *, default: int, minimum: int) -> int:
    values = params.get(name, [])
    if not values:
        return default
    try:
        value = int(values[-1])
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise VetpacsError(
            Errors.BAD_REQUEST, f"{name} must be an integer of at least {minimum}, not {values[-1]!r}"
        )
    return value


def _prefix(target: str, key_level: str) -> str:
    """The path from the target level's model to the key's model (Study <- Series <- Instance)."""
    if target == key_level:
        return ""
    return f"{key_level}__"


def _is_universal(value: str) -> bool:
    # PS3.4 C.2.2.2.3: an empty value, or only '*', matches everything.
    return value == "" or set(value) == {"*"}


def _has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def wildcard_regex(value: str, any_char: str = ".") -> str:
    """PS3.4 C.2.2.2.4: '*' any run of characters, '?' one character; the rest literal."""
    out = []
    for ch in value:
        if ch == "*":
            out.append(f"{any_char}*")
        elif ch == "?":
            out.append(any_char)
        else:
            out.append(re.escape(ch))
    return "".join(out)


def _match(
    key: MatchKey, value: str, prefix: str, *, fuzzy: bool, organisation_ids: frozenset[int]
) -> Q | None:
    if _is_universal(value):
        return None
    column = prefix + key.column
    orgs = organisation_ids
    kinds: dict[str, Callable[[], Q]] = {
        "date": lambda: _date_q(column, value, key.keyword),
        "time": lambda: _time_q(column, value, key.keyword),
        "uid": lambda: Q(**{f"{column}__in": _uid_list(value)}),
        "int": lambda: Q(**{column: _integer(value, key.keyword)}),
        "text": lambda: _text_q(column, value),
        "modalities": lambda: _modalities_q(column, value),
        "pn": lambda: _person_name_q(column, value, fuzzy=fuzzy),
        "patient_name": lambda: _patient_name_q(column, value, fuzzy=fuzzy, organisation_ids=orgs),
        "responsible_person": lambda: _responsible_person_q(column, value, orgs),
    }
    return kinds[key.kind]()


def _text_q(column: str, value: str) -> Q:
    # PS3.4 C.2.2.2.4: wildcard and single value matching are case-sensitive outside PN.
    if _has_wildcard(value):
        return Q(**{f"{column}__regex": f"^{wildcard_regex(value)}$"})
    return Q(**{column: value})


def _uid_list(value: str) -> list[str]:
    # PS3.18 8.3.4.1: a UID list is comma-separated; PS3.4 C.2.2.2.2 uses the backslash.
    return [u.strip() for u in re.split(r"[,\\]", value) if u.strip()]


def _integer(value: str, keyword: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise VetpacsError(Errors.BAD_REQUEST, f"{keyword} must be an integer, not {value!r}") from None


def _modalities_q(column: str, value: str) -> Q:
    # ModalitiesInStudy is multi-valued (stored backslash-separated): any listed modality matches.
    wanted = [v for v in re.split(r"[,\\]", value) if v]
    alternatives = "|".join(wildcard_regex(v, r"[^\\]") for v in wanted)
    return Q(**{f"{column}__regex": rf"(^|\\)({alternatives})(\\|$)"})


def _parse_date(value: str, keyword: str) -> dt.date:
    if not _DATE.match(value):
        raise VetpacsError(Errors.BAD_REQUEST, f"{keyword} must be a date YYYYMMDD or a range, not {value!r}")
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        raise VetpacsError(Errors.BAD_REQUEST, f"{keyword}: {value!r} is not a real date") from None


def _date_q(column: str, value: str, keyword: str) -> Q:
    # PS3.4 C.2.2.2.5: range matching, 'A-B', '-B' (on or before), 'A-' (on or after).
    if "-" not in value:
        return Q(**{column: _parse_date(value, keyword)})
    low, _, high = value.partition("-")
    if not low and not high:
        raise VetpacsError(Errors.BAD_REQUEST, f"{keyword}: a range needs at least one end")
    q = Q()
    if low:
        q &= Q(**{f"{column}__gte": _parse_date(low, keyword)})
    if high:
        q &= Q(**{f"{column}__lte": _parse_date(high, keyword)})
    return q


def _parse_time(value: str, keyword: str, *, upper: bool) -> dt.time:
    """A partial time is the span it names: '10' is 10:00:00 as a lower end, 10:59:59 as an upper."""
    m = _TIME.match(value)
    if not m or int(m.group(1)) > 23 or int(m.group(2) or 0) > 59 or int(m.group(3) or 0) > 59:
        raise VetpacsError(Errors.BAD_REQUEST, f"{keyword} must be a time HHMMSS or a range, not {value!r}")
    fill = 59 if upper else 0
    hour = int(m.group(1))
    minute = int(m.group(2)) if m.group(2) else fill
    second = int(m.group(3)) if m.group(3) else fill
    return dt.time(hour, minute, second)


def _time_q(column: str, value: str, keyword: str) -> Q:
    # Stored times keep whole seconds; a single value matches the span its precision names.
    low, sep, high = value.partition("-") if "-" in value else (value, "", value)
    if sep and not low and not high:
        raise VetpacsError(Errors.BAD_REQUEST, f"{keyword}: a range needs at least one end")
    q = Q()
    if low:
        q &= Q(**{f"{column}__gte": _parse_time(low, keyword, upper=False)})
    if high:
        q &= Q(**{f"{column}__lte": _parse_time(high, keyword, upper=True)})
    return q


def _person_name_q(column: str, value: str, *, fuzzy: bool) -> Q:
    if fuzzy:
        # PS3.18 8.3.4.6 leaves fuzzy matching to the server: here, the start of any name component.
        return Q(**{f"{column}__iregex": rf"(^|[\^=]){wildcard_regex(value)}"})
    # PS3.4 C.2.2.2.4: PN may match case-insensitively.
    if _has_wildcard(value):
        return Q(**{f"{column}__iregex": f"^{wildcard_regex(value)}$"})
    return Q(**{f"{column}__iexact": value})


def _owner_pseudonyms(value: str, organisation_ids: frozenset[int]) -> list[str]:
    """Pseudonyms of the owners named exactly `value` (blind index), plus `value` if it is one."""
    if not value or _has_wildcard(value):
        return []
    found = identity.owner_pseudonyms_matching(organisation_ids=organisation_ids, field="name", value=value)
    return [re.escape(p) for p in found]


def _owner_alternatives(name: str, organisation_ids: frozenset[int]) -> str:
    """A family-name component: the pseudonym as written, or the pseudonyms of that real owner name."""
    return "|".join([wildcard_regex(name, _COMPONENT_CHAR), *_owner_pseudonyms(name, organisation_ids)])


def _patient_name_q(column: str, value: str, *, fuzzy: bool, organisation_ids: frozenset[int]) -> Q:
    """Patient's Name is stored 'PSEUDONYM^Pet' (R-7.3.4.1c): the owner part is not in clear.

    So the pet's name (given-name component) and the pseudonym match as written, with wildcards,
    while the owner's real name matches only exactly, through the identity store's blind index,
    which gives back the pseudonyms standing for that owner. A wildcard on a real owner name cannot
    be answered without decrypting every owner, and is not.
    """
    if fuzzy:
        alternatives = [rf"(^|[\^=]){wildcard_regex(value)}"]
        alternatives += [rf"^{p}([\^=]|$)" for p in _owner_pseudonyms(value, organisation_ids)]
        return Q(**{f"{column}__iregex": "|".join(f"({a})" for a in alternatives)})
    family, caret, rest = value.partition("^")
    if not caret:
        # One component as typed at a clinic desk: the pet's name, the owner, or a whole stored name.
        owner = _owner_alternatives(value, organisation_ids)
        pet = wildcard_regex(value, _COMPONENT_CHAR)
        pattern = rf"^((?:{owner}){_REST}|{_COMPONENT}\^(?:{pet})(\^.*|=.*)?|{wildcard_regex(value)})$"
        return Q(**{f"{column}__iregex": pattern})
    if _is_universal(family):
        owner = _COMPONENT
    else:
        owner = _owner_alternatives(family, organisation_ids)
    pet = wildcard_regex(rest, ".") if rest else ""
    pattern = rf"^(?:{owner})\^{pet}" + ("$" if rest else _REST + "$")
    return Q(**{f"{column}__iregex": pattern})


def _responsible_person_q(column: str, value: str, organisation_ids: frozenset[int]) -> Q:
    # Stored values are pseudonyms: the real name matches exactly through the blind index; a
    # pseudonym (with wildcards, e.g. 'ANON*') matches as written.
    if _has_wildcard(value):
        return Q(**{f"{column}__iregex": f"^{wildcard_regex(value)}$"})
    found = identity.owner_pseudonyms_matching(organisation_ids=organisation_ids, field="name", value=value)
    return Q(**{f"{column}__in": [*found, value]})
