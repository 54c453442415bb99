"""What every benchmark shares: timing, peak memory in a child process, the table and the JSON.

Speed ratios (ours vs a baseline) come from one process that times both in turn
(:func:`time_interleaved`), never from two runs made at different moments of a shared machine.

Peak memory is measured as the peak resident set size of a fresh child process that runs one
case, minus the same process's resident size just before the case starts (TensorFlow's import and
the inputs are thus not counted). The kernel's peak is reset at that point (Linux
``/proc/self/clear_refs``), so a spike before it, such as a NumPy temporary made while building
the inputs, cannot hide the case's own peak. Each case gets its own process so that one case's
peak cannot hide another's. "MB" here is 2**20 bytes.
"""

from __future__ import annotations

import importlib
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from tfsr.atomic_file import atomic_output

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def time_call(fn: Callable[[], object], *, warmup: int = 2, repeats: int = 5) -> dict:
    """Runs ``fn`` ``warmup`` times, then times ``repeats`` calls; returns ms statistics."""
    return time_interleaved({"fn": fn}, warmup=warmup, rounds=repeats)["fn"]


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    *,
    warmup: int = 2,
    rounds: int = 5,
    calls: dict[str, int] | None = None,
) -> dict[str, dict]:
    """Times several callables in this process, in turn, round after round.

    Each round calls every function (``calls[name]`` times, default once) before the next round
    starts, so a change in the machine's load during the run falls on all of them alike: the
    ratio of two medians compares like with like on a shared machine. Every function first runs
    ``warmup`` times (tracing, compilation).

    Returns:
        ``{name: {median_ms, min_ms, mean_ms, repeats}}``.
    """
    calls = calls or {}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(calls.get(name, 1)):
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) * 1e3)
    return {
        name: {
            "median_ms": statistics.median(t),
            "min_ms": min(t),
            "mean_ms": statistics.fmean(t),
            "repeats": len(t),
        }
        for name, t in times.items()
    }


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _reset_peak() -> None:
    """Sets the kernel's peak resident size (VmHWM) to the current one, where Linux allows."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # then the peak since the process started counts (an upper bound)


def _peak_rss_mb() -> float:
    """The peak resident size since the last :func:`_reset_peak` (VmHWM), in MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB -> MB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB -> MB


def _child(target: str, kwargs: dict, queue) -> None:
    try:
        module_name, func_name = target.split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        # The target calls `mark_baseline()` once its inputs exist; by default, now.
        mark_baseline()
        result = func(**kwargs) or {}
        peak = _peak_rss_mb()
        base = float(os.environ["_TFSR_BENCH_BASELINE_MB"])
        result.update(peak_rss_mb=peak, peak_mb=max(peak - base, 0.0), baseline_rss_mb=base)
        queue.put(("ok", result))
    except BaseException as e:  # noqa: BLE001 - the parent reports every failure
        queue.put(("error", f"{type(e).__name__}: {e}"))


def mark_baseline() -> None:
    """Called inside a case once its inputs are built: memory up to here is not counted."""
    _reset_peak()
    os.environ["_TFSR_BENCH_BASELINE_MB"] = str(_rss_mb())


