"""Fixtures shared by the whole suite."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import pytest  # noqa: E402

from tfsr.testing import shared_data_dir  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than ~20 s on 2 cores")


@pytest.fixture(scope="session")
def shared_data():
    """Path of ../shared/data (the validation and training images)."""
    path = shared_data_dir()
    if not os.path.isdir(path):
        pytest.fail(f"shared data not found at {path}; set TFSR_SHARED_DATA to its location")
    return path
