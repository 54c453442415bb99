"""The benchmarks' shared helpers: peak-memory measurement, charts."""

import re

import numpy as np
import pytest

from benchmarks.common import line_chart_svg, mark_baseline, run_isolated


def spike_then_small_case(spike_mb: int, case_mb: int) -> dict:
    """Run in a child: a temporary before the baseline (as building inputs makes), then the case."""
    spike = np.ones(spike_mb * 2**20 // 8)
    del spike
    mark_baseline()
    case = np.ones(case_mb * 2**20 // 8)
    return {"sum": float(case[:10].sum())}


def test_a_spike_before_the_baseline_is_not_the_cases_peak():
    result = run_isolated(
        "tests.test_benchmarks_common:spike_then_small_case", 120, spike_mb=400, case_mb=40
    )
    assert "error" not in result, result
    assert 35 < result["peak_mb"] < 100, result


def test_line_chart_places_points_on_linear_and_log_axes():
    def points(svg):
        return [
            [tuple(map(float, p.split(","))) for p in m.split()]
            for m in re.findall(r'points="([^"]*)"', svg)
        ]

    # Plot area: x 70..620, y 30..350 (640 x 400 canvas).
    linear = line_chart_svg(
        {"a": [(1, 0), (3, 10)], "b": [(2, 5)]},
        "t",
        y_range=(0, 10),
        y_ticks=[(0, "0"), (10, "10")],
        x_ticks=[(1, "one")],
        dashed=["b"],
    )
    assert points(linear) == [[(70.0, 350.0), (620.0, 30.0)], [(345.0, 190.0)]]
    assert linear.count("stroke-dasharray") == 1 and ">one</text>" in linear
    log = line_chart_svg(
        {"m": [(10, 1), (100, 10), (1000, 100)]},
        "t",
        y_range=(1, 100),
        y_ticks=[],
        x_ticks=[],
        log=True,
    )
    assert points(log) == [[(70.0, 350.0), (345.0, 190.0), (620.0, 30.0)]]
    with pytest.raises(ValueError, match="no points"):
        line_chart_svg({"a": []}, "t", y_range=(0, 1), y_ticks=[], x_ticks=[])
