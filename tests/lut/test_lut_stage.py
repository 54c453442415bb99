"""Tfsr>LutStage (one fused LUT stage) against its pure-TF twin, LutModel's paths and goldens."""

import numpy as np
import pytest
import tensorflow as tf

from tfsr.lut import MODEL_STAGES, LutModel
from tfsr.lut.lut_stage import lut_stage, lut_stage_twin
from tfsr.lut.patterns import PATTERNS, RC_WINDOWS
from tfsr.lut.rc_module import rc_combine, rc_thresholds
from tfsr.ops import _loader


@pytest.fixture(scope="module")
def lib(compiled_library):
    return compiled_library("lut_interp")


def _tables(rng, stage):
    luts = [
        rng.integers(-127, 128, (17**4, stage["scale"] ** 2)).astype(np.int8)
        for _ in stage["patterns"]
    ]
    rcs = [
        rng.normal(0, 1.5, (RC_WINDOWS[p] ** 2, 256)).astype(np.float32)
        for p in stage["patterns"]
        if stage.get("rc")
    ]
    return luts, rcs


STAGES = [
    {"scale": 4, "patterns": "S"},  # SR-LUT
    {"scale": 1, "patterns": "SDY"},  # MuLUT, first stage
    {"scale": 4, "patterns": "SDY"},  # MuLUT, last stage
    {"scale": 1, "patterns": "SY", "rc": True},  # RC-LUT, first stage
    {"scale": 4, "patterns": "S", "rc": True},  # RC-LUT, last stage
    {"scale": 2, "patterns": "SDY", "rc": True},  # every RC window (7x7 for D)
]


@pytest.mark.parametrize("stage", STAGES, ids=lambda st: f"{st['patterns']}x{st['scale']}")
@pytest.mark.parametrize("last", [False, True])
def test_compiled_stage_equals_twin_exactly(lib, stage, last):
    rng = np.random.default_rng(len(stage["patterns"]) + 10 * stage["scale"])
    luts, rcs = _tables(rng, stage)
    # Batched with odd sizes; a width that has interior runs; the smallest image a 7x7 window takes.
    for shape in [(2, 7, 9, 1), (1, 12, 29, 1), (1, 3, 4, 1)]:
        image = rng.integers(0, 256, shape).astype(np.uint8)
        image[0, 0, :2, 0] = [0, 255]
        compiled = lut_stage(image, luts, rcs, stage, last=last).numpy()
        twin = lut_stage_twin(image, luts, rcs, stage, last=last).numpy()
        s = stage["scale"]
        assert compiled.shape == (shape[0], s * shape[1], s * shape[2], 1)
        assert compiled.dtype == (np.float32 if last else np.uint8)
        np.testing.assert_array_equal(compiled, twin)


@pytest.mark.parametrize("family", sorted(MODEL_STAGES))
def test_lut_model_paths_agree_exactly(lib, family):
    # Inference (one fused op per stage) against the differentiable fine-tuning graph (pure TF,
    # float tables), on random tables of the registered recipes.
    rng = np.random.default_rng(7)
    model = LutModel(MODEL_STAGES[family])
    for lut in model.luts:
        lut.assign(rng.integers(-127, 128, lut.shape).astype(np.float32))
    for rc in model.rcs:
        if rc is not None:
            rc.assign(rng.normal(0, 1.5, rc.shape).astype(np.float32))
    x = rng.uniform(0, 1, (2, 6, 11, 1)).astype(np.float32)
    fused = model(x).numpy()
    np.testing.assert_array_equal(fused, model(x, training=True).numpy())
    np.testing.assert_array_equal(model.upscale(x).numpy(), fused)
    assert fused.shape == (2, 24, 44, 1)


