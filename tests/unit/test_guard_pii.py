"""The built-in `pii` and `markers` packs and their validators.

All numbers here are synthetic: test card numbers, example IBANs, made-up phone
numbers and documentation-style values.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gatehouse.guardrails import validators
from gatehouse.guardrails.engine import Scanner
from gatehouse.guardrails.rules import RuleSet, load_rules

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture(scope="module")
def pii() -> Scanner:
    rules = load_rules()
    return Scanner(RuleSet(tuple(rules.by_detector("pii")), rules.allow))


@pytest.fixture(scope="module")
def markers() -> Scanner:
    return Scanner(RuleSet(tuple(load_rules().by_detector("markers"))))


def found(scanner: Scanner, text: str) -> list[tuple[str, str]]:
    """(rule id, exact value) of every finding, overlapping duplicates included."""
    return sorted({(hit.rule.id, text[hit.start : hit.end]) for hit in scanner.scan(text)})


def values(scanner: Scanner, text: str) -> set[str]:
    return {value for _, value in found(scanner, text)}


def test_packs_build_with_every_pattern_prefiltered(caplog: pytest.LogCaptureFixture) -> None:
    rules = load_rules()
    ours = RuleSet(tuple(rules.by_detector("pii") + rules.by_detector("markers")))
    with caplog.at_level(logging.INFO, logger="gatehouse.guardrails"):
        scanner = Scanner(ours)
    assert scanner.prefiltered
    fallbacks = [r.getMessage() for r in caplog.records if "without the prefilter" in r.message]
    assert fallbacks == []


@pytest.mark.parametrize(
    ("text", "rule", "value"),
    [
        (
            "mail jane.doe+work@mailhost.co.uk today",
            "email-address",
            "jane.doe+work@mailhost.co.uk",
        ),
        ("<Jo.Smith@corp-mail.io>", "email-address", "Jo.Smith@corp-mail.io"),
        ("card 4111 1111 1111 1111 exp 12/29", "payment-card", "4111 1111 1111 1111"),
        ("card 4111-1111-1111-1111.", "payment-card", "4111-1111-1111-1111"),
        ("visa:4012888888881881", "payment-card", "4012888888881881"),
        ("mc 5555555555554444", "payment-card", "5555555555554444"),
        ("mc 2223003122003222", "payment-card", "2223003122003222"),
        ("amex 3782 822463 10005", "payment-card", "3782 822463 10005"),
        ("discover 6011111111111117", "payment-card", "6011111111111117"),
        ("jcb 3530111333300000", "payment-card", "3530111333300000"),
        ("diners 3056 930902 5904", "payment-card", "3056 930902 5904"),
        ("pay to GB82 WEST 1234 5698 7654 32 now", "iban", "GB82 WEST 1234 5698 7654 32"),
        ("IBAN: DE89370400440532013000", "iban", "DE89370400440532013000"),
        ("iban nl91abna0417164300", "iban", "nl91abna0417164300"),
        ("SSN 536-22-1234 on file", "us-ssn", "536-22-1234"),
        ("ssn 536 22 1234", "us-ssn", "536 22 1234"),
        ("Social Security Number: 536221234", "us-ssn-labelled", "536221234"),
        ("login from 86.121.97.248:443", "ipv4-address", "86.121.97.248"),
        ("client=203.1.113.9,", "ipv4-address", "203.1.113.9"),
        ("from 2a00:1450:4001:82a::200e", "ipv6-address", "2a00:1450:4001:82a::200e"),
        ("[2606:4700:4700::1111]:53", "ipv6-address", "2606:4700:4700::1111"),
        ("call +44 20 7946 0958 now", "phone-international", "+44 20 7946 0958"),
        ("Desk: +41 (0)96 471 07 95", "phone-international", "+41 (0)96 471 07 95"),
        ("(+1-212-555-0147 x22)", "phone-international", "+1-212-555-0147 x22"),
        ("ring (212) 555-0147 today", "phone-nanp", "(212) 555-0147"),
        ("ring 212.555.0147.", "phone-nanp", "212.555.0147"),
        ("ring 1-212-555-0147", "phone-nanp", "1-212-555-0147"),
        ("Phone: 0490 75 40 81", "phone-labelled", "0490 75 40 81"),
        ("Mobile:\n01.84.17.61.18", "phone-labelled", "01.84.17.61.18"),
        ("please call me on 07700 900 123?", "phone-labelled", "07700 900 123"),
        ("Fax: 9498777106", "phone-labelled", "9498777106"),
        ("my number is 06 12 34 56 78", "phone-labelled", "06 12 34 56 78"),
        ("give me a ring on 0171 1234567", "phone-labelled", "0171 1234567"),
        ("416 60 039 office", "phone-labelled-after", "416 60 039"),
        ("x\n082 490 1693-Fax", "phone-labelled-after", "082 490 1693"),
    ],
)
def test_each_type_fires_with_the_exact_span(
    pii: Scanner, text: str, rule: str, value: str
) -> None:
    assert (rule, value) in found(pii, text)


@pytest.mark.parametrize(
    "text",
    [
        # a bad Luhn sum; digits after "." are a decimal
        "card 4111 1111 1111 1112",
        "4111111111111112",
        "pi 3.4111111111111111",
        # bad IBAN checksum, wrong length for the country, unknown country
        "GB82 WEST 1234 5698 7654 33",
        "DE8937040044053201300",
        "ZZ89370400440532013000",
        # SSNs the SSA never issues, example numbers, longer dashed runs
        "000-12-3456",
        "666-12-3456",
        "912-34-5678",
        "536-00-1234",
        "536-22-0000",
        "078-05-1120",
        "111-22-3333",
        "12-536-22-1234",
        # invalid octets, leading zeros, private/loopback/broadcast, dotted runs, versions
        "256.1.1.1",
        "86.121.97.300",
        "086.121.97.248",
        "127.0.0.1 0.0.0.0 255.255.255.255 10.1.2.3 192.168.1.20 172.16.0.5",
        "224.0.0.251 169.254.1.1 192.0.2.44",
        "version 1.2.3.4",
        "v1.20.3.4",
        "1.2.3.4.5 and 10.20.30.40.50",
        'ObjectIdentifier("2.5.29.14"), Guile 3.0.5.130',
        "allow 86.121.97.0/24 and 86.121.97.248/32; net 86.121.97.0",
        # IPv6 that is not a person's: loopback, link-local, ULA, docs, paths, times
        "::1 fe80::1ff:fe23:4567:890a fd12:3456:789a::1 2001:db8::8a2e:370:7334",
        "std::vector<int> a::b Foo::bar d::e",
        "at 12:30:45 and 2026-11-27T17:43:17Z",
        "mac 00:1a:2b:3c:4d:5e",
        "route 2001:4860::",
        # emails that are not a person's
        "user@example.com bob@mail.example.org a@b.test git@github.com",
        "Co-Authored-By: Claude <noreply@anthropic.com>",
        "icon@2x.png logo@3x.webp @types/node pkg@1.2.3",
    ],
)
def test_invalid_values_do_not_fire(pii: Scanner, text: str) -> None:
    assert found(pii, text) == []


@pytest.mark.parametrize(
    "text",
    [
        # versions, timestamps, hex ids, line numbers, sizes: not phone numbers
        "requires python>=3.11.4, numpy 1.26.4, node v20.11.1",
        "released 2024-01-15 12:30:45.123456 +0000",
        "epoch 1700000000 ms 1700000000123",
        "commit 9f3c2a1b7e4d5f60a1b2c3d4e5f60718293a4b5c",
        "id 0x7fffffff deadbeef 123e4567-e89b-12d3-a456-426614174000",
        'File "app.py", line 1234, in main',
        "  1234\t    return 5678 + 9012",
        "sizes 1024 2048 4096 8192 16384",
        "@@ -1234,7 +1234,8 @@ def main():",
        "x = y +1 * 2",
        "phone = None  # the phone field, 3 digits: 123",
        "Date: 1978-04-13",
        "Phone: 2024-01-15",
        "Phone: 0000000",
        "order number 12345678, line 12345678, call 3 times",
        "sourcecode:: text\n\n    2021-03-15 12:05:57.105542",
        "np.array(['+1980-02-29 01:02:03'])",
        "roots array([-1.+1.41421356j, -1.-1.41421356j])",
    ],
)
def test_ordinary_numbers_are_not_phones(pii: Scanner, text: str) -> None:
    assert found(pii, text) == []


def test_luhn_valid_digits_after_plus_are_a_phone_not_a_card(pii: Scanner) -> None:
    assert found(pii, "tel +447700677662") == [("phone-international", "+447700677662")]


def test_two_phone_rules_may_report_one_number(pii: Scanner) -> None:
    """A labelled NANP number is found by both phone rules, with the same span."""
    assert values(pii, "Tel: 212-555-0147") == {"212-555-0147"}


def test_built_in_markers(markers: Scanner) -> None:
    text = "TLP:RED brief; TLP:AMBER+STRICT memo; TOP SECRET//SI//NOFORN; SECRET//NOFORN"
    assert found(markers, text) == [
        ("secret-banner", "SECRET//NOFORN"),
        ("tlp-amber-strict", "TLP:AMBER+STRICT"),
        ("tlp-red", "TLP:RED"),
        ("top-secret", "TOP SECRET//SI//NOFORN"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "SECRET_KEY = os.environ['SECRET']",
        "client_secret//comment",
        "tlp:red is lower case prose; TLP:GREEN; TLP:CLEAR; TLP:AMBER",
        "keep this top secret between us",
    ],
)
def test_markers_stay_quiet_in_ordinary_text(markers: Scanner, text: str) -> None:
    assert found(markers, text) == []


def test_operator_markers(tmp_path: Path) -> None:
    file = tmp_path / "r.yaml"
    file.write_text(
        "markers:\n"
        "  - CONFIDENTIAL\n"
        "  - text: project nightingale\n"
        "    ignore_case: true\n"
        "  - text: TLP:AMBER\n"
        "    id: tlp-amber\n"
    )
    rules = load_rules(file)
    scanner = Scanner(RuleSet(tuple(rules.by_detector("markers"))))
    text = "CONFIDENTIAL: Project Nightingale plan, TLP:AMBER. Not: NONCONFIDENTIAL, confidential"
    assert found(scanner, text) == [
        ("marker-confidential", "CONFIDENTIAL"),
        ("marker-project-nightingale", "Project Nightingale"),
        ("tlp-amber", "TLP:AMBER"),
    ]


def test_validators_directly() -> None:
    assert validators.luhn("4111111111111111")
    assert not validators.luhn("41111111111")  # too short
    assert validators.iban("GB82WEST12345698765432")
    assert not validators.iban("GB82WEST1234569876543")
    assert validators.ssn("536-22-1234")
    assert not validators.ssn("536-22-123")
    assert validators.ipv4("86.121.97.248")
    assert not validators.ipv4("8.8.4.40")  # two single-digit octets first: reads as a version
    assert not validators.ipv4("2.5.29.14")  # an X.509 object identifier
    assert not validators.ipv4("100.64.1.1")  # carrier-grade NAT
    assert validators.ipv6("6e40:4041:c617:e898:c11:40d2:c669:2eb4")
    assert not validators.ipv6("dead:beef::1")
    assert not validators.ipv6("::ffff:86.121.97.248")
    assert validators.phone("+1-212-555-0147 x22")
    assert not validators.phone("+44 123")
    assert not validators.phone("12.03.2024")
    assert validators.email("a.b@corp.io")
    assert not validators.email("a..b@corp.io")
    assert not validators.email("a@-corp.io")
    for name in ("luhn", "iban", "ssn", "ipv4", "ipv6", "phone", "email"):
        assert validators.VALIDATORS[name] is getattr(validators, name)
