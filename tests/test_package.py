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
