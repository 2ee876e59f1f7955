"""PII: email addresses, phone numbers, payment cards, IBANs, US SSNs, IPv4 and IPv6 addresses.

Every candidate that a regular expression finds is validated before it is
reported. Cards pass the Luhn check and start with a known issuer prefix.
IBANs have the length of their country and pass the ISO 13616 mod-97 check.
SSNs avoid the ranges the SSA never assigns. Phone numbers are parsed and
validated with `phonenumbers` (Google's libphonenumber metadata), and IP
addresses with the standard library's `ipaddress`.
"""

from __future__ import annotations

import ipaddress
import msgspec
import re
from collections.abc import Callable, Iterator
from typing import ClassVar, Literal

import phonenumbers

from continuum.services.guardrails.detectors.base import DetectorOptions, typed_placeholder
from continuum.shared.schemas.guard import Finding

PiiType = Literal["email", "phone", "card", "iban", "ssn", "ipv4", "ipv6"]
ALL_TYPES: tuple[PiiType, ...] = ("email", "phone", "card", "iban", "ssn", "ipv4", "ipv6")


class PiiOptions(DetectorOptions, kw_only=True, forbid_unknown_fields=True):
    """PII types to report, and the region (`phone_region`) used to parse numbers written without a `+` country code."""

    types: list[PiiType] = msgspec.field(default_factory=lambda: list(ALL_TYPES))
    phone_region: str = "US"


_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
# A run of digits with single spaces or hyphens between groups, 13 to 19 digits in all.
_CARD = re.compile(r"\d(?:[ -]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_SSN = re.compile(r"(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-])")
# `+` with a country code, or a national number with separators such as (555) 123-4567.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{1,5}){1,5}"
    r"|\(\d{2,4}\)[ .-]?\d{2,4}[ .-]?\d{3,5}"
    r"|\d{3}[.-]\d{3}[.-]\d{4})(?!\w|-\d)"
)
# A national trunk prefix written after the country code, as in +44 (0)20 or +33 01.
_TRUNK_ZERO = re.compile(r"^(\+\d{1,3})[ .-]?(?:\(0\)|0)")
_IPV4 = re.compile(r"(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%[\w]+)?(?![\w:])")
_HEX_GROUP = re.compile(r"[0-9A-Fa-f]{1,4}")

# ISO 13616 lengths of the IBAN of each country (SWIFT IBAN registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def luhn_valid(digits: str) -> bool:
    """Return whether a digit string passes the Luhn (mod 10) check."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def card_issuer_known(digits: str) -> bool:
    """Return whether the number starts with the prefix and has a length of a major card scheme."""
    length = len(digits)
    if digits[0] == "4":
        return length in (13, 16, 19)
    two, four, six = int(digits[:2]), int(digits[:4]), int(digits[:6])
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return length == 16
    if two in (34, 37):
        return length == 15
    if four == 6011 or two == 65 or 644 <= int(digits[:3]) <= 649 or 622126 <= six <= 622925:
        return 16 <= length <= 19
    if 3528 <= four <= 3589:
        return 16 <= length <= 19
    if two == 62:
        return 16 <= length <= 19
    if two == 36 or 300 <= int(digits[:3]) <= 305 or two in (38, 39):
        return 14 <= length <= 19
    return False


def iban_valid(compact: str) -> bool:
    """Return whether an IBAN without spaces has its country's length and passes mod-97."""
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is None or len(compact) != expected:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """Return whether an SSN avoids the never-assigned ranges: area 000, 666 and 900-999, group 00, serial 0000."""
    if area == "000" or area == "666" or area[0] == "9":
        return False
    return group != "00" and serial != "0000"


def _follows(text: str, start: int, symbols: str) -> bool:
    """Return whether the character before `start` is a letter, a digit, `_` or one of `symbols`.

    The patterns check this after the search instead of with a lookbehind, because re skips ahead
    to a pattern's first characters only when the pattern does not start with an assertion.
    """
    if start == 0:
        return False
    before = text[start - 1]
    return before.isalnum() or before == "_" or before in symbols


def _end_after_alphanumerics(value: str, count: int) -> int | None:
    """Return the index just past the `count`-th non-space character of `value`, or None if it is shorter."""
    seen = 0
    for index, char in enumerate(value):
        if char != " ":
            seen += 1
            if seen == count:
                return index + 1
    return None


