"""A run's training data: the configuration's data options reach the pipeline."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tfsr.data.io import write_image
from tfsr.training import TrainConfig
from tfsr.training.data import steps_for_epochs, training_dataset


@pytest.fixture()
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png", "c.png", "d.png"):
        write_image(tmp_path / name, rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    return str(tmp_path)


def _config(folder, **kw):
    return TrainConfig(train_data=folder, val_data=folder, batch_size=4, patch_size=8, **kw)


def test_an_epoch_counts_the_scale_augment_copies(folder):
    # 4 images x 16 visits / batch 4 = 16 steps an epoch; two shrunk copies of each triple it.
    assert steps_for_epochs(_config(folder), 2) == 32
    assert steps_for_epochs(_config(folder, scale_augment=(0.8, 0.6)), 2) == 96
    # At x2 the HR patch is 16 pixels: the 0.3 copies (12x12) are left out, and not counted.
    assert steps_for_epochs(_config(folder, scale_augment=(0.5, 0.3)), 2) == 64
    # Nor is an image smaller than the patch.
    write_image(os.path.join(folder, "small.png"), np.zeros((10, 40, 3), np.uint8))
    assert steps_for_epochs(_config(folder), 2) == 32


def test_training_dataset_makes_the_scale_augment_copies(folder):
    # At x2 the HR patch is 16 pixels: the 0.3 copies (12x12) are too small, and say so.
    with pytest.warns(UserWarning, match=r"skipping 4 image.*a.png shrunk by 0.3 \(12x12\)"):
        lr, hr = next(iter(training_dataset(_config(folder, scale_augment=(0.5, 0.3)))))
    assert lr.shape == (4, 8, 8, 1) and hr.shape == (4, 16, 16, 1)


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--scale_augment=0.9,abc", r"--scale_augment takes numbers in \(0, 1\), got 0.9,abc"),
        (
            "--scale_augment=0.9,2",
            r"scale_augment must be a list of distinct numbers in \(0, 1\), got \[0.9, 2.0\]",
        ),
        ("--epochs=2", "give --steps or --epochs, not both"),  # --steps used to be dropped
        # LUT nets have fixed ReLUs; the flag used to be recorded in the run and ignored.
        (
            "--model=rclut_x4 --activation=relu",
            "model 'rclut_x4' has fixed activations; drop --activation",
        ),
    ],
)
def test_train_py_reports_a_bad_flag(flag, message):
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run(
        [sys.executable, "train.py", *flag.split(), "--steps=1"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert re.search("train.py: " + message, result.stderr), result.stderr
