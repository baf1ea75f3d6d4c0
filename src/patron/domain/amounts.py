"""Points are integers; money is Decimal. Nothing here ever becomes a float."""

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field, PlainSerializer

# Money arrives as JSON strings or numbers and leaves as a string, so no client float parser touches it.
Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=14, decimal_places=4, allow_inf_nan=False),
    PlainSerializer(lambda d: str(d), return_type=str, when_used="json"),
]
# A positive count of points; the upper bound keeps every sum inside a signed 64-bit column.
PointsAmount = Annotated[int, Field(gt=0, le=1_000_000_000, strict=True)]


class Rounding(StrEnum):
    FLOOR = "floor"
    HALF_UP = "half_up"
    CEILING = "ceiling"

    def to_points(self, value: Decimal) -> int:
        return int(value.to_integral_value(_DECIMAL_MODES[self]))

    @property
    def decimal_mode(self) -> str:
        """The decimal module's rounding mode: the engine looks it up once per program, not once per amount."""
        return _DECIMAL_MODES[self]


_DECIMAL_MODES = {Rounding.FLOOR: ROUND_FLOOR, Rounding.HALF_UP: ROUND_HALF_UP, Rounding.CEILING: ROUND_CEILING}


def minor_units(amount: Decimal) -> int:
    """An amount in hundredths (cents, fen), the integer form the expression language sees."""
    # Remembered per amount: prices and totals repeat, and the lookup costs a tenth of the arithmetic. Equal
    # amounts (1.5 and 1.50) share an entry, which is right: they have the same minor units.
    minor = _MINOR_UNITS.get(amount)
    if minor is None:
        # The rounding passed by position: parsing a keyword costs a third of the call.
        minor = int((amount * 100).to_integral_value(ROUND_HALF_UP))
        if len(_MINOR_UNITS) < 65_536:  # bounded: a few hundred kilobytes at most
            _MINOR_UNITS[amount] = minor
    return minor


_MINOR_UNITS: dict[Decimal, int] = {}
