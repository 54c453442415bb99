import numpy as np
import pytest

from tfsr.models.sesr import TRAIN_EXPANDED_FILTERS
from tfsr.training.config import (
    ConfigMismatchError,
    TrainConfig,
    check_resumable,
    load_saved_config,
    take_saved_values,
)
from tfsr.training.schedules import WarmupSchedule


def test_config_round_trip(tmp_path):
    config = TrainConfig(
        model="sesr_m3", scale=4, steps=10, scale_augment=[0.9, 0.7], out_dir=str(tmp_path)
    )
    assert config.scale_augment == (0.9, 0.7)
    config.save(str(tmp_path))
    assert load_saved_config(str(tmp_path)) == config  # JSON's list read back as the tuple
    assert load_saved_config(str(tmp_path / "nothing")) is None


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("steps", 0, "steps must be positive, got 0"),
        ("loss", "l3", "loss must be l1 or l2, got 'l3'"),
        ("strategy", "tpu", "strategy must be default, mirrored or multi_worker"),
        ("patch_size", 2, "patch_size must be at least 4, got 2"),
        ("lr_schedule", "linear", "lr_schedule must be constant, cosine or step"),
        ("expanded_filters", -1, r"expanded_filters must be >= 0 \(0: the model's own\), got -1"),
        ("scale_augment", (0.5, 1.0), r"scale_augment must be .* \(0, 1\), got \[0.5, 1.0\]"),
        ("scale_augment", (0.5, 0.5), r"scale_augment must be a list of distinct numbers"),
        ("scale_augment", ("0.5",), r"scale_augment must be .*, got \['0.5'\]"),
        ("scale_augment", 0.5, r"scale_augment must be .*, got 0.5"),
        ("scale_augment", (float("nan"),), r"scale_augment must be .*, got \[nan\]"),
    ],
)
def test_config_rejects_bad_values(field, value, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{field: value})


def test_resume_with_other_architecture_is_an_error():
    saved = TrainConfig(model="sesr_m5", scale=2)
    with pytest.raises(ConfigMismatchError, match=r"scale: checkpoint has 2, requested 4"):
        check_resumable(saved, TrainConfig(model="sesr_m5", scale=4))
    with pytest.raises(ConfigMismatchError, match=r"model: checkpoint has 'sesr_m5'"):
        check_resumable(saved, TrainConfig(model="sesr_xl", scale=2))
    with pytest.raises(
        ConfigMismatchError, match=r"expanded_filters: checkpoint has 0, requested 64"
    ):
        check_resumable(saved, TrainConfig(model="sesr_m5", scale=2, expanded_filters=64))


def test_resume_compares_widths_as_built():
    """0 is the model's own width (TRAIN_EXPANDED_FILTERS): the same network as naming it."""
    default = TrainConfig(model="sesr_m5", scale=2)
    explicit = TrainConfig(model="sesr_m5", scale=2, expanded_filters=TRAIN_EXPANDED_FILTERS)
    assert check_resumable(default, explicit) == []
    assert check_resumable(explicit, default) == []


def test_resume_ignores_the_fields_it_is_told_to():
    saved = TrainConfig(model="meta_sesr", scale=2)
    requested = TrainConfig(model="meta_sesr", scale=4)
    assert check_resumable(saved, requested, ignored=("scale",)) == []
    with pytest.raises(ConfigMismatchError, match="activation"):
        check_resumable(
            saved, TrainConfig(model="meta_sesr", scale=4, activation="relu"), ("scale",)
        )


def test_resume_with_more_steps_is_allowed_and_reported():
    notes = check_resumable(TrainConfig(steps=100), TrainConfig(steps=200))
    assert notes == ["steps changed from 100 to 200"]
    notes = check_resumable(TrainConfig(warmup_steps=100), TrainConfig(warmup_steps=0))
    assert notes == ["warmup_steps changed from 100 to 0"]
    notes = check_resumable(TrainConfig(), TrainConfig(scale_augment=(0.8,)))
    assert notes == ["scale_augment changed from () to (0.8,)"]


def test_schedules():
    cos = WarmupSchedule(1.0, total_steps=110, warmup_steps=10, kind="cosine", final_fraction=0.0)
    values = np.array([float(cos(s)) for s in range(111)])
    np.testing.assert_allclose(values[:10], (np.arange(10) + 1) / 10, rtol=1e-6)
    assert values[10] == pytest.approx(1.0)
    assert values[60] == pytest.approx(0.5, abs=1e-6)
    assert values[110] == pytest.approx(0.0, abs=1e-6)
    step = WarmupSchedule(2.0, total_steps=100, kind="step")
    assert [float(step(s)) for s in (0, 49, 50, 74, 75, 99)] == [2.0, 2.0, 1.0, 1.0, 0.5, 0.5]
    assert WarmupSchedule.from_config(cos.get_config()).get_config() == cos.get_config()
    with pytest.raises(ValueError, match="schedule kind must be"):
        WarmupSchedule(1.0, 10, kind="exp")


def test_resume_takes_the_saved_values_of_flags_not_given():
    # Leaving --train_data and --steps off a resume used to train on the embedded photos and
    # finish a 150,000-step run at the default 2,000.
    saved = TrainConfig(
        model="sesr_xl", train_data="/data/291", steps=150_000, lr=2e-4, val_data="/data/Set5"
    )
    requested = TrainConfig(model="sesr_xl", lr=1e-4)
    taken = take_saved_values(requested, saved, given={"model", "lr", "out_dir"})
    assert taken == ["train_data='/data/291'", "steps=150000", "val_data='/data/Set5'"]
    assert (requested.train_data, requested.steps, requested.lr) == ("/data/291", 150_000, 1e-4)
    assert check_resumable(saved, requested) == ["lr changed from 0.0002 to 0.0001"]
