"""Training: the configuration, the loop behind ``train.py`` and its data plumbing."""

from __future__ import annotations

import os

from tfsr.training.config import ConfigMismatchError, TrainConfig  # noqa: F401
from tfsr.training.loop import CHECKPOINT_DIR, Trainer, TrainResult, train  # noqa: F401


def user_errors() -> tuple[type[Exception], ...]:
    """The exceptions a training script reports as one line (bad flags, data, checkpoints)."""
    from tfsr.data.io import ImageReadError
    from tfsr.data.sources import SourceUnavailableError

    return (
        ConfigMismatchError,
        FloatingPointError,
        ImageReadError,
        OSError,  # missing files and folders, an --out_dir that is a file, read-only
        SourceUnavailableError,
        ValueError,
    )


def run_from_config(config: TrainConfig) -> int:
    """Runs :func:`train` for a script: prints a summary; user errors become one line.

    Returns:
        A process exit code: 0 done, 1 stopped by a signal (checkpoint written), 2 bad input,
        130 interrupted at once (a second Ctrl-C, or Ctrl-C while the finished run writes its
        model and final evaluation): the last checkpoint is intact and a rerun goes on from it.
    """
    try:
        result = train(config)
    except user_errors() as e:
        print(f"error: {e}")
        return 2
    except KeyboardInterrupt:
        import tensorflow as tf

        if tf.train.latest_checkpoint(os.path.join(config.out_dir, CHECKPOINT_DIR)) is None:
            print("\ninterrupted before the first checkpoint: a rerun starts the run afresh.")
        else:
            print(
                f"\ninterrupted: {config.out_dir} keeps its last checkpoint; rerun the same "
                "command to go on (a finished run then writes its model and final evaluation)."
            )
        return 130
    if not result.completed:
        return 1
    m = result.metrics
    if not m:  # a worker other than the chief of a multi-worker run
        print(f"\n{config.model}: {result.step} steps; the chief wrote the model and results.")
        return 0
    rows = [("", m)] if "per_scale" not in m else list(m["per_scale"].items())
    scale = "" if "per_scale" in m else f" x{config.scale}"
    lines = [
        f"\n{config.model}{scale}: {result.step} steps. "
        f"Validation ({m['dataset']}, {m['images']} images, Y channel):"
    ]
    for label, r in rows:
        prefix = f"  {label:>5}" if label else "  "
        lines.append(
            f"{prefix} bicubic  PSNR {r['bicubic_psnr']:.3f} dB  SSIM {r['bicubic_ssim']:.4f}"
        )
        lines.append(
            f"{prefix} model    PSNR {r['psnr']:.3f} dB  SSIM {r['ssim']:.4f}  "
            f"({r['psnr'] - r['bicubic_psnr']:+.3f} dB)"
        )
    lines.append(f"Inference model: {result.inference_model_path}")
    print("\n".join(lines))
    return 0
