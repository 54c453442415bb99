"""Training step in float32 and mixed bfloat16, with and without XLA (``train.py`` flags).

Question: do ``train.py --mixed_precision`` (bfloat16 compute on CPU, float32 variables) and
``--jit_compile`` pay for a training step on this CPU? DEVELOPERS.md quotes the answer for
``rclut_dense_x4``, the slowest LUT net to train.

Setup: the registered model (``--model``, default ``rclut_dense_x4``) at x4, seed 0, built under
each precision policy (``float32`` or ``mixed_bfloat16``, as ``train.py`` sets it); one step =
forward, L1 loss in float32, gradient, Adam update, in a ``tf.function`` with and without
``jit_compile``; batch 16 of 24x24 LR patches (``--batch``, ``--patch``). The four steps run in
turn, round after round, in one process (``benchmarks.common.time_interleaved``).

Metrics: ``step_ms`` (median over ``--rounds`` steps after 3 warm-up steps), ``min_ms``,
``cost`` = step_ms / the float32 XLA step's.

Run: ``python -m benchmarks.train_precision`` (about three minutes on 2 cores for the default
model).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks.common import print_table, time_interleaved, write_results  # noqa: E402
from benchmarks.lut_training import _step, parse_step_args, step_timing  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16")


def run(model: str, batch: int, patch: int, rounds: int) -> list[dict]:
    import tf_keras as keras

    from tfsr.models.registry import get_model_spec

    spec = get_model_spec(model)
    cases = {f"{policy}, jit={jit}": (policy, jit) for policy in POLICIES for jit in (True, False)}
    steps = {}
    try:
        for label, (policy, jit) in cases.items():
            keras.mixed_precision.set_global_policy(policy)
            keras.utils.set_random_seed(0)
            steps[label] = _step(spec.build(scale=4), jit, batch, patch)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    times = time_interleaved(steps, warmup=3, rounds=rounds)
    base = times["float32, jit=True"]["median_ms"]
    return [
        {
            "model": model,
            "policy": policy,
            "jit": jit,
            **step_timing(times[label], batch, patch),
            "cost": times[label]["median_ms"] / base,
        }
        for label, (policy, jit) in cases.items()
    ]


def main():
    args = parse_step_args(__doc__.splitlines()[0], model="rclut_dense_x4")
    rows = run(args.model, args.batch, args.patch, args.rounds)
    print_table(rows, ["model", "policy", "jit", "batch", "step_ms", "min_ms", "cost"])
    cost = {(r["policy"], r["jit"]): r["cost"] for r in rows}
    summary = {
        "model": args.model,
        "cost_no_jit": cost[("float32", False)],
        "cost_bf16_jit": cost[("mixed_bfloat16", True)],
        "cost_bf16_no_jit": cost[("mixed_bfloat16", False)],
    }
    write_results("train_precision", summary, rows)


if __name__ == "__main__":
    main()
