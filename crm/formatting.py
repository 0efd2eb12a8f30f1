"""Display formatting shared by the staff console: money in a tenant's currency.

No locale machinery (Babel is not a dependency): the currencies the platform serves are
listed with their symbol, and amounts use the comma-grouped, point-decimal style both South
Africa's and the UK's English-language clubs print on their invoices.
"""

from __future__ import annotations

# symbol, whether a space follows it, decimal places (ISO 4217 minor unit)
CURRENCIES: dict[str, tuple[str, bool, int]] = {
    "ZAR": ("R", True, 2),
    "GBP": ("£", False, 2),
    "EUR": ("€", False, 2),
    "USD": ("$", False, 2),
}


def money_format(*, minor: int | None, currency: str) -> str:
    """``4785916, "ZAR"`` -> ``R 47,859.16``; ``-150, "GBP"`` -> ``-£1.50``; an unknown
    currency prints its code after the amount (``12.00 XYZ``)."""
    if minor is None:
        return "—"
    symbol, spaced, places = CURRENCIES.get(currency.upper(), ("", False, 2))
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(int(minor)), 10**places)
    amount = f"{units:,}" + (f".{cents:0{places}d}" if places else "")
    if not symbol:
        return f"{sign}{amount} {currency.upper()}".strip()
    return f"{sign}{symbol}{' ' if spaced else ''}{amount}"