class PiiDetector:
    """Validated PII findings, one type per value; redaction writes `[EMAIL]`, `[PHONE]`, `[CARD]`, ..."""

    name: ClassVar[str] = "pii"

    def __init__(self, options: PiiOptions | None = None) -> None:
        self.options = options or PiiOptions()
        scanners: dict[str, Callable[[str], Iterator[Finding]]] = {
            "email": self._emails,
            "card": self._cards,
            "iban": self._ibans,
            "ssn": self._ssns,
            "phone": self._phones,
            "ipv4": self._ipv4,
            "ipv6": self._ipv6,
        }
        # Cards and SSNs run before phones so that a phone-shaped card number is reported as a card.
        self._scanners = [scanners[kind] for kind in scanners if kind in self.options.types]

    def scan(self, text: str) -> list[Finding]:
        findings: list[Finding] = []
        taken: list[tuple[int, int]] = []
        for scanner in self._scanners:
            for finding in scanner(text):
                if any(finding.start < end and start < finding.end for start, end in taken):
                    continue
                taken.append((finding.start, finding.end))
                findings.append(finding)
        findings.sort(key=lambda finding: finding.start)
        return findings

    def placeholder(self, finding: Finding) -> str:
        return typed_placeholder(finding)

    def _finding(self, kind: str, match: re.Match[str], reason: str, start: int | None = None, end: int | None = None) -> Finding:
        return Finding(
            detector=self.name,
            type=kind,
            start=match.start() if start is None else start,
            end=match.end() if end is None else end,
            reason=reason,
        )

    def _emails(self, text: str) -> Iterator[Finding]:
        if "@" not in text:
            return
        for match in _EMAIL.finditer(text):
            yield self._finding("email", match, "email address")

    def _cards(self, text: str) -> Iterator[Finding]:
        for match in _CARD.finditer(text):
            if _follows(text, match.start(), "+-"):
                continue
            digits = re.sub(r"[ -]", "", match.group())
            if card_issuer_known(digits) and luhn_valid(digits):
                yield self._finding("card", match, f"payment card number ({len(digits)} digits, Luhn valid)")

    def _ibans(self, text: str) -> Iterator[Finding]:
        for match in _IBAN.finditer(text):
            value = match.group()
            expected = IBAN_LENGTHS.get(value[:2])
            if expected is None:
                continue
            # The pattern may run into the next word, so cut the value at its country's length.
            end = _end_after_alphanumerics(value, expected)
            if end is None or (end < len(value) and value[end] != " "):
                continue
            compact = value[:end].replace(" ", "")
            if iban_valid(compact):
                yield self._finding("iban", match, f"IBAN ({compact[:2]}, mod-97 valid)", end=match.start() + end)

    def _ssns(self, text: str) -> Iterator[Finding]:
        for match in _SSN.finditer(text):
            if _follows(text, match.start(), "-"):
                continue
            if ssn_valid(match.group(1), match.group(3), match.group(4)):
                yield self._finding("ssn", match, "US social security number in an assignable range")

    def _phones(self, text: str) -> Iterator[Finding]:
        for match in _PHONE.finditer(text):
            candidate = match.group()
            digits = sum(char.isdigit() for char in candidate)
            if digits < 7 or digits > 15:
                continue
            number = self._parse_phone(candidate)
            if number is not None:
                region = phonenumbers.region_code_for_number(number) or "unknown region"
                yield self._finding("phone", match, f"phone number ({region})")

    def _parse_phone(self, candidate: str) -> phonenumbers.PhoneNumber | None:
        """Return the number when libphonenumber finds it valid, also with a trunk 0 after the country code."""
        attempts = [candidate]
        if candidate.startswith("+"):
            without_trunk = _TRUNK_ZERO.sub(r"\1 ", candidate, count=1)
            if without_trunk != candidate:
                attempts.append(without_trunk)
        for attempt in attempts:
            try:
                number = phonenumbers.parse(attempt, None if attempt.startswith("+") else self.options.phone_region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                return number
        return None

    def _ipv4(self, text: str) -> Iterator[Finding]:
        for match in _IPV4.finditer(text):
            if _follows(text, match.start(), "."):
                continue
            try:
                ipaddress.IPv4Address(match.group())
            except ValueError:
                continue
            yield self._finding("ipv4", match, "IPv4 address")

    def _ipv6(self, text: str) -> Iterator[Finding]:
        if "::" not in text and text.count(":") < 7:
            return
        for match in _IPV6.finditer(text):
            value = match.group()
            # At least three hex groups, so slices such as `a[::2]` and times such as 10:20 never match.
            if len(_HEX_GROUP.findall(value.split("%")[0])) < 3:
                continue
            try:
                ipaddress.IPv6Address(value)
            except ValueError:
                continue
            yield self._finding("ipv6", match, "IPv6 address")