def test_fallback_without_the_library(monkeypatch):
    rng = np.random.default_rng(3)
    stage = {"scale": 2, "patterns": "SY", "rc": True}
    luts, rcs = _tables(rng, stage)
    image = rng.integers(0, 256, (1, 5, 6, 1)).astype(np.uint8)
    expected = lut_stage_twin(image, luts, rcs, stage).numpy()
    monkeypatch.setattr(_loader, "load", lambda family: None)
    np.testing.assert_array_equal(lut_stage(image, luts, rcs, stage).numpy(), expected)


def test_golden_values(lib):
    # Every entry 16: each of the 4 * P members adds 16 levels, so y = x + 16 (then clipped).
    stage = {"scale": 2, "patterns": "SD"}
    luts = [np.full((17**4, 4), 16, np.int8)] * 2
    image = np.array([[10, 250], [0, 128]], np.uint8).reshape(1, 2, 2, 1)
    levels = lut_stage(image, luts, [], stage).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(levels, [[26, 26, 255, 255]] * 2 + [[16, 16, 144, 144]] * 2)
    unit = lut_stage(image, luts, [], stage, last=True).numpy()[0, ::2, ::2, 0]
    np.testing.assert_allclose(unit, np.array([[26, 255], [16, 144]]) / np.float32(255))
    # One table entry: only anchors whose rotated S pattern reads (16, 0, 0, 0) see it.
    lut = np.zeros((17**4, 1), np.int8)
    lut[17**3] = 64  # sample point (1, 0, 0, 0): level 16 at the anchor, 0 elsewhere
    image = np.zeros((1, 3, 3, 1), np.uint8)
    image[0, 1, 1, 0] = 16
    out = lut_stage(image, [lut], [], {"scale": 1, "patterns": "S"}).numpy()[0, :, :, 0]
    # The anchor's 4 rotations all read (16, 0, 0, 0): 4 * 64 / 4 = 64 -> 16 + 64.
    np.testing.assert_array_equal(out, [[0, 0, 0], [0, 80, 0], [0, 0, 0]])


def test_rc_thresholds_are_the_tanh_rounding_boundaries():
    thresholds = rc_thresholds()
    assert thresholds.shape == (255,) and thresholds.dtype == np.float32
    assert np.all(np.diff(thresholds) > 0)

    def level(m):  # float64 tanh, rounded half away from zero
        return np.floor((np.tanh(np.float64(m)) + 1.0) * 127.5 + 0.5)

    below = np.nextafter(thresholds, np.float32(-np.inf))
    np.testing.assert_array_equal(level(thresholds), np.arange(1, 256))
    # Level 128 starts at m = 0; float64 cannot resolve tanh just below 0 (-1e-45 rounds to 127.5).
    assert thresholds[127] == 0.0
    keep = np.arange(255) != 127
    np.testing.assert_array_equal(level(below)[keep], np.arange(0, 255)[keep])
    # The straight-through combine: threshold levels forward, tanh's gradient backward.
    mapped = tf.Variable(np.random.default_rng(0).normal(0, 1, (1, 4, 4, 9)).astype(np.float32))
    with tf.GradientTape() as tape:
        levels = rc_combine(mapped)
    mean = tf.reduce_mean(mapped, -1, keepdims=True)
    np.testing.assert_allclose(levels.numpy(), np.round((np.tanh(mean) + 1) * 127.5), atol=0)
    grad = tape.gradient(levels, mapped).numpy()
    np.testing.assert_allclose(
        grad, np.repeat(127.5 * (1 - np.tanh(mean) ** 2) / 9, 9, -1), rtol=1e-5
    )


