"""Validators: the checks a finding must pass after its pattern matched.

Each takes the finding's text and says whether it is real (a card number
passes Luhn, an IBAN mod-97, …).  A rule names one by its key in `VALIDATORS`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text``."""
    if not text:
        return 0.0
    total = len(text)
    return -sum(n / total * math.log2(n / total) for n in Counter(text).values())


def luhn(text: str) -> bool:
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


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": luhn,
}
