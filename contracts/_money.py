"""Money: the currencies the stack accepts, and how many decimals their minor unit has.

Amounts are integers in the currency's minor unit everywhere (`price_cents` of a yen price is
yen, of a dinar price fils). Where an amount crosses to a provider, `decimal_amount` writes it
the way APIs that take decimal strings expect it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field, WithJsonSchema

# ISO 4217 minor-unit exponents of the currencies accepted; any other is refused (422).
CURRENCIES: dict[str, int] = {
    "AUD": 2,
    "BHD": 3,
    "BRL": 2,
    "CAD": 2,
    "CHF": 2,
    "CZK": 2,
    "DKK": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "INR": 2,
    "JOD": 3,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "MXN": 2,
    "NOK": 2,
    "NZD": 2,
    "OMR": 3,
    "PLN": 2,
    "SEK": 2,
    "SGD": 2,
    "USD": 2,
    "ZAR": 2,
}


# A positive amount in minor units, bounded far below PostgreSQL's bigint.
MAX_AMOUNT = 10**12
Amount = Annotated[int, Field(strict=True, gt=0, le=MAX_AMOUNT)]


def exponent(currency: str) -> int:
    """How many decimals the currency's minor unit has (KeyError if it is not accepted)."""
    return CURRENCIES[currency]


def decimal_amount(minor_units: int, currency: str) -> str:
    """An amount in minor units as the currency's decimal string: 1050 EUR is "10.50", 1050
    JPY is "1050", 1050 KWD is "1.050"."""
    places = exponent(currency)
    return str(Decimal(minor_units).scaleb(-places).quantize(Decimal(1).scaleb(-places)))


def _accepted(code: str) -> str:
    if code not in CURRENCIES:
        raise ValueError(f"{code!r} is not an accepted currency")
    return code


# A currency field: one of CURRENCIES, documented as that enumeration.
Currency = Annotated[
    str,
    AfterValidator(_accepted),
    WithJsonSchema({"type": "string", "enum": sorted(CURRENCIES)}),
]
