"""The benchmarks' shared peak-memory measurement."""

import numpy as np

from benchmarks.common import mark_baseline, run_isolated


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
