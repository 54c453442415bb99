"""Training-step time and peak memory of SESR-M5 x2: collapsed vs expanded linear blocks.

Question: how much faster and leaner is one training step when every ``CollapsibleLinearBlock``
runs as one collapsed convolution (``collapsed_training=True``) instead of its expanded pair of
convolutions, on this machine's CPU?

Setup (the paper's recipe): SESR-M5 x2, batch 32 of 64x64 LR patches (128x128 HR targets),
Adam (amsgrad, lr 2e-4), L1 loss, one ``tf.function`` train step; XLA (``jit_compile``) is tried
for the collapsed form too. Each case runs in its own process (``benchmarks.common.run_isolated``);
peak memory is that process's peak resident memory above its level once model and data exist.

``speedup`` = expanded step time / collapsed step time (graph mode, medians). For comparison, the
authors' TF code measured on this machine: collapsed 106 ms vs expanded 1519 ms per step (14.3x),
peak 0.83 GB vs 2.17 GB (whole-process peaks, comparable to our ``peak_rss_mb``).

Run: ``python -m benchmarks.sesr_collapse`` (about two minutes on 2 cores).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks.common import (  # noqa: E402
    mark_baseline,
    print_table,
    run_isolated,
    time_call,
    write_results,
)

BATCH, LR_SIZE, SCALE = 32, 64, 2
REFERENCE = {
    "collapsed_step_ms": 106.0,
    "expanded_step_ms": 1519.0,
    "speedup": 14.3,
    "collapsed_peak_rss_mb": 830.0,
    "expanded_peak_rss_mb": 2170.0,
}


def train_step_case(collapsed_training: bool, jit_compile: bool, repeats: int) -> dict:
    """One case, run in a child process: times ``repeats`` training steps after 3 warm-up ones."""
    import tensorflow as tf
    import tf_keras as keras

    from tfsr.models.sesr import sesr_model

    tf.random.set_seed(0)
    model = sesr_model("m5", scale=SCALE, collapsed_training=collapsed_training)
    optimizer = keras.optimizers.Adam(learning_rate=2e-4, amsgrad=True)
    optimizer.build(model.trainable_variables)
    lr = tf.random.uniform((BATCH, LR_SIZE, LR_SIZE, 1))
    hr = tf.random.uniform((BATCH, SCALE * LR_SIZE, SCALE * LR_SIZE, 1))

    @tf.function(jit_compile=jit_compile)
    def step(lr, hr):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(model(lr, training=True) - hr))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    mark_baseline()
    stats = time_call(lambda: step(lr, hr).numpy(), warmup=3, repeats=repeats)
    return {
        "step_median_ms": stats["median_ms"],
        "step_min_ms": stats["min_ms"],
        "repeats": repeats,
    }


CASES = (
    # name, collapsed_training, jit_compile, repeats
    ("collapsed", True, False, 30),
    ("collapsed_xla", True, True, 30),
    ("expanded", False, False, 6),
)


def main() -> None:
    load_before = os.getloadavg()
    rows = []
    for name, collapsed_training, jit_compile, repeats in CASES:
        result = run_isolated(
            "benchmarks.sesr_collapse:train_step_case",
            collapsed_training=collapsed_training,
            jit_compile=jit_compile,
            repeats=repeats,
        )
        rows.append({"case": name, "jit_compile": jit_compile, **result})
        print(f"{name}: {result}", flush=True)
    load_after = os.getloadavg()
    by_name = {r["case"]: r for r in rows}
    collapsed, expanded = by_name["collapsed"], by_name["expanded"]
    summary = {
        "reference_authors_code": REFERENCE,
        "load_avg_before": load_before,
        "load_avg_after": load_after,
    }
    if "error" not in collapsed and "error" not in expanded:
        summary.update(
            speedup=expanded["step_median_ms"] / collapsed["step_median_ms"],
            collapsed_step_ms=collapsed["step_median_ms"],
            expanded_step_ms=expanded["step_median_ms"],
            collapsed_peak_mb=collapsed["peak_mb"],
            expanded_peak_mb=expanded["peak_mb"],
            memory_ratio=expanded["peak_mb"] / max(collapsed["peak_mb"], 1e-9),
            collapsed_peak_rss_mb=collapsed["peak_rss_mb"],
            expanded_peak_rss_mb=expanded["peak_rss_mb"],
        )
        for row in rows:
            if "error" not in row:
                row["speedup_vs_expanded"] = expanded["step_median_ms"] / row["step_median_ms"]
    print(f"\nSESR-M5 x{SCALE}, batch {BATCH} of {LR_SIZE}x{LR_SIZE}, Adam + L1, CPU")
    print_table(
        rows,
        [
            "case",
            "jit_compile",
            "step_median_ms",
            "step_min_ms",
            "peak_mb",
            "peak_rss_mb",
            "speedup_vs_expanded",
            "error",
        ],
    )
    print(f"load average before {load_before}, after {load_after}")
    write_results("sesr_collapse", summary, rows)


if __name__ == "__main__":
    main()
