"""Meta-SR meta-upscale on CPU: the compiled op vs the published im2col form with per-pixel weights.

Question: what do time and memory look like for Meta-SR's upscale step when the filters are a
phase table fed to ``Tfsr>MetaUpscale`` (ours), next to the approach of the published code: unfold
the k x k low-resolution windows, repeat them to the output size, expand the filters to one per
output pixel (H_out * W_out, k*k*C_in, C_out) and run one batched matmul?

Both compute the same function of the same inputs (LR features and a phase table); the baseline's
per-pixel filters are gathered from the phase table inside the tape, so that both backward passes
give the gradient with respect to x and the phase table (as a Pos2Weight network would need).

Grid: C_in 64, C_out 3 and 1, k 3, batch 1 and 16, scales 2, 2.5, 3.7, 4, outputs 135x240 up to
2160x3840 for ours; the baseline up to 540x960 (a row says where and why it stops: skipped when its
estimated memory exceeds what the machine has available). ``--quick``: scale 2.5, C_out 3, batch 1,
outputs 135x240, 540x960 (both methods) and 2160x3840 (ours).

Metrics (``benchmarks.common``): ``ms``, the median of a ``tf.function`` call after warm-up, both
methods of a configuration built in one process and timed in turn (``time_interleaved``), so
that ``speedup`` compares them under the same load (``load_1m``: the machine's 1-minute load
average after the timings); ``peak_mb``, the peak resident memory of a
fresh process above its level once the inputs exist (one method per process).

Summary keys (batch 1, C_in 64, C_out 3, scale 2.5, 540x960 output, forward + backward):
``speedup_540p`` = baseline time / ours, ``memory_ratio_540p`` = baseline peak / ours;
``ours_peak_mb_2160p``: ours at 2160x3840, forward + backward. Goals: >= 3x, >= 20x, and memory
growing only with the tensors every method must hold (inputs, outputs and their gradients:
``io_mb``).

Run: ``python -m benchmarks.meta_upscale --quick`` (a few minutes on 2 cores; the full grid
takes hours). The full grid keeps each finished configuration in
``benchmarks/results/meta_upscale.partial.jsonl``: run the same command again after an interruption
and it goes on from there (``--restart`` discards them); the JSON is written when the grid is done.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    line_chart_svg,
    mark_baseline,
    print_table,
    run_isolated,
    time_interleaved,
    write_results,
)
from tfsr.atomic_file import atomic_output  # noqa: E402

C_IN, K = 64, 3
OUTPUTS = ((135, 240), (270, 480), (540, 960), (1080, 1920), (2160, 3840))
SCALES = (2.0, 2.5, 3.7, 4.0)
C_OUTS = (3, 1)
BATCHES = (1, 16)
BASELINE_MAX_OUTPUT = (540, 960)
KEY_CASE = {"scale": 2.5, "c_out": 3, "batch": 1, "out": "540x960"}
METHODS = ("ours", "im2col_per_pixel")


def _input_size(out: int, scale: float) -> int:
    return math.ceil(out / scale)


def io_bytes(out_h, out_w, scale, batch, c_out) -> int:
    """Bytes of x, output, output gradient and x gradient (float32): what any method holds."""
    h, w = _input_size(out_h, scale), _input_size(out_w, scale)
    return 4 * batch * (2 * h * w * C_IN + 2 * out_h * out_w * c_out)


def estimated_bytes(method, out_h, out_w, scale, batch, c_out) -> int:
    """A generous estimate of a case's peak, to skip what the machine cannot hold."""
    pixels = out_h * out_w
    io = io_bytes(out_h, out_w, scale, batch, c_out)
    if method == "ours":
        return 2 * io
    filters = 4 * pixels * K * K * C_IN * c_out  # per-pixel filters (and their gradient)
    patches = 4 * batch * pixels * K * K * C_IN  # repeated windows (and copies, gradient)
    return io + 3 * filters + 4 * patches


def available_bytes() -> int:
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) * 1024


