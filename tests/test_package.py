"""``import tfsr``: the library's subpackages load on first use; no command line comes with them."""

from tests.cli import run_python

_TOUCH_EVERY_SUBMODULE = """
import types
from absl import flags
import tfsr
names = [n for n in dir(tfsr) if isinstance(getattr(tfsr, n), types.ModuleType)]
print(sorted(names))
print("flags:", sorted(n for n in ("model", "data", "scale", "run") if n in flags.FLAGS))
"""


def test_every_lazy_submodule_imports_and_defines_no_flags():
    result = run_python("-c", _TOUCH_EVERY_SUBMODULE)
    assert result.returncode == 0, result.stderr
    modules, defined = result.stdout.strip().splitlines()
    for name in ("evaluation", "inference", "lut", "training", "upscaling", "layers", "models"):
        assert f"'{name}'" in modules
    assert "'evaluate'" not in modules and "'upscale'" not in modules
    assert defined == "flags: []"


def test_readme_library_table_names_resolve():
    """Every ``tfsr.…`` name in the README's table of what is where is reachable from ``import
    tfsr`` by attribute access (the way the table shows it)."""
    import os
    import re

    import tfsr

    readme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
    with open(readme, encoding="utf-8") as f:
        rows = f.read().split("## Quick tour")[0].splitlines()
    names = re.findall(r"`(tfsr(?:\.\w+)+)`", "\n".join(r for r in rows if r.startswith("|")))
    assert len(names) >= 10, names
    for name in names:
        obj = tfsr
        for part in name.split(".")[1:]:
            assert hasattr(obj, part), f"README names {name}, but {part!r} is not an attribute"
            obj = getattr(obj, part)
