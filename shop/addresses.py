"""What makes a postal address deliverable: a country we can name, and a postal code in that
country's format where we know it.

Countries are recognised by their ISO 3166 code (``EE``) or their name in English or Estonian
(``Estonia``, ``Eesti``), as Babel's CLDR data names them; the order keeps the country as the
customer wrote it.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from babel import Locale

# Postal code formats, by ISO country code: the shop's neighbours and main markets. A country
# not listed takes any code of 2 to 10 letters, digits, spaces and dashes.
POSTAL_CODES: dict[str, tuple[str, str]] = {
    "EE": (r"\d{5}", "five digits, e.g. 10117"),
    "LV": (r"(LV-?)?\d{4}", "four digits, e.g. LV-1050"),
    "LT": (r"(LT-?)?\d{5}", "five digits, e.g. LT-01103"),
    "FI": (r"\d{5}", "five digits, e.g. 00100"),
    "SE": (r"\d{3} ?\d{2}", "five digits, e.g. 114 55"),
    "NO": (r"\d{4}", "four digits, e.g. 0150"),
    "DK": (r"\d{4}", "four digits, e.g. 1050"),
    "DE": (r"\d{5}", "five digits, e.g. 10115"),
    "PL": (r"\d{2}-\d{3}", "two digits, a dash and three digits, e.g. 00-950"),
    "FR": (r"\d{5}", "five digits, e.g. 75001"),
    "NL": (r"\d{4} ?[A-Za-z]{2}", "four digits and two letters, e.g. 1012 AB"),
    "US": (r"\d{5}(-\d{4})?", "five digits (or five, a dash and four), e.g. 10001"),
    "GB": (r"[A-Za-z]{1,2}\d[A-Za-z\d]? ?\d[A-Za-z]{2}", "a UK postcode, e.g. SW1A 1AA"),
}
ANY_POSTAL_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 -]{0,8}[A-Za-z0-9]")


def _key(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().casefold()


@cache
def _countries() -> dict[str, str]:
    """{name or code, folded: ISO code} for every country (CLDR's two-letter territories)."""
    names: dict[str, str] = {}
    for language in ("en", "et"):
        for code, name in Locale(language).territories.items():
            if len(code) == 2 and code.isalpha():
                names[_key(name)] = code
                names[_key(code)] = code
    return names


def country_code(country: str) -> str | None:
    """The ISO code of ``country`` (a code or a name), None when it names no country."""
    return _countries().get(_key(country))


def postal_code_problem(*, country: str, postal_code: str) -> str | None:
    """What is wrong with ``postal_code`` for a country (ISO code), None when it looks right."""
    code = postal_code.strip()
    if country in POSTAL_CODES:
        pattern, example = POSTAL_CODES[country]
        if not re.fullmatch(pattern, code):
            return f"not a postal code of {Locale('en').territories[country]}: {example}"
        return None
    if not ANY_POSTAL_CODE.fullmatch(code):
        return "not a postal code: 2 to 10 letters, digits, spaces or dashes"
    return None