def _call(lib, image=None, luts=None, rcs=(), thresholds=None, **attrs):
    args = dict(offsets=[o for tap in PATTERNS["S"] for o in tap], scale=1, out_type=tf.uint8)
    args.update(attrs)
    return lib.tfsr_lut_stage(
        np.zeros((1, 4, 4, 1), np.uint8) if image is None else image,
        luts=[np.zeros((17**4, 1), np.int8)] if luts is None else luts,
        rc_tables=list(rcs),
        rc_thresholds=rc_thresholds() if thresholds is None else thresholds,
        **args,
    )


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"image": np.zeros((4, 4, 1), np.uint8)}, r"image must have shape \(N, H, W, 1\)"),
        ({"image": np.zeros((1, 4, 4, 3), np.uint8)}, r"image must have shape \(N, H, W, 1\)"),
        (
            {"image": np.zeros((1, 1, 4, 1), np.uint8), "offsets": [0, 0, 0, 2, 2, 0, 2, 2]},
            "height and width must be at least 2",
        ),
        ({"luts": [np.zeros((100, 1), np.int8)]}, r"luts\[0\] must have shape \(83521, 1\)"),
        ({"luts": [np.zeros((17**4, 4), np.int8)]}, r"luts\[0\] must have shape \(83521, 1\)"),
        ({"thresholds": np.zeros((3,), np.float32)}, r"rc_thresholds must have shape \(255\)"),
        ({"thresholds": -rc_thresholds()}, "non-decreasing"),
        ({"offsets": [0, 0, 1]}, "8 ints"),
        ({"offsets": [0, 0, 0, 1, 1, 0, -(2**31), 1]}, r"offsets must be in \[-65536, 65536\]"),
        ({"scale": 0}, r"scale must be in \[1, 16\]"),
        ({"interval": 12}, "power of two"),
        ({"windows": [5]}, "one window and one RC table per pattern"),
        ({"windows": [4], "rcs": [np.zeros((16, 256), np.float32)]}, "positive odd"),
        ({"windows": [3], "rcs": [np.zeros((8, 256), np.float32)]}, r"rc_tables\[0\].*\(9, 256\)"),
    ],
)
def test_bad_inputs_are_invalid_argument_errors(lib, kwargs, message):
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=message):
        _call(lib, **kwargs)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"luts": [np.zeros((100, 1), np.int8)]}, "must be 83521 but is 100"),
        ({"luts": [np.zeros((17**4, 4), np.int8)]}, "must be 1 but is 4"),
        ({"luts": [np.zeros((9**4, 16), np.int8)], "scale": 4}, "must be 83521 but is 6561"),
        ({"thresholds": np.zeros((3,), np.float32)}, "must be 255 but is 3"),
        ({"windows": [5]}, r"windows must hold one side per RC table \(0\), got 1"),
        ({"windows": [3], "rcs": [np.zeros((8, 256), np.float32)]}, "must be 9 but is 8"),
        ({"windows": [3], "rcs": [np.zeros((9, 255), np.float32)]}, "must be 256 but is 255"),
    ],
)
def test_shape_function_refuses_what_the_kernel_would(lib, kwargs, message):
    """In a graph the mistakes surface when the op is added, not when it first runs."""
    with pytest.raises(ValueError, match=message):
        tf.function(lambda: _call(lib, **kwargs)).get_concrete_function()
    # The same call with the interval these tables were sampled at traces.
    if kwargs.get("luts", [None])[0] is not None and len(kwargs["luts"][0]) == 9**4:
        tf.function(lambda: _call(lib, interval=32, **kwargs)).get_concrete_function()


def test_wrong_dtypes_are_errors(lib):
    with pytest.raises((tf.errors.InvalidArgumentError, TypeError)):
        _call(lib, image=tf.zeros((1, 4, 4, 1), tf.float32))
    with pytest.raises((tf.errors.InvalidArgumentError, TypeError)):
        _call(lib, luts=[tf.zeros((17**4, 1), tf.float32)])
    with pytest.raises(ValueError, match="uint8 levels"):
        lut_stage(
            np.zeros((1, 4, 4, 1), np.float32),
            [np.zeros((17**4, 1), np.int8)],
            [],
            {"scale": 1, "patterns": "S"},
        )
    with pytest.raises(ValueError, match="needs 2 tables"):
        lut_stage(
            np.zeros((1, 4, 4, 1), np.uint8),
            [np.zeros((17**4, 1), np.int8)],
            [],
            {"scale": 1, "patterns": "SY"},
        )