def _build(method, mode, out_h, out_w, scale, batch, c_out, seed=0):
    """One method's forward (or forward + backward) on fixed random inputs, as a callable."""
    import numpy as np
    import tensorflow as tf

    from tfsr.ops import custom_ops_available, meta_upscale, meta_upscale_phases

    h, w = _input_size(out_h, scale), _input_size(out_w, scale)
    rows = meta_upscale_phases(scale, h, out_h)
    cols = meta_upscale_phases(scale, w, out_w)
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.standard_normal((batch, h, w, C_IN), np.float32))
    table = tf.constant(
        rng.standard_normal((rows.period, cols.period, K, K, C_IN, c_out), np.float32) * 0.05
    )
    grad = tf.constant(rng.standard_normal((batch, out_h, out_w, c_out), np.float32))

    if method == "ours":
        if not custom_ops_available():
            raise RuntimeError("compiled op library not available: run `make ops`")

        def forward(x, table):
            return meta_upscale(x, table, scale, scale, output_size=(out_h, out_w))

    else:
        src_v = tf.constant(rows.source_index, tf.int32)
        src_h = tf.constant(cols.source_index, tf.int32)
        ph_v = tf.constant(np.arange(out_h) % rows.period, tf.int32)
        ph_h = tf.constant(np.arange(out_w) % cols.period, tf.int32)

        def forward(x, table):
            # Unfold k x k LR windows (zero padded), repeat them to the output size.
            patches = tf.image.extract_patches(
                x, [1, K, K, 1], [1, 1, 1, 1], [1, 1, 1, 1], padding="SAME"
            )  # (N, H, W, k*k*C_in)
            patches = tf.gather(tf.gather(patches, src_v, axis=1), src_h, axis=2)
            patches = tf.reshape(tf.transpose(patches, [1, 2, 0, 3]), [out_h * out_w, batch, -1])
            # One filter per output pixel: (H_out * W_out, k*k*C_in, C_out).
            filters = tf.gather(tf.gather(table, ph_v, axis=0), ph_h, axis=1)
            filters = tf.reshape(filters, [out_h * out_w, K * K * C_IN, c_out])
            out = tf.matmul(patches, filters)  # (H_out * W_out, N, C_out)
            return tf.transpose(tf.reshape(out, [out_h, out_w, batch, c_out]), [2, 0, 1, 3])

    if mode == "fwd":
        fn = tf.function(lambda: forward(x, table))
    else:

        @tf.function
        def fn():
            with tf.GradientTape() as tape:
                tape.watch([x, table])
                y = forward(x, table)
            grads = tape.gradient(y, [x, table], output_gradients=grad)
            return [tf.convert_to_tensor(g) for g in grads]  # gather gradients are sparse

    return lambda: [t.numpy() for t in tf.nest.flatten(fn())]


def timing_case(methods, mode, out_h, out_w, scale, batch, c_out) -> dict:
    """The methods at one configuration, timed in turn in this process (a child process)."""
    fns = {m: _build(m, mode, out_h, out_w, scale, batch, c_out) for m in methods}
    heavy = batch * out_h * out_w * K * K * C_IN * c_out > 5e9
    return time_interleaved(fns, warmup=1 if heavy else 2, rounds=3 if heavy else 5)


def memory_case(method, mode, out_h, out_w, scale, batch, c_out) -> dict:
    """Peak memory of one method (alone in a child process): two calls after the inputs exist."""
    fn = _build(method, mode, out_h, out_w, scale, batch, c_out)
    mark_baseline()
    fn()
    fn()
    return {}


def run_config(mode, out, scale, batch, c_out, methods) -> list[dict]:
    """Rows of the methods at one configuration: memory one process each, times in one."""
    out_h, out_w = out
    shape = dict(out_h=out_h, out_w=out_w, scale=scale, batch=batch, c_out=c_out)
    rows, feasible = [], []
    for method in methods:
        row = {
            "method": method,
            "mode": mode,
            "out": f"{out_h}x{out_w}",
            "scale": scale,
            "batch": batch,
            "c_out": c_out,
            "io_mb": io_bytes(out_h, out_w, scale, batch, c_out) / 2**20,
        }
        need, have = estimated_bytes(method, out_h, out_w, scale, batch, c_out), available_bytes()
        if need > 0.8 * have:
            row["error"] = f"skipped: needs ~{need / 2**30:.1f} GB, {have / 2**30:.1f} GB available"
        else:
            memory = run_isolated(
                "benchmarks.meta_upscale:memory_case", method=method, mode=mode, **shape
            )
            row.update({k: memory[k] for k in ("peak_mb", "error") if k in memory})
            if "error" not in memory:
                feasible.append(method)
        rows.append(row)
    timing = (
        run_isolated("benchmarks.meta_upscale:timing_case", methods=feasible, mode=mode, **shape)
        if feasible
        else {}
    )
    load = os.getloadavg()[0]  # the machine is shared: a high load inflates ms, less the ratio
    for row in rows:
        row["load_1m"] = load
        if "error" in timing and row["method"] in feasible:
            row["error"] = timing["error"]
        elif row["method"] in timing:
            row.update(
                ms=timing[row["method"]]["median_ms"], min_ms=timing[row["method"]]["min_ms"]
            )
        print(
            f"{row['method']:17s} {mode:7s} {row['out']:>9s} x{scale:<4g} N{batch:<2d} Co{c_out}: "
            + (
                row["error"]
                if "error" in row
                else f"{row['ms']:.1f} ms, peak {row['peak_mb']:.0f} MB"
            ),
            flush=True,
        )
    return rows


