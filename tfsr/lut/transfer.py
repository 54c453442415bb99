"""Command line: transfer a ``train.py`` LUT run to a ``.npz`` of tables (and fine-tune them).

    python train.py --model=rclut_x4 --scale=4 --train_data=../shared/data/train  # runs/rclut_x4_x4
    python -m tfsr.lut.transfer --run=runs/rclut_x4_x4 --out=rclut_x4.npz --finetune_steps=2000

The work is done by :func:`tfsr.lut.transfer_run` (:mod:`tfsr.lut.conversion`); this module
only parses flags, and nothing imports it.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from tfsr.lut.conversion import transfer_run

_RUN = flags.DEFINE_string("run", None, "train.py run folder of a LUT net (srlut/mulut/rclut).")
_OUT = flags.DEFINE_string("out", None, "Output LUT file (.npz).")
_FINETUNE_STEPS = flags.DEFINE_integer(
    "finetune_steps", 0, "LUT fine-tuning steps on the run's training data."
)
_LR = flags.DEFINE_float("lr", 0.05, "Fine-tuning learning rate of the 4-D tables (levels).")
_RC_LR = flags.DEFINE_float("rc_lr", 5e-4, "Fine-tuning learning rate of the RC 1-D tables.")
_INTERVAL = flags.DEFINE_integer("interval", 16, "Sampling interval of the 4-D tables.")
flags.mark_flags_as_required(["run", "out"])


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    try:
        tables = transfer_run(
            _RUN.value,
            _OUT.value,
            _FINETUNE_STEPS.value,
            _LR.value,
            _RC_LR.value,
            _INTERVAL.value,
            progress=True,
        )
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    size = os.path.getsize(_OUT.value)
    print(
        f"wrote {_OUT.value}: x{tables.scale}, {len(tables.luts)} 4-D tables, "
        f"{len(tables.rcs)} RC tables; {tables.nbytes() / 1024:.1f} KB of tables, "
        f"{size / 1024:.1f} KB on disk"
    )
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
