"""Fixtures shared by the whole suite."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import pytest  # noqa: E402

from tfsr.testing import shared_data_dir  # noqa: E402


def _seed_everything():
    import tf_keras as keras

    keras.utils.set_random_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _same_random_state_per_module():
    """Module fixtures that build models start from the same random state (autouse fixtures come
    first within their scope)."""
    _seed_everything()


@pytest.fixture(autouse=True)
def _same_random_state():
    """Every test starts from the same random state (Python, NumPy, TensorFlow and tf_keras's
    unseeded initialisers), so that its result does not depend on which tests ran before it in
    the process: the order of the suite, and how pytest-xdist shares it out, do not matter."""
    _seed_everything()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than ~20 s on 2 cores")


@pytest.fixture(scope="session")
def shared_data():
    """Path of ../shared/data (the validation and training images)."""
    path = shared_data_dir()
    if not os.path.isdir(path):
        pytest.fail(f"shared data not found at {path}; set TFSR_SHARED_DATA to its location")
    return path


@pytest.fixture(scope="session")
def compiled_library():
    """``compiled_library(family)``: the compiled op library of ``family`` (built by `make ops`).

    Skips under TFSR_PURE_TF=1; fails when the library is missing or does not load.
    """
    from tfsr.ops import _loader

    def load(family):
        if _loader.pure_tf_forced():
            pytest.skip("TFSR_PURE_TF=1: compiled ops disabled")
        library = _loader.load(family)
        if library is None:
            pytest.fail(f"{_loader.library_path(family)} missing or broken: run `make ops`")
        return library

    return load
