"""The compiled-op loader: compiled library, forced twin (TFSR_PURE_TF=1), missing or broken .so."""

import os
import textwrap
import warnings

import numpy as np
import pytest
import tensorflow as tf

from tests.cli import run_python
from tfsr.ops import _loader, custom_ops_available
from tfsr.ops.meta_upscale import meta_upscale, meta_upscale_twin

# Runs in a fresh process: which implementation runs, and every warning raised.
_PROBE = textwrap.dedent("""
    import warnings
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        import numpy as np
        import tensorflow as tf
        import tfsr.ops
        x = tf.constant(np.ones((1, 3, 3, 2)), tf.float32)
        w = tf.constant(np.ones((2, 2, 3, 3, 2, 1)), tf.float32)
        graph = tf.function(lambda: tfsr.ops.meta_upscale(x, w, 2.0, 2.0)).get_concrete_function()
        ops = {op.type for op in graph.graph.get_operations()}
        total = float(tf.reduce_sum(tfsr.ops.meta_upscale(x, w, 2.0, 2.0)))
        available = tfsr.ops.custom_ops_available()
    ours = [str(c.message) for c in caught if "tfsr" in str(c.message)]
    print(available, "Tfsr>MetaUpscale" in ops, total, len(ours))
    """)


# x, w all ones, 3x3 -> 6x6, 2 channels: output rows have sources 0,0,1,1,2,2 whose 3-tap windows
# hold 2,2,3,3,2,2 in-image rows (14 in all); the same for columns.
_ALL_ONES_TOTAL = 2.0 * 14 * 14


