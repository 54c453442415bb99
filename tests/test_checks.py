import numpy as np
import pytest

from tfsr.checks import int_at_least, shrink_factors


@pytest.mark.parametrize(
    "value, minimum, wording",
    [
        (0, 1, "n must be a positive integer, got 0"),
        (-1, 0, "n must be a non-negative integer, got -1"),
        (2, 3, "n must be an integer >= 3, got 2"),
        (2.0, 1, "n must be a positive integer, got 2.0"),
        (True, 0, "n must be a non-negative integer, got True"),
    ],
)
def test_one_wording_per_bound(value, minimum, wording):
    with pytest.raises(ValueError, match=f"^{wording}$"):
        int_at_least("n", value, minimum)


def test_returns_a_plain_int():
    value = int_at_least("n", np.int64(0), 0)
    assert value == 0 and type(value) is int


def test_shrink_factors():
    assert shrink_factors("f", [0.9, 0.5]) == (0.9, 0.5)
    assert shrink_factors("f", ()) == ()
    for bad in ([1.0], [0], [-0.1], [True], ["0.5"], "0.5", 0.5, None, [0.5, 0.5], [float("nan")]):
        with pytest.raises(ValueError, match=r"f must be a list of distinct numbers in \(0, 1\)"):
            shrink_factors("f", bad)
