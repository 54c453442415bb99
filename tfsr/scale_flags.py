"""The ``--scale``, ``--scale_v`` and ``--scale_h`` flags of tfsr's command-line tools.

A scale is a number (``2``, ``2.5``) or a fraction written with a slash (``--scale=4/3``): the
exact ratio, where ``1.333`` is 1333/1000, whose output grid repeats only every 1,000 input
pixels (tiles and whole-grid padding need a short ratio: see :data:`tfsr.inference.GRID_DENOMINATOR`).
"""

from __future__ import annotations

from fractions import Fraction

from absl import flags

# The flags belong to the tool that calls define_scale_flags (its --help lists them), not here.
flags.disclaim_key_flags()


class ScaleParser(flags.FloatParser):
    """absl parser of a float or a fraction ``p/q`` (each side a number: ``4/3``, ``1.5 / 2``)."""

    syntactic_help = "a number or a fraction p/q, e.g. 4/3"

    def convert(self, argument):
        if isinstance(argument, str) and "/" in argument:
            try:
                numerator, denominator = (Fraction(part.strip()) for part in argument.split("/"))
                return float(numerator / denominator)
            except (ValueError, ZeroDivisionError):
                raise ValueError(f"expected a number or a fraction p/q, got {argument!r}") from None
        return super().convert(argument)


def define_scale_flags(scale_help: str, axis_word: str = "factor", flag_values=flags.FLAGS):
    """Defines ``--scale``, ``--scale_v`` and ``--scale_h`` (default None).

    Args:
        scale_help: help text of ``--scale`` (``--helpfull`` adds "a number or a fraction p/q").
        axis_word: what the axis flags' help calls a scale ("factor", "scale").
        flag_values: where to define them (absl's global ``FLAGS`` by default).

    Returns:
        The three flag holders, ``(scale, scale_v, scale_h)``.
    """

    def define(name, help_text):
        return flags.DEFINE(
            ScaleParser(),
            name,
            None,
            help_text,
            flag_values=flag_values,
            serializer=flags.ArgumentSerializer(),
        )

    return (
        define("scale", scale_help),
        define("scale_v", f"Vertical {axis_word} (with --scale_h; default --scale)."),
        define("scale_h", f"Horizontal {axis_word} (with --scale_v)."),
    )
