"""Data subjects: the people whose PII an audit looks for, as validated JSONL, plus a seeded generator.

Schema, one person per line: `{"id", "name", "email"?, "phone"?, "address"?, ...}`. Any further
key is an extra PII attribute (e.g. "ssn", "birthdate", "employer") and must hold a string. Planted,
known values are what give extraction a denominator (ProPILE, Kim et al. 2023, Sec. 3), so the
loader refuses anything ambiguous (duplicate ids, empty values) instead of guessing.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from privaudit.data.jsonl import json_type, read_jsonl, write_jsonl
from privaudit.errors import InputError, where

STANDARD_PII_FIELDS: tuple[str, ...] = ("email", "phone", "address")
MAX_FIELD_CHARS = 1000
# Phones are generated in this one format; templates and recognizers can rely on it.
PHONE_FORMAT = "(AAA) EEE-NNNN"

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")


@dataclass(frozen=True)
class DataSubject:
    """One person: an id, a name, and the PII values an attacker might extract."""

    id: str
    name: str
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    # Excluded from hashing (a dict is unhashable) but compared, so equal subjects compare equal.
    extra: Mapping[str, str] = field(default_factory=dict, hash=False)

    def pii_fields(self) -> dict[str, str]:
        """Every non-empty PII value except id and name: email/phone/address first, then extras."""
        out = {k: v for k in STANDARD_PII_FIELDS if (v := getattr(self, k))}
        out.update({k: v for k, v in self.extra.items() if v})
        return out

    @property
    def first_name(self) -> str:
        return self.name.split()[0]

    def to_json(self) -> dict[str, str]:
        """The JSONL row for this subject (absent fields left out)."""
        row: dict[str, str] = {"id": self.id, "name": self.name}
        row.update(self.pii_fields())
        return row


def subject_from_mapping(row: Mapping[str, Any], path: str | os.PathLike[str] = "<subjects>",
                         line: int | None = None) -> DataSubject:
    """Validate one JSON object into a DataSubject; errors name FILE:LINE: field 'x'."""
    def fail(key: str, why: str) -> InputError:
        return InputError(f"{where(path, line, key)}: {why}")

    for key in ("id", "name"):
        if key not in row or row[key] is None:
            raise fail(key, "required field is missing")
    values: dict[str, str] = {}
    for key, value in row.items():
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise fail(str(key)[:64], "field names must be identifiers (letters, digits, _ or -, at most 64)")
        if value is None and key in STANDARD_PII_FIELDS:
            continue  # an explicit null means "not known", like leaving the key out
        if not isinstance(value, str):
            raise fail(key, f"expected a string, got {json_type(value)}")
        if not value.strip():
            raise fail(key, "empty value (leave the field out when it is unknown)")
        if len(value) > MAX_FIELD_CHARS:
            raise fail(key, f"value too long ({len(value)} characters, at most {MAX_FIELD_CHARS})")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise fail(key, "value holds an unpaired surrogate (not valid Unicode text)") from None
        values[key] = value.strip()
    extra = {k: v for k, v in values.items() if k not in ("id", "name", *STANDARD_PII_FIELDS)}
    return DataSubject(id=values["id"], name=values["name"], email=values.get("email"),
                       phone=values.get("phone"), address=values.get("address"), extra=extra)


def load_subjects(path: str | os.PathLike[str]) -> list[DataSubject]:
    """Read and validate a subjects JSONL file; the first defect is an InputError naming FILE:LINE: field."""
    return list(iter_subjects(path))


def iter_subjects(path: str | os.PathLike[str]) -> Iterator[DataSubject]:
    """`load_subjects` one subject at a time (same checks), for user bases too large to hold at once."""
    first_line: dict[str, int] = {}
    for lineno, row in read_jsonl(path):
        subject = subject_from_mapping(row, path, lineno)
        if subject.id in first_line:
            raise InputError(f"{where(path, lineno, 'id')}: duplicate id '{subject.id}' "
                             f"(first on line {first_line[subject.id]})")
        first_line[subject.id] = lineno
        yield subject


def write_subjects(path: str | os.PathLike[str], subjects: Iterable[DataSubject]) -> int:
    """Write subjects as JSONL (atomic, user-only); returns how many were written."""
    return write_jsonl(Path(path), (s.to_json() for s in subjects))


# --- generator -------------------------------------------------------------------------------

# Real US area codes, so phone recognizers (libphonenumber validity checks) treat generated numbers
# like real ones; exchanges avoid N11 and 555.
_AREA_CODES: tuple[int, ...] = (
    201, 202, 203, 205, 206, 207, 208, 209, 210, 212, 213, 214, 215, 216, 217, 218, 219, 224, 225,
    228, 229, 231, 234, 239, 240, 248, 251, 252, 253, 254, 256, 260, 262, 267, 269, 270, 276, 281,
    301, 302, 303, 304, 305, 307, 308, 309, 310, 312, 313, 314, 315, 316, 317, 318, 319, 320, 321,
    323, 325, 330, 334, 336, 337, 339, 347, 351, 352, 360, 361, 386, 401, 402, 404, 405, 406, 407,
    408, 409, 410, 412, 413, 414, 415, 417, 419, 423, 425, 432, 434, 435, 440, 443, 469, 478, 479,
    480, 484, 501, 502, 503, 504, 505, 507, 508, 509, 510, 512, 513, 515, 516, 517, 518, 520, 530,
    540, 541, 559, 561, 562, 563, 567, 570, 571, 573, 574, 580, 585, 586, 601, 602, 603, 605, 606,
    607, 608, 609, 610, 612, 614, 615, 616, 617, 618, 619, 620, 623, 626, 630, 631, 636, 641, 646,
    650, 651, 660, 661, 662, 678, 682, 701, 702, 703, 704, 706, 707, 708, 712, 713, 714, 715, 716,
    717, 718, 719, 720, 724, 727, 731, 732, 734, 740, 754, 757, 760, 763, 765, 770, 772, 773, 774,
    775, 781, 785, 786, 801, 802, 803, 804, 805, 806, 808, 810, 812, 813, 814, 815, 816, 817, 818,
    828, 830, 831, 832, 843, 845, 847, 848, 850, 856, 857, 858, 859, 860, 862, 863, 864, 865, 870,
    878, 901, 903, 904, 906, 907, 908, 909, 910, 912, 913, 914, 915, 916, 917, 918, 919, 920, 925,
    928, 931, 936, 937, 940, 941, 947, 949, 951, 952, 954, 956, 970, 971, 972, 973, 978, 979, 980,
)
# Mail domains: a few large providers (as in real address books) and generic ones, so the domain
# is not a constant an attacker gets for free.
_FREE_DOMAINS: tuple[str, ...] = (
    "gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com", "proton.me",
    "fastmail.com", "gmx.com", "mail.com", "zoho.com", "yandex.com",
)


def _ascii_letters(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def _username(first: str, last: str, birth_year: int, rng: random.Random) -> str:
    """A plausible but not trivially predictable mailbox name derived from a person's name."""
    f, l = _ascii_letters(first) or "x", _ascii_letters(last) or "y"
    num = str(rng.randint(1, 999))
    yy = f"{birth_year % 100:02d}"
    patterns = (
        f"{f}.{l}", f"{f}{l}", f"{f[0]}{l}", f"{f}{l[0]}", f"{f}_{l}", f"{l}.{f}", f"{f[0]}.{l}",
        f"{f}.{l}{num}", f"{f[0]}{l}{num}", f"{f}{num}", f"{l}{f[0]}{yy}", f"{f}{l}{yy}",
        f"{f}.{l[0]}{num}", f"{l}{num}", f"{f[:3]}{l[:3]}{num}",
    )
    return rng.choice(patterns)


