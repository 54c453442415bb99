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
