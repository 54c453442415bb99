"""Argument checks shared by the layers, ops and models: one wording for one mistake."""

from __future__ import annotations

import numbers


def int_at_least(name: str, value, minimum: int = 1) -> int:
    """``value`` as an ``int`` when it is an integer (not a bool) ``>= minimum``.

    Raises:
        ValueError: "NAME must be a positive integer, got VALUE" (``minimum`` 1), "NAME must be
            a non-negative integer, got VALUE" (``minimum`` 0) or "NAME must be an integer >=
            MINIMUM, got VALUE"; floats such as 2.0 included.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        wanted = {1: "a positive integer", 0: "a non-negative integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def shrink_factors(name: str, factors) -> tuple[float, ...]:
    """``factors`` as a tuple of floats when it is a list of distinct numbers in (0, 1).

    Raises:
        ValueError: "NAME must be a list of distinct numbers in (0, 1), got VALUE" (a string, a
            single number, a bool, NaN, 0, 1 or a repeated factor).
    """
    ok = not isinstance(factors, (str, bytes)) and isinstance(factors, (list, tuple))
    if ok:
        ok = all(
            not isinstance(f, bool) and isinstance(f, numbers.Real) and 0 < f < 1 for f in factors
        ) and len(set(factors)) == len(factors)
    if not ok:
        shown = list(factors) if isinstance(factors, tuple) else factors
        raise ValueError(f"{name} must be a list of distinct numbers in (0, 1), got {shown!r}")
    return tuple(float(f) for f in factors)
