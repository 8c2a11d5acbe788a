"""Validators: the checks a finding must pass after its pattern matched.

Each takes the finding's text and says whether it is real (a card number
passes Luhn, an IBAN mod-97, …).  A rule names one by its key in `VALIDATORS`.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text``."""
    if not text:
        return 0.0
    total = len(text)
    return -sum(n / total * math.log2(n / total) for n in Counter(text).values())


def luhn(text: str) -> bool:
    """A payment card number: 12 to 19 digits (separators ignored) whose Luhn sum is 0 mod 10."""
    digits = [int(c) for c in text if c.isdigit()]
    if not 12 <= len(digits) <= 19:
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


# Total IBAN length per country (ISO 13616 / SWIFT IBAN registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban(text: str) -> bool:
    """An IBAN: a known country, that country's length, and the ISO 7064 mod-97 check."""
    value = "".join(text.split()).upper()
    if IBAN_LENGTHS.get(value[:2]) != len(value) or not value.isalnum():
        return False
    if not value[2:4].isdigit() or value[2:4] in ("00", "01", "99"):
        return False
    rearranged = value[4:] + value[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


# Numbers published as examples (on a wallet card, in an advertisement) or typed as filler.
_SSN_EXAMPLES = frozenset({"078051120", "219099999", "123456789"})


def ssn(text: str) -> bool:
    """A US Social Security number as the SSA issues them.

    Area (first three digits) not 000, 666 or 900-999; group (next two) not 00;
    serial (last four) not 0000; not one of the well-known example numbers, and
    not filler where every part repeats one digit (111-22-3333).
    """
    digits = "".join(c for c in text if c.isdigit())
    if len(digits) != 9 or digits in _SSN_EXAMPLES:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if all(len(set(part)) == 1 for part in (area, group, serial)):
        return False
    if area in ("000", "666") or area[0] == "9":
        return False
    return group != "00" and serial != "0000"


def ipv4(text: str) -> bool:
    """A globally routable IPv4 address (dotted quad, no leading zeros).

    Private (RFC 1918), loopback, link-local, shared, documentation, multicast,
    reserved and broadcast addresses say nothing about a person and are everywhere
    in code and configuration, so they do not count.  Neither does a quad whose
    first two octets are single digits: ``1.2.3.4``, ``3.0.5.130`` and the OID
    ``2.5.29.14`` are versions and object identifiers far more often than anybody's
    address (the price: a few hosting blocks such as 5.9.0.0/16 go unreported).
    Networks are not addresses either: ``192.0.2.0/24``, or a last octet of 0.
    """
    if "/" in text or text.endswith(".0"):
        return False
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        return False
    if not address.is_global or address.is_multicast:
        return False
    first, second = text.split(".")[:2]
    return not (len(first) == 1 and len(second) == 1)


_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def ipv6(text: str) -> bool:
    """A global IPv6 address.

    Rejects loopback, unspecified, link-local, site-local, unique-local,
    multicast, documentation and IPv4-mapped addresses, and network prefixes
    (interface id all zero, ``2001:4860::``).  Short compressed forms
    outside 2000::/3 (the global unicast block) must spell out at least six
    groups, so ``std::`` or ``a::b`` in code never qualify.
    """
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        return False
    if (
        address.is_private
        or address.is_multicast
        or address.is_loopback
        or address.is_link_local
        or address.is_site_local
        or address.is_unspecified
        or address.ipv4_mapped is not None
    ):
        return False
    if int(address) & 0xFFFF_FFFF_FFFF_FFFF == 0:
        return False  # a network prefix (2001:4860::), not an interface's address
    explicit = sum(1 for group in text.split(":") if group)
    return address in _GLOBAL_UNICAST or explicit >= 6


_EXTENSION = re.compile(r"(?i)\s*(?:x|ext\.?)\s*\d+$")
# A calendar date inside the digits: 2024-01-15, 15.01.2024, 01/15/2024.
_DATE = re.compile(
    r"(?:^|\D)(?:(?:1[89]|2\d)\d\d[-./](?:0?[1-9]|1[0-2])[-./](?:0?[1-9]|[12]\d|3[01])"
    r"|(?:0?[1-9]|[12]\d|3[01])[-./](?:0?[1-9]|[12]\d|3[01])[-./](?:1[89]|2\d)\d\d)(?:\D|$)"
)


def phone(text: str) -> bool:
    """A plausible phone number: 7 to 15 digits, with no calendar date inside.

    The extension (``x123``, ``ext. 12``) and the trunk prefix written ``(0)`` do
    not count; a number written with ``+`` needs at least 8 digits (country code
    included, E.164 allows 15).  A run of one repeated digit is filler, not a number.
    """
    value = _EXTENSION.sub("", text.strip()).replace("(0)", "")
    if _DATE.search(value):
        return False
    digits = [c for c in value if c.isdigit()]
    if not (8 if value.startswith("+") else 7) <= len(digits) <= 15:
        return False
    return len(set(digits)) > 1


# Domains reserved for examples and tests (RFC 2606, RFC 6761).
_RESERVED_DOMAINS = ("example.com", "example.org", "example.net")
_RESERVED_TLDS = frozenset({"example", "test", "invalid", "localhost", "local"})
# `icon@2x.png`, `font@latest.js`: file names, not mailboxes.
_FILE_SUFFIXES = frozenset(
    {"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "js", "mjs", "ts", "css"}
    | {"map", "json", "yaml", "yml", "html", "md", "txt", "wasm", "woff", "woff2"}
)
# Role and machine senders that identify no person.
_ROLE_LOCAL_PARTS = frozenset({"noreply", "no-reply", "donotreply", "do-not-reply", "git"})


def email(text: str) -> bool:
    """A mailbox that could be a person's.

    Rejects reserved example/test domains, file names like ``logo@2x.png``,
    role senders (``noreply@``, ``git@``), and malformed addresses (empty or
    dotted-out local parts, bad labels, a TLD that is not 2+ letters).
    """
    local, _, domain = text.rpartition("@")
    domain = domain.lower()
    if not local or len(text) > 254 or len(local) > 64:
        return False
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    labels = domain.split(".")
    if len(labels) < 2 or any(not part or part[0] == "-" or part[-1] == "-" for part in labels):
        return False
    tld = labels[-1]
    if not tld.isalpha() or len(tld) < 2 or tld in _FILE_SUFFIXES or tld in _RESERVED_TLDS:
        return False
    if any(domain == d or domain.endswith("." + d) for d in _RESERVED_DOMAINS):
        return False
    return local.lower() not in _ROLE_LOCAL_PARTS


def jwt(text: str) -> bool:
    """A JSON Web Token: header and payload base64url-decode to JSON objects, the header
    naming "alg" or "typ"."""
    import base64
    import json

    parts = text.split(".")
    if len(parts) < 2:
        return False
    decoded: list[object] = []
    for part in parts[:2]:
        body = part.rstrip("=")
        try:
            decoded.append(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))
        except ValueError:  # also binascii.Error and UnicodeDecodeError
            return False
    header, payload = decoded
    return (
        isinstance(header, dict)
        and isinstance(payload, dict)
        and bool({"alg", "typ"} & set(header))
    )


_PLACEHOLDER = re.compile(
    r"(?i)^(?:[<\[{(%$@*]|\\\$)|[>\]})]$|x{4,}|\*{3,}|\.{3}|#{4,}|_here\b|^(?:none|null|nil|true|false"
    r"|undefined|empty|string|str|bytes|int|required|optional|secret|password|passwd|token|"
    r"changeme|change_?me|changeit|example|sample|dummy|placeholder|redacted|mask(?:ed)?|"
    r"your[\w-]*|my[\w-]*(?:key|token|secret|password)|test|testing|foobar|hunter2|"
    r"(?:api|access|secret|private)[_-]?key|admin|root|user(?:name)?|guest|default)$"
)
_CODE = re.compile(
    r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+(?:\(.*\)?|\[.*\]?)?$"  # a.b.c, a.b(), a.b[...]
    r"|^[A-Za-z_]\w*\(.*\)?$|^[A-Za-z_]\w*\[.*\]?$"  # call(), lookup[...]
    r"|getenv|environ|process\.env|getpass|settings\.|config\.|secrets\.|vault\("
    r"|^(?:\./|\.\./|/|~/|[A-Za-z]:\\|file:|https?:|s3:)"  # paths and URLs
    r"|\.(?:pem|key|crt|cer|json|ya?ml|txt|env|cfg|conf|ini|p12|pfx|jks|keystore|der|pub)$"
)

# A hex integer literal that fits in 64 bits (`0x0dead1beef7cafe2`) is a number, not a
# credential; longer 0x values (an Ethereum private key) are not ruled out.
_INT_LITERAL = re.compile(r"0[xX][0-9a-fA-F]{1,16}")


def credential_value(text: str) -> bool:
    """A value assigned to a password / secret / token name that looks like a real one.

    Drops placeholders (``${VAR}``, ``<your-key>``, ``xxxx``, ``changeme``), code
    (``os.environ[...]``, ``config.secret``, ``getpass()``), paths, plain words and
    identifiers (letters only, ``UPPER_CASE`` constants, ``snake_case`` names).
    """
    value = text.strip("\"'`")
    if len(value) < 4 or _PLACEHOLDER.search(value) or _CODE.search(value):
        return False
    if len(set(value.lower())) < 4 or value.isdigit() or _INT_LITERAL.fullmatch(value):
        return False
    if value.replace("_", "").replace("-", "").replace(".", "").isalpha():
        # words and identifiers; a random letters-only value is long and mixed case
        return (
            len(value) >= 16
            and re.search(r"[A-Z]{2}", value) is not None
            and re.search(r"[a-z][A-Z]", value) is not None
            and shannon_entropy(value) >= 3.5
        )
    return not re.fullmatch(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[a-z][a-z0-9]*(?:_[a-z0-9]+)+", value)


def url_password(text: str) -> bool:
    """The password of a ``user:password@host`` URL, unless it is a placeholder."""
    return len(set(text)) > 1 and not _PLACEHOLDER.search(text) and "$" not in text


def mixed_case(text: str) -> bool:
    return any(c.isupper() for c in text) and any(c.islower() for c in text)


def has_digit(text: str) -> bool:
    return any(c.isdigit() for c in text) and any(c.isalpha() for c in text)


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": luhn,
    "iban": iban,
    "ssn": ssn,
    "ipv4": ipv4,
    "ipv6": ipv6,
    "phone": phone,
    "email": email,
    "jwt": jwt,
    "credential_value": credential_value,
    "url_password": url_password,
    "mixed_case": mixed_case,
    "has_digit": has_digit,
}