def _phone(rng: random.Random) -> str:
    area = rng.choice(_AREA_CODES)
    exchange = rng.randint(201, 989)
    while exchange % 100 == 11 or exchange == 555:
        exchange = rng.randint(201, 989)
    return f"({area}) {exchange:03d}-{rng.randint(0, 9999):04d}"


def generate_subjects(n: int, seed: int = 0, locale: str = "en_US") -> list[DataSubject]:
    """`n` synthetic subjects with unique names and emails; the same seed gives identical output.

    Names, streets, cities and employers come from Faker (seeded per call); email usernames,
    domains and phone numbers from our own seeded RNG. Phones use PHONE_FORMAT "(AAA) EEE-NNNN";
    addresses are one line "street, city, ST zip"; extras are `birthdate` (ISO) and `employer`.
    """
    if n < 0:
        raise InputError(f"number of subjects must be >= 0, got {n}")
    try:
        from faker import Faker
        fake = Faker(locale)
    except AttributeError:
        raise InputError(f"unknown Faker locale '{locale}'") from None
    fake.seed_instance(seed)
    rng = random.Random(f"privaudit-subjects:{seed}")
    width = max(4, len(str(n)))
    names: set[str] = set()
    emails: set[str] = set()
    subjects: list[DataSubject] = []
    for i in range(n):
        for _ in range(1000):
            first, last = fake.first_name(), fake.last_name()
            name = f"{first} {last}"
            if name not in names:
                break
        else:  # pragma: no cover - only with a locale with a tiny name pool and a huge n
            raise InputError(f"cannot draw {n} distinct names from Faker locale '{locale}'")
        names.add(name)
        # A fixed range, not an age relative to today, so the same seed gives the same file every day.
        birth = fake.date_between_dates(date(1940, 1, 1), date(2006, 12, 31))
        while True:
            domain = rng.choice(_FREE_DOMAINS) if rng.random() < 0.7 else fake.domain_name()
            email = f"{_username(first, last, birth.year, rng)}@{domain}"
            if email not in emails:
                break
        emails.add(email)
        state = fake.state_abbr(include_territories=False, include_freely_associated_states=False)
        address = f"{fake.street_address()}, {fake.city()}, {state} {fake.zipcode()}"
        subjects.append(DataSubject(
            id=f"s{i:0{width}d}", name=name, email=email, phone=_phone(rng), address=address,
            extra={"birthdate": birth.isoformat(), "employer": fake.company()},
        ))
    return subjects


def subject_index(subjects: Sequence[DataSubject]) -> dict[str, DataSubject]:
    """Subjects by id (ids are unique in a validated file)."""
    return {s.id: s for s in subjects}
