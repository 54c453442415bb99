"""Training-step time and peak memory of SESR-M5 x2: collapsed vs expanded linear blocks.

Question: how much faster and leaner is one training step when every ``CollapsibleLinearBlock``
runs as one collapsed convolution (``collapsed_training=True``) instead of its expanded pair of
convolutions, on this machine's CPU?

Setup (the paper's recipe): SESR-M5 x2, batch 32 of 64x64 LR patches (128x128 HR targets),
Adam (amsgrad, lr 2e-4), L1 loss, one ``tf.function`` train step; XLA (``jit_compile``) is tried
for the collapsed form too. Times: all three cases built in one process and timed in turn, round
after round (``benchmarks.common.time_interleaved``), so that their ratio is taken under the same
load. Peak memory: each case in its own process (``benchmarks.common.run_isolated``), that
process's peak resident memory above its level once model and data exist.

``speedup`` = expanded step time / collapsed step time (graph mode, medians, same process). For comparison, the
authors' TF code measured on this machine: collapsed 106 ms vs expanded 1519 ms per step (14.3x),
peak 0.83 GB vs 2.17 GB (whole-process peaks, comparable to our ``peak_rss_mb``).

Run: ``python -m benchmarks.sesr_collapse`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks.common import (  # noqa: E402
    mark_baseline,
    print_table,
    run_isolated,
    time_interleaved,
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


def _train_step(collapsed_training: bool, jit_compile: bool):
    """A compiled SESR-M5 training step on fixed random data, as a no-argument callable."""
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

    return lambda: step(lr, hr).numpy()


def timing_case(rounds: int) -> dict:
    """Every case's step, timed in turn in this process (run in a child process)."""
    fns = {name: _train_step(collapsed, jit) for name, collapsed, jit, _ in CASES}
    calls = {name: per_round for name, _, _, per_round in CASES}
    return time_interleaved(fns, warmup=3, rounds=rounds, calls=calls)


def memory_case(collapsed_training: bool, jit_compile: bool) -> dict:
    """Peak memory of one case's training steps (run alone in a child process)."""
    step = _train_step(collapsed_training, jit_compile)
    mark_baseline()
    for _ in range(4):
        step()
    return {}


CASES = (
    # name, collapsed_training, jit_compile, steps per round (the expanded step is ~15x slower)
    ("collapsed", True, False, 5),
    ("collapsed_xla", True, True, 5),
    ("expanded", False, False, 1),
)
ROUNDS = 6


def main() -> None:
    load_before = os.getloadavg()
    timing = run_isolated("benchmarks.sesr_collapse:timing_case", rounds=ROUNDS)
    rows = []
    for name, collapsed_training, jit_compile, _ in CASES:
        memory = run_isolated(
            "benchmarks.sesr_collapse:memory_case",
            collapsed_training=collapsed_training,
            jit_compile=jit_compile,
        )
        row = {"case": name, "jit_compile": jit_compile}
        if "error" in timing:
            row["error"] = timing["error"]
        else:
            row.update(
                step_median_ms=timing[name]["median_ms"],
                step_min_ms=timing[name]["min_ms"],
                repeats=timing[name]["repeats"],
            )
        if "error" in memory:
            row["error"] = memory["error"]
        else:
            row.update(peak_mb=memory["peak_mb"], peak_rss_mb=memory["peak_rss_mb"])
        rows.append(row)
        print(f"{name}: {row}", flush=True)
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