def grid(quick: bool):
    """``(out, scale, batch, c_out, methods)`` configurations; the baseline up to 540x960."""
    configs = (
        [((135, 240), 2.5, 1, 3), ((540, 960), 2.5, 1, 3), ((2160, 3840), 2.5, 1, 3)]
        if quick
        else itertools.product(OUTPUTS, SCALES, BATCHES, C_OUTS)
    )
    for out, scale, batch, c_out in configs:
        baseline = out[0] <= BASELINE_MAX_OUTPUT[0]
        yield out, scale, batch, c_out, METHODS if baseline else ("ours",)


def _find(rows, method, mode, **where):
    for r in rows:
        if r["method"] == method and r["mode"] == mode and all(r[k] == v for k, v in where.items()):
            return r
    return None


PARTIAL = os.path.join(RESULTS_DIR, "meta_upscale.partial.jsonl")
SVG_PATH = os.path.normpath(
    os.path.join(RESULTS_DIR, "..", "..", "docs", "meta_upscale_memory.svg")
)
CURVE = {"mode": "fwd_bwd", "scale": 2.5, "batch": 1, "c_out": 3}  # the memory curve's case


# The curve's floor: what forward + backward must hand back, the output and x's gradient (half of
# io_mb; x and the output gradient exist before the baseline of the peak).
FLOOR = "output + x gradient"


def memory_curve(rows) -> dict[str, list[tuple[int, float]]]:
    """Peak MB against output pixels for the CURVE case: ours, the baseline, and ``FLOOR``, each
    as a list of (pixels, MB) in output order."""
    series = {"ours": [], "im2col per-pixel (published)": [], FLOOR: []}
    for r in rows:
        if any(r[k] != v for k, v in CURVE.items()) or not r.get("peak_mb", 0) > 0:
            continue
        h, w = (int(v) for v in r["out"].split("x"))
        name = "ours" if r["method"] == "ours" else "im2col per-pixel (published)"
        series[name].append((h * w, r["peak_mb"]))
        if r["method"] == "ours":
            series[FLOOR].append((h * w, r["io_mb"] / 2))
    return {k: sorted(v) for k, v in series.items() if v}


def memory_svg(series: dict[str, list[tuple[int, float]]], title: str) -> str:
    """A log-log line chart (plain SVG) of the memory curve; the floor dashed. ValueError
    when there is nothing to draw."""
    ys = [y for pts in series.values() for _, y in pts]
    if not ys:
        raise ValueError(f"nothing to draw for {title!r}: no rows of the curve's case")
    decades = range(math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys))) + 1)
    labels = {h * w: f"{h}x{w}" for h, w in OUTPUTS}
    xs = sorted({x for pts in series.values() for x, _ in pts})
    return line_chart_svg(
        series,
        title,
        y_range=(10.0 ** decades[0], 10.0 ** decades[-1]),
        y_ticks=[(10.0**e, f"{10.0**e:g} MB") for e in decades],
        x_ticks=[(x, labels.get(x, str(x))) for x in xs],
        x_label="output size",
        log=True,
        dashed=[FLOOR],
    )


def _config_key(mode, out, scale, batch, c_out) -> str:
    return f"{mode} {out[0]}x{out[1]} x{scale:g} N{batch} Co{c_out}"


