"""LiteRT latency of SESR-M5 to 4K: float vs full int8, 1 and 2 threads, next to bicubic.

Question: how long does one frame take on this CPU when SESR-M5 upscales 1080p -> 4K (x2) and 540p
-> 4K (x4) in the LiteRT interpreter (``ai_edge_litert``, XNNPACK), float32 vs full int8, with 1 and
2 threads, with PReLU (the paper's float model) and with ReLU (its int8 choice); and how does that
compare with plain bicubic resizing of the same frame (``tf.image.resize(..., "bicubic")``, float32,
same thread count)?

Setup: SESR-M5 with seed-0 weights (latency does not depend on the weights), collapsed; the int8
file is made by ``tfsr.quantization`` (ranges calibrated on 2 batches of embedded-photo patches, no
QAT) at the fixed frame size, as ``export.py`` does. Each conversion runs in its own process
(``benchmarks.common.run_isolated``; its rows give the conversion time and the process's peak
memory); at each scale and thread count, bicubic and the four model files are timed in one process,
in turn (``benchmarks.common.time_interleaved``): the median over ``REPEATS`` frames after one
warm-up. ``speedup_vs_bicubic`` = bicubic time / model time at the same scale and thread count (> 1:
the model is faster; as ``speedup_vs_expanded`` in ``sesr_collapse``, while ``time_vs_*`` ratios
such as dysample's are the other way up).

Run: ``python -m benchmarks.tflite_latency`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks.common import (  # noqa: E402
    mark_baseline,
    print_table,
    run_isolated,
    time_interleaved,
    write_results,
)

CASES = {2: (1080, 1920), 4: (540, 960)}  # scale -> LR frame (H, W); output 2160 x 3840
THREADS = (1, 2)
# (activation, quantize): PReLU is the paper's float model, ReLU its int8 deployment choice.
VARIANTS = (("prelu", "none"), ("prelu", "int8"), ("relu", "none"), ("relu", "int8"))
REPEATS = 7  # 3 left 1-thread bicubic medians 35% above their minima


def convert_case(scale: int, quantize: str, activation: str, path: str) -> dict:
    """Child process: builds SESR-M5 at ``scale``, converts it at the frame size, writes ``path``."""
    import time

    import tensorflow as tf

    from tfsr.models.sesr import collapse_model, sesr_model
    from tfsr.quantization import convert, export, qat

    tf.random.set_seed(0)
    model = collapse_model(sesr_model("m5", scale=scale, activation=activation))
    if quantize == "int8":
        model = qat.quantize_model(model)
        qat.calibrate_ranges(model, export.calibration_dataset("embedded", scale).take(2))
    mark_baseline()
    start = time.perf_counter()
    content = convert.convert(
        model,
        quantize,
        input_hw=CASES[scale],
        io_dtype="int8" if quantize == "int8" else "float32",
    )
    seconds = time.perf_counter() - start
    convert.write_atomic(content, path)
    return {"conversion_s": seconds, "bytes": len(content)}


def _litert_frame(path: str, threads: int):
    """One frame through the LiteRT interpreter, as a callable; and the output size."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    rng = np.random.default_rng(0)
    if detail["dtype"] == np.float32:
        frame = rng.uniform(size=detail["shape"]).astype(np.float32)
    else:
        frame = rng.integers(-128, 128, size=detail["shape"]).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], frame)
    out = interpreter.get_output_details()[0]["shape"]
    return interpreter.invoke, f"{out[1]}x{out[2]}"


def _bicubic_frame(scale: int):
    """``tf.image.resize`` bicubic of one float32 frame, as a callable; and the output size."""
    import tensorflow as tf

    h, w = CASES[scale]
    frame = tf.random.uniform((1, h, w, 1))

    @tf.function
    def resize(x):
        return tf.image.resize(x, (scale * h, scale * w), method="bicubic")

    return (lambda: resize(frame).numpy()), f"{scale * h}x{scale * w}"


def timing_case(scale: int, threads: int, paths: dict, repeats: int) -> dict:
    """Child process: bicubic and every model file at one scale and thread count, timed in
    turn (``time_interleaved``); ``{name: {median_ms, min_ms, output}}``, bicubic as
    ``"bicubic"``."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    fns, outputs = {}, {}
    fns["bicubic"], outputs["bicubic"] = _bicubic_frame(scale)
    for name, path in paths.items():
        fns[name], outputs[name] = _litert_frame(path, threads)
    stats = time_interleaved(fns, warmup=1, rounds=repeats)
    return {
        name: {"median_ms": s["median_ms"], "min_ms": s["min_ms"], "output": outputs[name]}
        for name, s in stats.items()
    }


def main() -> None:
    conversions, rows = [], []
    with tempfile.TemporaryDirectory() as folder:
        for scale, (h, w) in CASES.items():
            paths = {}
            for activation, quantize in VARIANTS:
                path = os.path.join(folder, f"sesr_m5_x{scale}_{activation}_{quantize}.tflite")
                result = run_isolated(
                    "benchmarks.tflite_latency:convert_case",
                    scale=scale,
                    quantize=quantize,
                    activation=activation,
                    path=path,
                )
                name = f"{activation} {'float32' if quantize == 'none' else quantize}"
                conversions.append({"scale": scale, "input": f"{h}x{w}", "model": name, **result})
                paths[name] = path
            for threads in THREADS:
                present = {n: p for n, p in paths.items() if os.path.exists(p)}
                timing = run_isolated(
                    "benchmarks.tflite_latency:timing_case",
                    scale=scale,
                    threads=threads,
                    paths=present,
                    repeats=REPEATS,
                )
                base = timing.get("bicubic", {}).get("median_ms")
                for name in ["bicubic", *present]:
                    result = timing.get(name, {"error": timing.get("error")})
                    ms = result.get("median_ms")
                    rows.append(
                        {
                            "scale": scale,
                            "input": f"{h}x{w}",
                            "model": (
                                "bicubic (tf.image)" if name == "bicubic" else f"SESR-M5 {name}"
                            ),
                            "threads": threads,
                            **result,
                            "speedup_vs_bicubic": base / ms if base and ms else None,
                        }
                    )
    print("Conversion (one process each; peak_rss_mb: whole process)")
    print_table(
        conversions, ["scale", "input", "model", "bytes", "conversion_s", "peak_rss_mb", "error"]
    )
    print("\nLatency per frame to 2160x3840 (median ms)")
    print_table(
        rows,
        [
            "scale",
            "input",
            "model",
            "threads",
            "median_ms",
            "min_ms",
            "speedup_vs_bicubic",
            "error",
        ],
    )
    write_results(
        "tflite_latency",
        {"repeats": REPEATS, "conversions": conversions},
        rows,
    )


if __name__ == "__main__":
    main()
