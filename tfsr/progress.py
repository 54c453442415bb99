"""The progress bar of tfsr's long loops (training, LUT fine-tuning, making training data)."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def step_bar(
    total: int, desc: str, *, enabled: bool = True, initial: int = 0, unit: str = "step"
) -> tqdm:
    """A tqdm bar counting optimisation steps (or other units of long work).

    On a terminal it refreshes every second; when stderr is a log file (a ``nohup`` run), where
    every refresh is kept as a line, once a minute.

    Args:
      total: the step the loop stops at.
      desc: the bar's label.
      enabled: False gives a silent bar (``update`` and ``set_postfix`` do nothing).
      initial: the step a resumed loop starts from.
      unit: what the bar counts.
    """
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        disable=not enabled,
        dynamic_ncols=True,
        mininterval=1.0 if sys.stderr.isatty() else 60.0,
    )