def _load_partial() -> dict[str, list[dict]]:
    """Rows of the configurations a full-grid run finished before it was interrupted."""
    done = {}
    if os.path.exists(PARTIAL):
        with open(PARTIAL) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by the interruption
                    continue
                if not any(_fits_now(row) for row in entry["rows"]):
                    done[entry["config"]] = entry["rows"]
    return done


def _fits_now(row: dict) -> bool:
    """A row skipped for want of memory that would fit now (memory depends on the moment)."""
    if not row.get("error", "").startswith("skipped:"):
        return False
    out_h, out_w = (int(v) for v in row["out"].split("x"))
    shape = (out_h, out_w, row["scale"], row["batch"], row["c_out"])
    return estimated_bytes(row["method"], *shape) <= 0.8 * available_bytes()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small grid (a few minutes)")
    parser.add_argument(
        "--restart", action="store_true", help="full grid: discard the configurations kept so far"
    )
    parser.add_argument(
        "--plot",
        action="store_true",
        help=f"only redraw {os.path.relpath(SVG_PATH)} from the stored results",
    )
    args = parser.parse_args(argv)
    if args.plot:
        with open(os.path.join(RESULTS_DIR, "meta_upscale.json")) as f:
            write_memory_svg(json.load(f)["rows"])
        return
    if args.restart and not args.quick and os.path.exists(PARTIAL):
        os.remove(PARTIAL)
    done = {} if args.quick else _load_partial()
    if done:
        print(f"going on from {PARTIAL}: {len(done)} configurations done", flush=True)
    configs = [(mode, config) for config in grid(args.quick) for mode in ("fwd", "fwd_bwd")]
    rows = []
    for i, (mode, (out, scale, batch, c_out, methods)) in enumerate(configs):
        key = _config_key(mode, out, scale, batch, c_out)
        if key in done:
            rows.extend(done[key])
            continue
        print(f"[{i + 1}/{len(configs)}] {key}", flush=True)
        new_rows = run_config(mode, out, scale, batch, c_out, methods)
        rows.extend(new_rows)
        if not args.quick:
            os.makedirs(RESULTS_DIR, exist_ok=True)
            with open(PARTIAL, "a") as f:
                f.write(json.dumps({"config": key, "rows": new_rows}) + "\n")
    for r in rows:
        base = _find(
            rows,
            "im2col_per_pixel",
            r["mode"],
            out=r["out"],
            scale=r["scale"],
            batch=r["batch"],
            c_out=r["c_out"],
        )
        if r["method"] == "ours" and base and "ms" in base and "ms" in r:
            r["speedup"] = base["ms"] / r["ms"]
            r["memory_ratio"] = base["peak_mb"] / max(r["peak_mb"], 1e-9)
    print()
    print_table(
        rows,
        [
            "method",
            "mode",
            "out",
            "scale",
            "batch",
            "c_out",
            "ms",
            "peak_mb",
            "io_mb",
            "speedup",
            "memory_ratio",
            "error",
        ],
    )
    key = _find(rows, "ours", "fwd_bwd", **KEY_CASE) or {}
    big = _find(rows, "ours", "fwd_bwd", out="2160x3840", scale=2.5, batch=1, c_out=3) or {}
    summary = {
        "quick": args.quick,
        "speedup_540p": key.get("speedup"),
        "memory_ratio_540p": key.get("memory_ratio"),
        "ours_peak_mb_2160p": big.get("peak_mb"),
        "ours_io_mb_2160p": big.get("io_mb"),
        "key_case": {**KEY_CASE, "c_in": C_IN, "k": K, "mode": "fwd_bwd"},
        "goals": {"speedup_540p": 3.0, "memory_ratio_540p": 20.0},
    }
    print({k: summary[k] for k in ("speedup_540p", "memory_ratio_540p", "ours_peak_mb_2160p")})
    write_results("meta_upscale", summary, rows)
    if not args.quick:
        write_memory_svg(rows)
        if os.path.exists(PARTIAL):
            os.remove(PARTIAL)


def write_memory_svg(rows) -> None:
    case = ", ".join(f"{k} {v}" for k, v in CURVE.items())
    title = f"Meta-upscale peak memory on CPU ({case}, C_in {C_IN}, k {K})"
    svg = memory_svg(memory_curve(rows), title)  # before the file is opened: no empty file
    with atomic_output(SVG_PATH) as tmp, open(tmp, "w") as f:
        f.write(svg)
    print(f"wrote {SVG_PATH}")


if __name__ == "__main__":
    main()
