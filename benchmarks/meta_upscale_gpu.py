"""Meta-SR meta-upscale CUDA kernels on a GPU: ours vs PyTorch im2col + bmm and a naive kernel.

Question: how fast are the op's CUDA kernels (the same source the TF op library compiles) next to
the published approach on a GPU, im2col with per-pixel filters and a batched matmul, and next to
a one-thread-per-output-pixel kernel; what fraction of the GPU's FP32 peak do they reach?

For the GPU machine, which has nvcc, PyTorch and NumPy but no TensorFlow: it builds the kernels
with nvcc through ``custom_ops/harness`` (no TF), runs the harness's ``check`` against the NumPy
float64 reference first (no timings from kernels that fail it), then times
``custom_ops.harness.meta_upscale_harness.time_cases`` on the grid below.

Grid: C_in 64, k 3, scales 2, 2.5, 3.7, 4, outputs 135x240 to 2160x3840; float32 with C_out 3
and 1 at batch 1, C_out 3 at batch 16 up to 540x960; bfloat16, C_out 3, batch 1 at 1080x1920.
``--quick``: float32, C_out 3, batch 1 only. Times are medians of CUDA-event timings; torch runs
out of memory at the largest sizes (a row says so).

Summary keys: ``min_torch_speedup_fwd`` (over every row with a baseline; goal >= 5),
``speedup_1080p_by_scale`` and ``fwd_peak_fraction_1080p`` (float32, C_out 3, batch 1), ``gpu``.

Run on the GPU machine: ``python -m benchmarks.meta_upscale_gpu [--peak_tflops 66.9]`` (the
default peak is the H100 SXM's FP32 rate without tensor cores; a few minutes).
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.common import print_table, write_results
from custom_ops.harness.meta_upscale_harness import OUTPUT_SIZES as OUTPUTS

SCALES = (2.0, 2.5, 3.7, 4.0)
C_IN, K = 64, 3
H100_FP32_TFLOPS = 66.9
# (dtype, C_out, batch, outputs): the runs of the full grid.
RUNS = (
    ("float32", 3, 1, OUTPUTS),
    ("float32", 1, 1, OUTPUTS),
    ("float32", 3, 16, OUTPUTS[:2]),
    ("bfloat16", 3, 1, ((1080, 1920),)),
)
COLUMNS = (
    "dtype",
    "batch",
    "c_out",
    "out",
    "scale",
    "P",
    "ours_fwd_ms",
    "tiled_fwd_ms",
    "phase_fwd_ms",
    "naive_fwd_ms",
    "torch_fwd_ms",
    "torch_speedup",
    "ours_bwd_ms",
    "grad_x_ms",
    "grad_w_ms",
    "fwd_tflops",
    "fwd_peak_fraction",
)


def summarize(rows: list[dict]) -> dict:
    """The summary keys of the module docstring, from rows of any of the runs."""
    key = [
        r
        for r in rows
        if r["dtype"] == "float32"
        and r["c_out"] == 3
        and r["batch"] == 1
        and r["out"] == "1080x1920"
    ]
    speedups = [r["torch_speedup"] for r in rows if isinstance(r.get("torch_speedup"), float)]
    return {
        "min_torch_speedup_fwd": min(speedups) if speedups else None,
        "speedup_1080p_by_scale": {str(r["scale"]): r.get("torch_speedup") for r in key},
        "fwd_peak_fraction_1080p": {str(r["scale"]): r.get("fwd_peak_fraction") for r in key},
        "goals": {"min_torch_speedup_fwd": 5.0},
    }


def main(argv=None) -> int:
    from custom_ops.harness import meta_upscale_harness as harness

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="float32, C_out 3, batch 1 only")
    parser.add_argument("--peak_tflops", type=float, default=H100_FP32_TFLOPS)
    parser.add_argument("--arch", default="native", help="nvcc -arch")
    args = parser.parse_args(argv)

    lib = harness.load(harness.build(args.arch))
    backend = harness.TorchBackend()
    if not harness.check(lib, backend):
        print("the kernels fail the harness check: no timings")
        return 1
    rows = []
    for dtype, c_out, batch, outputs in RUNS[:1] if args.quick else RUNS:
        peak = args.peak_tflops if dtype == "float32" else None
        settings = {"dtype": dtype, "batch": batch, "c_out": c_out}
        for row in harness.time_cases(
            lib, outputs, SCALES, batch, C_IN, c_out, K, dtype, True, peak
        ):
            rows.append({**settings, **row})
    print()
    print_table(rows, COLUMNS)
    summary = {
        "gpu": backend.torch.cuda.get_device_name(),
        "quick": args.quick,
        "peak_tflops": args.peak_tflops,
        "check": "passed: every case and dtype of the harness check",
        **summarize(rows),
    }
    print({k: summary[k] for k in ("gpu", "min_torch_speedup_fwd", "speedup_1080p_by_scale")})
    write_results("meta_upscale_gpu", summary, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
