"""Frame rates as exact rationals: ``29.97`` is ``30000/1001``, as FFmpeg and every NTSC tool mean it."""

from __future__ import annotations

from fractions import Fraction

NTSC_BASES = (24, 30, 48, 60, 120, 240)
"""Rates sold as ``n * 1000/1001``: 23.976, 29.97, 47.952, 59.94, 119.88, 239.76."""


def exact_rate(value: float | str | Fraction) -> Fraction:
    """``30``, ``29.97``, ``"30000/1001"``, ``"59.94"`` -> an exact ``Fraction``.

    A decimal within 0.005 of an NTSC rate (``n * 1000 / 1001``) is that rate; any other is
    the nearest fraction with a denominator of at most 1001."""
    if isinstance(value, Fraction):
        rate = value
    elif isinstance(value, str) and "/" in value:
        num, _, den = value.partition("/")
        try:
            rate = Fraction(int(num.strip()), int(den.strip()))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"{value!r} is not a frame rate; write e.g. 30, 29.97 or 30000/1001") from None
    else:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a frame rate; write e.g. 30, 29.97 or 30000/1001") from None
        for base in NTSC_BASES:
            ntsc = Fraction(base * 1000, 1001)
            if abs(number - float(ntsc)) < 0.005:
                return ntsc
        rate = Fraction(number).limit_denominator(1001)
    if rate <= 0 or rate > 1000:
        raise ValueError(f"frame rate {value!r} is out of range (0, 1000]")
    return rate
