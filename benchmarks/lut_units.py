"""RC-LUT training step with plain, wide and dense (MuLUT-style) units.

Question: what does a training step cost with MuLUT's units (64 wide, 5 densely connected
layers: ``rclut_dense_x4``) against ours (32 wide, 3 plain layers: ``rclut_x4``) and 64-wide
plain ones (``rclut_wide_x4``)? All three become the same tables; only training differs.

Setup: the registered models at x4, seed 0; one step = forward, L1 loss, gradient, Adam update in
a ``tf.function`` with ``jit_compile`` (as ``train.py --jit_compile``), batch 16 of 24x24 LR
patches (``--batch``, ``--patch``); the steps run in turn, round after round, in one process
(``benchmarks.common.time_interleaved``).

Metrics: ``step_ms`` (median over ``--rounds`` steps after 3 warm-up steps), ``min_ms``,
``cost`` = step_ms / rclut_x4's step_ms.

Run: ``python -m benchmarks.lut_units`` (about two minutes on 2 cores).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks.common import print_table, time_interleaved, write_results  # noqa: E402
from benchmarks.lut_training import _step, parse_step_args, step_timing  # noqa: E402

MODELS = ("rclut_x4", "rclut_wide_x4", "rclut_dense_x4")


def run(batch: int, patch: int, rounds: int) -> list[dict]:
    import tf_keras as keras

    from tfsr.models.registry import get_model_spec

    steps = {}
    for name in MODELS:
        keras.utils.set_random_seed(0)
        steps[name] = _step(get_model_spec(name).build(scale=4), True, batch, patch)
    times = time_interleaved(steps, warmup=3, rounds=rounds)
    base = times[MODELS[0]]["median_ms"]
    return [
        {
            "model": name,
            **step_timing(t, batch, patch),
            "cost": t["median_ms"] / base,
        }
        for name, t in times.items()
    ]


def main():
    args = parse_step_args(__doc__.splitlines()[0])
    rows = run(args.batch, args.patch, args.rounds)
    print_table(rows, ["model", "batch", "step_ms", "min_ms", "cost"])
    summary = {"dense_cost": next(r["cost"] for r in rows if r["model"] == "rclut_dense_x4")}
    write_results("lut_units", summary, rows)


if __name__ == "__main__":
    main()
