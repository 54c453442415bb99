"""DySample's forward time, training-step time, peak memory and TFLite latency vs two baselines.

Question: what does learned point sampling cost next to the upsamplers it replaces, on this
machine's CPU? Baselines at the same shape: ``tf.image.resize(..., "bilinear")`` (Keras
``UpSampling2D``) and a learned sub-pixel upsampler, a 3x3 conv ``C -> 4C`` + pixel shuffle.
DySample in its four variants: "lp" / "pl" style, static / dynamic scope (DySample, DySample+,
DySample-S, DySample-S+), groups 4. For reference, the sampling op alone
(``offset_sample`` with zero offsets) with and without XLA.

Shapes (batch 1, x2): the paper's 256 channels at 120x120, and super-resolution feature maps of
16, 32 and 64 channels at 270x480 (a 540x960 output).

Metrics:
- ``forward_ms``: median of a ``tf.function`` call. All methods of a shape run in one process,
  interleaved call by call, so that load from other jobs on the machine hits them alike;
  ``time_vs_bilinear`` = forward_ms / bilinear's forward_ms from the same process.
- ``train_ms``: forward + backward (gradients for the input and the weights).
- ``peak_mb``: each method in its own process (``benchmarks.common.run_isolated``): peak resident
  memory above the level once the inputs exist, over the first four calls, so tracing and XLA
  compilation are included (after a warm-up call the allocator reuses everything: 0 MB).
- TFLite: the Keras model converted to float32 and to full int8, run by LiteRT's interpreter
  (XNNPACK, 2 threads); median ``invoke`` time and the model size.

Summary key ``time_vs_bilinear``: the slowest DySample variant's forward time / bilinear's at the
paper's shape (medians; ``time_vs_bilinear_from_min`` the same from the fastest calls, which other
jobs on a shared machine disturb less); goal <= 2 (the authors' PyTorch module measured 1.2x to 1.5x PyTorch's bilinear on
this machine's CPU; the paper's GPU figures: bilinear 1.5 ms, DySample 6.2 to 7.6 ms).

Run: ``python -m benchmarks.dysample`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks.common import (  # noqa: E402
    mark_baseline,
    print_table,
    run_isolated,
    time_interleaved,
    write_results,
)

SCALE = 2
PAPER_SHAPE = (1, 120, 120, 256)
SR_SHAPES = ((1, 270, 480, 16), (1, 270, 480, 32), (1, 270, 480, 64))
VARIANTS = {  # name: (style, dynamic_scope)
    "dysample": ("lp", False),
    "dysample+": ("lp", True),
    "dysample-s": ("pl", False),
    "dysample-s+": ("pl", True),
}
BASELINES = ("bilinear", "conv3x3_pixelshuffle")
SAMPLING_ONLY = ("sampling_xla", "sampling_plain")
TFLITE_SHAPES = (PAPER_SHAPE, (1, 270, 480, 32))
REFERENCE = {
    "authors_pytorch_vs_pytorch_bilinear_this_cpu": [1.2, 1.5],
    "paper_gpu_ms": {"bilinear": 1.5, "dysample_series": [6.2, 7.6], "carafe": 12.6},
}


def build_model(method: str, shape):
    """A Keras model (fixed input shape) for a method; None for the sampling-only ones."""
    import tf_keras as keras

    from tfsr.layers import DySample, PixelShuffle

    inputs = keras.Input(batch_size=shape[0], shape=shape[1:])
    if method == "bilinear":
        outputs = keras.layers.UpSampling2D(SCALE, interpolation="bilinear")(inputs)
    elif method == "conv3x3_pixelshuffle":
        conv = keras.layers.Conv2D(shape[-1] * SCALE * SCALE, 3, padding="same")
        outputs = PixelShuffle(SCALE)(conv(inputs))
    elif method in VARIANTS:
        style, dynamic_scope = VARIANTS[method]
        outputs = DySample(SCALE, style, groups=4, dynamic_scope=dynamic_scope)(inputs)
    else:
        return None
    return keras.Model(inputs, outputs)


def forward_fn(method: str, shape):
    """A ``tf.function`` running one forward pass on its input."""
    import tensorflow as tf

    from tfsr.ops.grid_sample import offset_sample

    if method in SAMPLING_ONLY:
        n, h, w, _ = shape
        offsets = tf.zeros((n, SCALE * h, SCALE * w, 4, 2))
        jit = method == "sampling_xla"
        return tf.function(lambda x: offset_sample(x, offsets, SCALE, jit_compile=jit))
    model = build_model(method, shape)
    return tf.function(lambda x: model(x, training=False))


def train_fn(method: str, shape):
    """A ``tf.function`` computing the gradients of a loss for the input and the weights."""
    import tensorflow as tf

    model = build_model(method, shape)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_mean(tf.square(model(x, training=True)))
        return tape.gradient(loss, [x] + model.trainable_variables)

    return step


def timing_case(shape, methods, train_methods, repeats: int) -> dict:
    """Times every method at one shape in this process, interleaved; returns medians in ms.

    Training steps get a quarter of the forward ``repeats`` (at least 3): they are slower.
    """
    import tensorflow as tf

    tf.random.set_seed(0)
    x = tf.random.uniform(shape)
    forward = {m: forward_fn(m, shape) for m in methods}
    train = {m: train_fn(m, shape) for m in train_methods}
    results = {}
    for kind, fns, rounds in (
        ("forward", forward, repeats),
        ("train", train, max(3, repeats // 4)),
    ):
        calls = {m: (lambda fn=fn: fn(x)) for m, fn in fns.items()}
        for m, stats in time_interleaved(calls, warmup=3, rounds=rounds).items():
            results[f"{kind}|{m}"] = {"median_ms": stats["median_ms"], "min_ms": stats["min_ms"]}
    return results


def memory_case(shape, method: str) -> dict:
    """Peak memory of one method's forward pass (``run_isolated`` adds peak_mb)."""
    import tensorflow as tf

    x = tf.random.uniform(shape)
    fn = forward_fn(method, shape)
    mark_baseline()
    for _ in range(4):
        fn(x)
    return {}