def run_isolated(target: str, timeout_s: float = 1800, **kwargs) -> dict:
    """Runs ``module:function(**kwargs)`` in a fresh process; returns its dict plus peak memory.

    On failure (an exception, or the process killed, for example out of memory) the dict has an
    ``error`` key instead, so a benchmark can show where a baseline stops.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(target, kwargs, queue))
    proc.start()
    proc.join(timeout_s)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return {"error": f"timed out after {timeout_s:.0f} s"}
    if queue.empty():
        return {"error": f"process died (exit code {proc.exitcode}; out of memory?)"}
    status, payload = queue.get()
    return payload if status == "ok" else {"error": payload}


_ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")


def _cpu() -> str:
    """The CPU's model name and the vector extensions that change TF's CPU kernels (Linux
    ``/proc/cpuinfo``; ``platform.processor()`` elsewhere): these machines differ from one
    session to the next, and timings with them."""
    model, flags = platform.processor(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    isa = [flag for flag in _ISA_FLAGS if flag in flags]
    return f"{model} ({', '.join(isa)})" if isa else model


def machine_info() -> dict:
    try:
        import tensorflow as tf

        tf_version = tf.__version__
    except ImportError:  # the GPU machine of benchmarks.meta_upscale_gpu has no TensorFlow
        tf_version = None
    return {
        "python": sys.version.split()[0],
        "tensorflow": tf_version,
        "platform": platform.platform(),
        "cpu": _cpu(),
        "cpu_count": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def print_table(rows: Sequence[dict], columns: Sequence[str]) -> None:
    """Prints rows as an aligned text table; floats with 4 significant digits."""

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return "-" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))


def write_results(name: str, summary: dict, rows: Sequence[dict]) -> str:
    """Writes ``benchmarks/results/NAME.json`` atomically: summary keys at top level, plus rows."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    payload = {"benchmark": name, **summary, "machine": machine_info(), "rows": list(rows)}
    with atomic_output(path) as tmp, open(tmp, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=False)
    print(f"wrote {path}")
    return path


CHART_COLOURS = ("#1f77b4", "#ff7f0e", "#777777", "#2ca02c")


def line_chart_svg(
    series: dict[str, Sequence[tuple[float, float]]],
    title: str,
    *,
    y_range: tuple[float, float],
    y_ticks: Sequence[tuple[float, str]],
    x_ticks: Sequence[tuple[float, str]],
    x_label: str = "",
    y_label: str = "",
    log: bool = False,
    legend: str = "left",
    dashed: Sequence[str] = (),
) -> str:
    """A line chart as a plain SVG document (no plotting library on the benchmark machines).

    Args:
        series: name -> (x, y) points, drawn as one polyline each with its name in the legend.
        title: text above the chart.
        y_range: (low, high) of the y axis; the x axis spans the points' x values.
        y_ticks, x_ticks: (value, label) pairs; y ticks also get a grid line.
        x_label, y_label: axis titles.
        log: log10 scales on both axes (values must be positive).
        legend: "left" or "right": the legend's corner (top).
        dashed: names of the series drawn dashed.

    Raises:
        ValueError: no points to draw.
    """
    xs = [x for pts in series.values() for x, _ in pts]
    if not xs:
        raise ValueError(f"nothing to draw for {title!r}: no points")
    scale = math.log10 if log else float
    width, height, left, bottom, top, right = 640, 400, 70, 50, 30, 20
    x_lo, x_hi = scale(min(xs)), scale(max(xs))
    y_lo, y_hi = scale(y_range[0]), scale(y_range[1])

    def px(x, y):
        u = left + (scale(x) - x_lo) / max(x_hi - x_lo, 1e-9) * (width - left - right)
        v = top + (y_hi - scale(y)) / max(y_hi - y_lo, 1e-9) * (height - top - bottom)
        return u, v

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle">{title}</text>',
    ]
    for y, label in y_ticks:
        _, v = px(min(xs), y)
        parts.append(
            f'<line x1="{left}" y1="{v:.1f}" x2="{width - right}" y2="{v:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 8}" y="{v + 4:.1f}" text-anchor="end">{label}</text>'
        )
    for x, label in x_ticks:
        u, _ = px(x, y_range[0])
        parts.append(
            f'<text x="{u:.1f}" y="{height - bottom + 18}" text-anchor="middle">{label}</text>'
        )
    legend_x = left + 10 if legend == "left" else width - 150
    for i, (name, pts) in enumerate(series.items()):
        colour = CHART_COLOURS[i % len(CHART_COLOURS)]
        points = " ".join("{:.1f},{:.1f}".format(*px(x, y)) for x, y in pts)
        dash = ' stroke-dasharray="4 3"' if name in dashed else ""
        parts += [
            f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{points}"/>',
            f'<text x="{legend_x}" y="{top + 16 + 16 * i}" fill="{colour}">{name}</text>',
        ]
    if x_label:
        parts.append(
            f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">{x_label}</text>'
        )
    if y_label:
        parts.append(
            f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" '
            f'text-anchor="middle">{y_label}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
