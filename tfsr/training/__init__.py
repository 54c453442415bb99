"""Training: the configuration, the loop behind ``train.py`` and its data plumbing."""

from __future__ import annotations

from tfsr.training.config import ConfigMismatchError, TrainConfig  # noqa: F401
from tfsr.training.loop import Trainer, TrainResult, train  # noqa: F401


def run_from_config(config: TrainConfig) -> int:
    """Runs :func:`train` for a script: prints a summary; user errors become one line.

    Returns:
        A process exit code: 0 done, 1 stopped by a signal (checkpoint written), 2 bad input.
    """
    from tfsr.data.io import ImageReadError
    from tfsr.data.sources import SourceUnavailableError

    user_errors = (
        ConfigMismatchError,
        FileNotFoundError,
        ImageReadError,
        SourceUnavailableError,
        ValueError,
    )
    try:
        result = train(config)
    except user_errors as e:
        print(f"error: {e}")
        return 2
    if not result.completed:
        return 1
    m = result.metrics
    print(
        f"\n{config.model} x{config.scale}: {result.step} steps. "
        f"Validation ({m['dataset']}, {m['images']} images, Y channel):\n"
        f"  bicubic  PSNR {m['bicubic_psnr']:.3f} dB  SSIM {m['bicubic_ssim']:.4f}\n"
        f"  model    PSNR {m['psnr']:.3f} dB  SSIM {m['ssim']:.4f}  "
        f"({m['psnr'] - m['bicubic_psnr']:+.3f} dB)\n"
        f"Inference model: {result.inference_model_path}"
    )
    return 0