def _probe(**env):
    proc = run_python("-c", _PROBE, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    available, uses_op, total, warned = proc.stdout.split()[-4:]
    return available == "True", uses_op == "True", float(total), int(warned)


def test_compiled_library_is_used():
    if not os.path.exists(_loader.library_path("meta_upscale")):
        pytest.fail(f"{_loader.library_path('meta_upscale')} missing: run `make ops`")
    available, uses_op, total, warned = _probe(TFSR_PURE_TF="0")
    assert (available, uses_op, warned) == (True, True, 0)
    assert total == _ALL_ONES_TOTAL


def test_pure_tf_forced_by_environment():
    available, uses_op, total, warned = _probe(TFSR_PURE_TF="1")
    assert (available, uses_op, warned) == (False, False, 0)
    assert total == _ALL_ONES_TOTAL


@pytest.fixture
def fresh_loader(monkeypatch, tmp_path):
    """The loader as in a new process, looking for libraries in an empty tmp_path."""
    monkeypatch.setattr(_loader, "_libraries", {})
    monkeypatch.setattr(_loader, "_warned", False)
    monkeypatch.setattr(_loader, "COMPILED_DIR", str(tmp_path))
    monkeypatch.delenv("TFSR_PURE_TF", raising=False)
    return tmp_path


def _fallback_warnings() -> list[str]:
    """Runs meta_upscale twice (checked against the twin) and custom_ops_available() (False);
    returns the loader's warnings."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 4, 5, 2))
    w = rng.standard_normal((5, 2, 3, 3, 2, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            got = meta_upscale(x, w, 2.5, 2.0)
            np.testing.assert_allclose(got.numpy(), meta_upscale_twin(x, w, 2.5, 2.0).numpy())
        assert custom_ops_available() is False
    return [
        str(c.message) for c in caught if issubclass(c.category, _loader.CompiledOpFallbackWarning)
    ]


def test_missing_library_warns_once_and_falls_back(fresh_loader):
    (message,) = _fallback_warnings()
    assert "_meta_upscale_ops.so not found" in message and "make ops" in message


def test_broken_library_warns_once_and_falls_back(fresh_loader):
    (fresh_loader / "_meta_upscale_ops.so").write_bytes(b"not an ELF file")
    (message,) = _fallback_warnings()
    assert "could not load" in message and "make ops" in message


@pytest.mark.parametrize(
    "features, loaded",
    [
        ('{"required": ["avx2", "fma"]}', False),  # the older form: one list for every library
        ('{"libraries": {"meta_upscale": ["avx2", "fma"], "lut_interp": []}}', False),
        # Another library's needs do not stop this one (it is then loaded: here, and fails).
        ('{"libraries": {"meta_upscale": [], "lut_interp": ["avx2", "fma"]}}', True),
    ],
)
def test_library_built_for_a_cpu_feature_this_cpu_lacks_is_not_loaded(
    fresh_loader, monkeypatch, features, loaded
):
    # Loading it would end the process with SIGILL at the first AVX2 instruction.
    (fresh_loader / "_meta_upscale_ops.so").write_bytes(b"never loaded")
    (fresh_loader / "cpu_features.json").write_text(features)
    monkeypatch.setattr(_loader, "cpu_features", lambda: {"sse2", "avx"})
    (message,) = _fallback_warnings()
    if loaded:
        assert "could not load" in message
    else:
        assert "built for a CPU with avx2, fma, which this CPU lacks" in message
    assert "make ops" in message


def test_pure_tf_in_process_does_not_warn(fresh_loader, monkeypatch):
    monkeypatch.setenv("TFSR_PURE_TF", "1")
    assert _fallback_warnings() == []


def test_graph_mode_fallback_has_no_custom_op(fresh_loader):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = tf.function(
            lambda x: meta_upscale(x, tf.ones([2, 2, 3, 3, 1, 1]), 2.0, 2.0)
        ).get_concrete_function(tf.TensorSpec([1, 3, 3, 1]))
    types = {op.type for op in graph.graph.get_operations()}
    assert "Tfsr>MetaUpscale" not in types and "BatchMatMulV2" in types


# ---- the build script (python -m custom_ops.build) ----


def test_compiled_library_is_up_to_date(capsys):
    from custom_ops import build

    assert build.build(check=True) == [], "sources changed since the last build: run `make ops`"
    assert "meta_upscale: up to date" in capsys.readouterr().out


def test_build_reports_compiler_errors(monkeypatch, tmp_path, capsys):
    """A broken source: BuildError with the compiler's message, exit status 1, no library."""
    import shutil

    from custom_ops import build

    (tmp_path / "cc" / "ops").mkdir(parents=True)
    (tmp_path / "cc" / "kernels").mkdir()
    (tmp_path / "cc" / "ops" / "broken_ops.cc").write_text("int f() { return missing_name; }\n")
    cached = os.path.join(build.BUILD_DIR, "tf_config.json")
    (tmp_path / "build").mkdir()
    if os.path.exists(cached):
        shutil.copy(cached, tmp_path / "build" / "tf_config.json")
    monkeypatch.setattr(build, "CC_DIR", str(tmp_path / "cc"))
    monkeypatch.setattr(build, "BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setattr(build, "OUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("TFSR_NO_CUDA", "1")
    assert build.build(check=True) == ["broken"]
    with pytest.raises(
        build.BuildError, match=r"compiling .*broken_ops.cc failed[\s\S]*missing_name"
    ):
        build.build()
    assert build.main([]) == 1
    assert "missing_name" in capsys.readouterr().err
    assert not (tmp_path / "out" / "_broken_ops.so").exists()


def test_build_records_cpu_features_per_library(monkeypatch, tmp_path):
    # Building one family on a CPU without AVX2 used to rewrite the one list that every library
    # was checked against, and the other, AVX2 library was then loaded (SIGILL).
    import json

    from custom_ops import build

    monkeypatch.setattr(build, "OUT_DIR", str(tmp_path))
    (tmp_path / "cpu_features.json").write_text('{"required": ["avx2", "fma"]}')
    build._record_cpu_features("lut_interp", [])
    saved = json.loads((tmp_path / "cpu_features.json").read_text())
    assert saved == {"libraries": {"lut_interp": [], "meta_upscale": ["avx2", "fma"]}}
    build._record_cpu_features("meta_upscale", [])
    saved = json.loads((tmp_path / "cpu_features.json").read_text())
    assert saved == {"libraries": {"lut_interp": [], "meta_upscale": []}}
