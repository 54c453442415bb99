"""Command line: transfer a ``train.py`` LUT run to a ``.npz`` of tables (and fine-tune them).

    python -m tfsr.lut.transfer --run=runs/rclut_x4 --out=rclut_x4.npz --finetune_steps=2000

The work is done by :func:`tfsr.lut.transfer_run` (:mod:`tfsr.lut.conversion`); this module
only parses flags, and nothing imports it.
"""

from __future__ import annotations

import os
import sys

from tfsr.lut.conversion import transfer_run


def main(argv):
    from absl import flags

    del argv
    flags_ = flags.FLAGS
    try:
        tables = transfer_run(
            flags_.run,
            flags_.out,
            flags_.finetune_steps,
            flags_.lr,
            flags_.rc_lr,
            flags_.interval,
            progress=True,
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    size = os.path.getsize(flags_.out)
    print(
        f"wrote {flags_.out}: x{tables.scale}, {len(tables.luts)} 4-D tables, "
        f"{len(tables.rcs)} RC tables; {tables.nbytes() / 1024:.1f} KB of tables, "
        f"{size / 1024:.1f} KB on disk"
    )
    return 0


def _define_flags():
    from absl import flags

    flags.DEFINE_string("run", None, "train.py run folder of a LUT net (srlut/mulut/rclut).")
    flags.DEFINE_string("out", None, "Output LUT file (.npz).")
    flags.DEFINE_integer("finetune_steps", 0, "LUT fine-tuning steps on the run's training data.")
    flags.DEFINE_float("lr", 0.05, "Fine-tuning learning rate of the 4-D tables (levels).")
    flags.DEFINE_float("rc_lr", 5e-4, "Fine-tuning learning rate of the RC 1-D tables.")
    flags.DEFINE_integer("interval", 16, "Sampling interval of the 4-D tables.")
    flags.mark_flags_as_required(["run", "out"])


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