def tflite_case(shape, methods, repeats: int) -> dict:
    """Converts each method to float32 and full int8 TFLite; sizes and median invoke times."""
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(0)
    x = rng.uniform(size=shape).astype(np.float32)
    results = {}
    for method in methods:
        model = build_model(method, shape)
        for precision in ("float32", "int8"):
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
            if precision == "int8":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.representative_dataset = lambda: (
                    [rng.uniform(size=shape).astype(np.float32)] for _ in range(2)
                )
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
            else:
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            content = converter.convert()
            it = Interpreter(model_content=content, num_threads=2)
            it.allocate_tensors()
            details = it.get_input_details()[0]
            feed = x
            if details["dtype"] == np.int8:
                scale, zero = details["quantization"]
                feed = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
            it.set_tensor(details["index"], feed)
            for _ in range(2):
                it.invoke()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                it.invoke()
                times.append((time.perf_counter() - start) * 1e3)
            results[f"{method}|{precision}"] = {
                "median_ms": statistics.median(times),
                "size_kb": len(content) / 1024,
            }
    return results


def shape_name(shape) -> str:
    return f"C{shape[3]} {shape[1]}x{shape[2]}"


def main() -> None:
    load_before = os.getloadavg()
    methods = [*BASELINES, *VARIANTS]
    rows, tflite_rows, failures = [], [], []
    summary = {"reference": REFERENCE, "scale": SCALE}
    for shape in (PAPER_SHAPE, *SR_SHAPES):
        is_paper = shape == PAPER_SHAPE
        timed = methods + list(SAMPLING_ONLY) if is_paper else methods
        train_methods = methods if shape in (PAPER_SHAPE, (1, 270, 480, 32)) else []
        timing = run_isolated(
            "benchmarks.dysample:timing_case",
            shape=shape,
            methods=timed,
            train_methods=train_methods,
            repeats=30 if is_paper else 12,
        )
        if "error" in timing:
            print(f"{shape_name(shape)}: timing failed: {timing['error']}", flush=True)
            failures.append({"case": f"timing {shape_name(shape)}", "error": timing["error"]})
            continue
        bilinear_ms = timing["forward|bilinear"]["median_ms"]
        for method in timed:
            fwd = timing[f"forward|{method}"]
            row = {
                "shape": shape_name(shape),
                "method": method,
                "forward_ms": fwd["median_ms"],
                "forward_min_ms": fwd["min_ms"],
                "time_vs_bilinear": fwd["median_ms"] / bilinear_ms,
            }
            if f"train|{method}" in timing:
                row["train_ms"] = timing[f"train|{method}"]["median_ms"]
            if method not in SAMPLING_ONLY:
                memory = run_isolated("benchmarks.dysample:memory_case", shape=shape, method=method)
                row["peak_mb"] = memory.get("peak_mb")
                if "error" in memory:
                    row["error"] = memory["error"]
            rows.append(row)
            print(row, flush=True)
        if is_paper:
            paper = {r["method"]: r for r in rows if r["shape"] == shape_name(shape)}
            ratios = {m: paper[m]["time_vs_bilinear"] for m in VARIANTS}
            # The same from the fastest calls: less sensitive to other jobs on a shared machine.
            bilinear_min = timing["forward|bilinear"]["min_ms"]
            min_ratios = {m: paper[m]["forward_min_ms"] / bilinear_min for m in VARIANTS}
            summary.update(
                time_vs_bilinear=max(ratios.values()),
                time_vs_bilinear_per_variant=ratios,
                time_vs_bilinear_from_min=max(min_ratios.values()),
                time_vs_bilinear_from_min_per_variant=min_ratios,
                goal_time_vs_bilinear=2.0,
                bilinear_ms_paper_shape=bilinear_ms,
            )
    for shape in TFLITE_SHAPES:
        result = run_isolated(
            "benchmarks.dysample:tflite_case", shape=shape, methods=methods, repeats=10
        )
        if "error" in result:
            print(f"TFLite {shape_name(shape)}: failed: {result['error']}", flush=True)
            failures.append({"case": f"TFLite {shape_name(shape)}", "error": result["error"]})
            continue
        for method in methods:
            f32, i8 = result[f"{method}|float32"], result[f"{method}|int8"]
            tflite_rows.append(
                {
                    "shape": shape_name(shape),
                    "method": method,
                    "float32_ms": f32["median_ms"],
                    "int8_ms": i8["median_ms"],
                    "float32_kb": f32["size_kb"],
                    "int8_kb": i8["size_kb"],
                }
            )
            print(tflite_rows[-1], flush=True)
    load_after = os.getloadavg()
    summary.update(
        load_avg_before=load_before, load_avg_after=load_after, tflite=tflite_rows, failed=failures
    )

    print(f"\nx{SCALE} upsampling, batch 1, CPU (tf.function; DySample sampling under XLA)")
    print_table(
        rows,
        [
            "shape",
            "method",
            "forward_ms",
            "forward_min_ms",
            "time_vs_bilinear",
            "train_ms",
            "peak_mb",
            "error",
        ],
    )
    print("\nTFLite (LiteRT interpreter, XNNPACK, 2 threads)")
    print_table(tflite_rows, ["shape", "method", "float32_ms", "int8_ms", "float32_kb", "int8_kb"])
    if "time_vs_bilinear" in summary:
        print(
            f"\ntime_vs_bilinear (slowest variant, {shape_name(PAPER_SHAPE)}): "
            f"{summary['time_vs_bilinear']:.2f} from medians, "
            f"{summary['time_vs_bilinear_from_min']:.2f} from minima (goal <= 2)"
        )
    for failure in failures:
        print(f"FAILED {failure['case']}: {failure['error']}")
    print(f"load average before {load_before}, after {load_after} (shared machine: noisy)")
    write_results("dysample", summary, rows)


if __name__ == "__main__":
    main()
