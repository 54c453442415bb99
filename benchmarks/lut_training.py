"""RC-LUT training step: RC modules read from their tables vs their per-pixel MLPs.

Question: how much does reading every RC mapping from its 256-entry table (what
``tfsr.lut.RcModule`` does: the taps are integer levels) speed up a training step of
``rclut_x4``, against running each position's 1-D MLP at every pixel with the window mean
differentiated slice by slice (how the layer computed before)? Both give the same values and,
up to float rounding, the same gradients (tests/lut/test_layers.py).

Setup: ``rclut_x4`` at its default widths, seed 0; one step = forward, L1 loss, gradient, Adam
update, in a ``tf.function`` with and without ``jit_compile``; batch 16 of 24x24 LR patches
(the shipped run's; ``--patch``, ``--batch`` to change). The two nets share their weights'
initial values (checked: equal outputs); the steps run in turn, round after round, in one process
(``benchmarks.common.time_interleaved``).

Metrics: ``step_ms`` (median over ``--rounds`` steps after 3 warm-up steps), ``min_ms``;
``speedup`` = per-pixel MLP step_ms / tables step_ms at the same ``jit``.

Run: ``python -m benchmarks.lut_training`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks.common import print_table, time_interleaved, write_results  # noqa: E402


def _per_pixel_net():
    """``rclut_x4`` whose RC modules run the per-pixel MLP and the sliced mean."""
    import tensorflow as tf

    from tfsr.lut import RcModule, lut_net
    from tfsr.lut.patterns import LEVELS
    from tfsr.lut.rc_module import rc_quantize, window_taps

    class PerPixelRc(RcModule):
        def call(self, levels):
            mapped = self.mapping(window_taps(levels, self.window))  # (N, H, W, K)
            total = mapped[..., :1]
            for i in range(1, mapped.shape[-1]):
                total = total + mapped[..., i : i + 1]
            mean = total / float(mapped.shape[-1])
            smooth = (tf.tanh(mean) + 1.0) * (LEVELS / 2.0)
            return smooth + tf.stop_gradient(rc_quantize(mean) - smooth)

    net = lut_net("rclut", scale=4)
    for i, module in enumerate(net.rc_modules):
        if module is not None:
            twin = PerPixelRc(module.window, module.filters, name=module.name)
            twin.build((None, None, None, 1))
            twin.set_weights(module.get_weights())
            net.rc_modules[i] = twin
    return net


def _step(net, jit: bool, batch: int, patch: int):
    """One training step of ``net`` (x4) on fixed random patches, as a callable."""
    import tensorflow as tf
    import tf_keras as keras

    optimizer = keras.optimizers.Adam(1e-4)
    lr = tf.random.stateless_uniform((batch, patch, patch, 1), seed=(1, 2))
    hr = tf.random.stateless_uniform((batch, 4 * patch, 4 * patch, 1), seed=(3, 4))

    @tf.function(jit_compile=jit)
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(tf.cast(net(lr), hr.dtype) - hr))
        grads = tape.gradient(loss, net.trainable_variables)
        optimizer.apply_gradients(zip(grads, net.trainable_variables, strict=True))
        return loss

    return lambda: step().numpy()


def step_timing(t: dict, batch: int, patch: int) -> dict:
    """The step benchmarks' common row fields from one :func:`time_interleaved` entry."""
    return {
        "batch": f"{batch} of {patch}x{patch}",
        "step_ms": t["median_ms"],
        "min_ms": t["min_ms"],
    }


def run(batch: int, patch: int, rounds: int) -> list[dict]:
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    from tfsr.lut import lut_net

    rows = []
    for jit in (True, False):
        keras.utils.set_random_seed(0)
        tables = lut_net("rclut", scale=4)
        keras.utils.set_random_seed(0)
        mlp = _per_pixel_net()
        probe = tf.random.stateless_uniform((2, 16, 16, 1), seed=(5, 6))
        if not np.array_equal(mlp(probe).numpy(), tables(probe).numpy()):
            raise AssertionError("the two nets differ: the comparison would be meaningless")
        steps = {
            "per-pixel MLP": _step(mlp, jit, batch, patch),
            "tables": _step(tables, jit, batch, patch),
        }
        times = time_interleaved(steps, warmup=3, rounds=rounds)
        base = times["per-pixel MLP"]["median_ms"]
        for method, t in times.items():
            rows.append(
                {
                    "model": "rclut_x4",
                    "rc": method,
                    "jit": jit,
                    **step_timing(t, batch, patch),
                    "speedup": base / t["median_ms"],
                }
            )
    return rows


def parse_step_args(description: str, argv=None, model: str | None = None) -> argparse.Namespace:
    """The step benchmarks' flags: --batch, --patch (LR side), --rounds; --model (a registered
    name) where ``model`` gives its default."""
    parser = argparse.ArgumentParser(description=description)
    if model is not None:
        parser.add_argument("--model", default=model, help="a registered model name")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=24, help="LR patch side")
    parser.add_argument("--rounds", type=int, default=15)
    return parser.parse_args(argv)


def main():
    args = parse_step_args(__doc__.splitlines()[0])
    rows = run(args.batch, args.patch, args.rounds)
    print_table(rows, ["model", "rc", "jit", "batch", "step_ms", "min_ms", "speedup"])
    tables = {r["jit"]: r for r in rows if r["rc"] == "tables"}
    summary = {
        "speedup_jit": tables[True]["speedup"],
        "speedup_no_jit": tables[False]["speedup"],
        "tables_step_ms_jit": tables[True]["step_ms"],
    }
    write_results("lut_training", summary, rows)


if __name__ == "__main__":
    main()
