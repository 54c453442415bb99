"""tfsr.scale_flags: --scale as a number or a fraction."""

import pytest
from absl import flags

from tfsr.scale_flags import ScaleParser, define_scale_flags


def test_parser_takes_numbers_and_fractions():
    parser = ScaleParser()
    assert parser.parse("2.5") == 2.5 and parser.parse("3") == 3.0
    assert parser.parse("4/3") == 4 / 3 and parser.parse(" 10 / 4 ") == 2.5
    assert parser.parse("1.5/2") == 0.75 and parser.parse("1e2/3") == 100 / 3
    for bad in ("1/0", "a/b", "4//3", "1/2/3", "x", "/3"):
        with pytest.raises(ValueError):
            parser.parse(bad)


def test_defined_flags_parse_fractions():
    values = flags.FlagValues()
    define_scale_flags("Upscaling factor.", flag_values=values)
    values(["prog", "--scale=4/3", "--scale_h=2.5"])
    assert values.scale == 4 / 3 and values.scale_v is None and values.scale_h == 2.5
    assert "fraction p/q" in values.get_help()
    # They are this module's key flags (a tool's --help lists them), not tfsr.scale_flags'.
    key = {flag.name for flag in values.get_key_flags_for_module(__name__)}
    assert {"scale", "scale_v", "scale_h"} <= key
    with pytest.raises(flags.IllegalFlagValueError, match="fraction p/q"):
        values(["prog", "--scale_v=1/0"])
