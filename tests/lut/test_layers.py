"""LUT-convertible layers and networks: patterns, rotation ensemble, RC module, units, LutNet."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfsr.lut import LutNet, LutUnit, RcModule, lut_net
from tfsr.lut.networks import functional_lut_net, normalize_stages
from tfsr.lut.patterns import gather_pattern, quantize_levels, rot90, run_stages
from tfsr.lut.rc_module import rc_combine, rc_mean, window_taps
from tfsr.models.registry import get_model_spec
from tfsr.testing import run_layer_test


def _levels(rng, shape):
    return np.round(rng.uniform(0, 255, shape)).astype(np.float32)


@pytest.mark.parametrize(
    "pattern,taps",
    [
        ("S", [(0, 0), (0, 1), (1, 0), (1, 1)]),
        ("D", [(0, 0), (0, 2), (2, 0), (2, 2)]),
        ("Y", [(0, 0), (1, 1), (1, 2), (2, 1)]),
    ],
)
def test_gather_pattern_golden(pattern, taps):
    z = np.arange(30, dtype=np.float32).reshape(1, 5, 6, 1)
    out = gather_pattern(tf.constant(z), pattern).numpy()
    assert out.shape == (1, 5, 6, 4)
    for k, (r, c) in enumerate(taps):
        assert out[0, 1, 2, k] == z[0, 1 + r, 2 + c, 0]
    # Symmetric padding at the bottom-right corner: row/column 5 mirrors 4, 6 mirrors 3.
    padded = np.pad(z[0, :, :, 0], ((0, 2), (0, 2)), mode="symmetric")
    r, c = taps[3]
    assert out[0, 4, 5, 3] == padded[4 + r, 5 + c]


def test_window_taps_and_rot90_match_numpy():
    z = np.round(np.random.default_rng(0).uniform(0, 255, (2, 6, 7, 1))).astype(np.float32)
    padded = np.pad(z, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="symmetric")
    expected = np.concatenate(
        [padded[:, i : i + 6, j : j + 7] for i in range(5) for j in range(5)], axis=-1
    )
    np.testing.assert_array_equal(window_taps(tf.constant(z), 5).numpy(), expected)
    for k in range(-1, 6):
        np.testing.assert_array_equal(rot90(tf.constant(z), k).numpy(), np.rot90(z, k, (1, 2)))


def test_quantize_levels_rounds_and_passes_gradient():
    x = tf.Variable([0.0, 0.5 / 255, 1.49 / 255, 1.0, 1.2])
    with tf.GradientTape() as tape:
        q = quantize_levels(x)
    np.testing.assert_array_equal(q.numpy(), [0, 1, 1, 255, 255])
    np.testing.assert_allclose(tape.gradient(q, x).numpy(), [255, 255, 255, 255, 0])


def test_run_stages_rotation_ensemble_golden():
    # Constant residuals: the ensemble of the four rotations averages the rotated-back outputs.
    x = _levels(np.random.default_rng(0), (1, 3, 4, 1))

    def unit(s, p, levels):
        return tf.ones_like(levels) * 4.0  # +4 levels in every rotation

    out = run_stages(tf.constant(x), [{"scale": 1, "patterns": "S"}], unit).numpy()
    np.testing.assert_allclose(out * 255, np.clip(x + 4.0, 0, 255), atol=1e-4)

    def scale2(s, p, levels):  # sub-pixel (0, 0) of the rotated frame gets +8
        return tf.concat(
            [tf.fill(tf.shape(levels), 8.0), tf.zeros_like(levels)[..., :1] * 0]
            + [tf.zeros_like(levels)] * 2,
            axis=-1,
        )

    out = run_stages(tf.constant(x), [{"scale": 2, "patterns": "S"}], scale2).numpy()[0, :, :, 0]
    base = np.repeat(np.repeat(x[0, :, :, 0], 2, 0), 2, 1)
    # Each of the 4 sub-pixels is the (0, 0) sub-pixel of exactly one rotation: +8 / 4 = +2.
    np.testing.assert_allclose(out * 255, np.clip(base + 2.0, 0, 255), atol=1e-4)


def test_run_stages_rotates_back_the_right_way():
    # A unit that returns its own (rotated) input: rotated back, every rotation gives x again,
    # so the stage gives x + x. Rotating back the wrong way (by +k instead of -k) would add the
    # 180-degree-rotated image for k = 1 and 3, which the constant units above cannot notice.
    x = _levels(np.random.default_rng(5), (1, 5, 5, 1)) / 2.0

    def identity(s, p, levels):
        return levels

    out = run_stages(tf.constant(x), [{"scale": 1, "patterns": "S"}], identity).numpy()
    np.testing.assert_allclose(out * 255, np.clip(2 * x, 0, 255), atol=1e-3)


def test_rc_module_layer():
    rng = np.random.default_rng(1)
    run_layer_test(
        RcModule,
        {"window": 3, "filters": 4},
        (2, 6, 7, 1),
        input_data=_levels(rng, (2, 6, 7, 1)),
        expected_output_shape=(2, 6, 7, 1),
    )


def test_rc_module_table_matches_the_layer():
    rng = np.random.default_rng(2)
    rc = RcModule(window=3, filters=5)
    x = _levels(rng, (1, 6, 6, 1))
    out = rc(x).numpy()
    table = rc.mapping_table().numpy()  # (9, 256)
    padded = np.pad(x[0, :, :, 0], 1, mode="symmetric").astype(int)
    mapped = np.stack(
        [table[3 * i + j][padded[i : i + 6, j : j + 6]] for i in range(3) for j in range(3)], -1
    )
    # The layer is its tables: combining the table values gives exactly its output.
    expected = rc_combine(tf.constant(mapped[None], tf.float32)).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(out[0, :, :, 0], expected)
    # ... which is round((tanh(mean) + 1) * 127.5), up to a .5 tie flipped by float rounding.
    np.testing.assert_allclose(expected, np.round((np.tanh(mapped.mean(-1)) + 1) * 127.5), atol=1)


def test_rc_module_reads_its_tables_with_the_mlp_gradients():
    """The layer looks its mappings up in tables: values and gradients (to the weights and to
    the levels, which carry the previous stage's straight-through gradient) are the per-pixel
    MLP's."""
    rng = np.random.default_rng(3)
    rc = RcModule(window=5, filters=6)
    levels = tf.constant(_levels(rng, (2, 7, 9, 1)))
    upstream = tf.constant(rng.normal(size=(2, 7, 9, 1)).astype(np.float32))

    def run(fn):
        with tf.GradientTape() as tape:
            tape.watch(levels)
            out = fn(levels)
            loss = tf.reduce_sum(out * upstream)
        return out.numpy(), tape.gradient(loss, [levels, *rc.trainable_variables])

    out, grads = run(rc)
    mlp_out, mlp_grads = run(lambda x: rc_combine(rc.mapping(window_taps(x, 5))))
    np.testing.assert_array_equal(out, mlp_out)
    assert np.abs(grads[0].numpy()).max() > 0
    for got, want in zip(grads, mlp_grads, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)  # sum order


def test_rc_mean_gradient_is_the_mean_gradient():
    mapped = tf.constant(np.random.default_rng(4).normal(size=(2, 3, 4, 9)).astype(np.float32))
    upstream = tf.constant(np.random.default_rng(5).normal(size=(2, 3, 4, 1)).astype(np.float32))
    grads = []
    for mean in (rc_mean, lambda m: tf.reduce_mean(m, -1, keepdims=True)):
        with tf.GradientTape() as tape:
            tape.watch(mapped)
            loss = tf.reduce_sum(mean(mapped) * upstream)
        grads.append(tape.gradient(loss, mapped).numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)


def test_rc_module_units_start_alive():
    # A ReLU unit that is zero on all of [0, 1] never gets a gradient: at initialisation every
    # unit must be active for some level (its kink inside the input range).
    keras.utils.set_random_seed(0)
    rc = RcModule(window=5, filters=16)
    rc.build((None, None, None, 1))
    v = tf.linspace(0.0, 1.0, 256)[:, None, None]  # (256, 1, 1)
    hidden = tf.nn.relu(v * rc.w1 + rc.b1)  # (256, K, filters)
    alive = tf.reduce_any(hidden > 0, axis=0).numpy()
    assert alive.mean() > 0.98


def test_rc_module_bad_window():
    with pytest.raises(ValueError, match="window must be a positive odd int, got 4"):
        RcModule(window=4)


def test_lut_unit_layer_and_table():
    rng = np.random.default_rng(3)
    run_layer_test(
        LutUnit,
        {"scale": 2, "filters": 8, "depth": 2},
        (2, 5, 5, 4),
        input_data=_levels(rng, (2, 5, 5, 4)),
        expected_output_shape=(2, 5, 5, 4),
    )
    unit = LutUnit(scale=2, filters=8, depth=2)
    table = unit.table(interval=64).numpy()  # 5**4 rows
    assert table.shape == (625, 4) and table.dtype == np.int8
    # Row of sample point (1, 2, 4, 0): levels (64, 128, 256, 0): the last point is where the
    # interpolation puts it, 4 * 64 (an input of 255 lies 63/64 of the way there).
    row = (1 * 5 + 2) * 5 * 5 + 4 * 5 + 0
    expected = unit(np.array([[64.0, 128.0, 256.0, 0.0]], np.float32)).numpy()[0]
    np.testing.assert_array_equal(table[row], np.round(expected).astype(np.int8))


def test_dense_lut_unit_matches_numpy():
    # MuLUT's units: hidden layer i > 0 reads all earlier hidden outputs; the output layer all.
    rng = np.random.default_rng(3)
    x = _levels(rng, (2, 3, 4))
    run_layer_test(
        LutUnit,
        {"scale": 2, "filters": 4, "depth": 3, "dense": True},
        (2, 3, 4),
        input_data=x,
        expected_output_shape=(2, 3, 4),
    )
    unit = LutUnit(scale=2, filters=4, depth=3, dense=True)
    out = unit(x).numpy()
    assert [layer.kernel.shape[0] for layer in unit.hidden + [unit.out]] == [4, 4, 8, 12]
    relu = lambda v: np.maximum(v, 0.0)  # noqa: E731
    dense = lambda layer, v: v @ layer.kernel.numpy() + layer.bias.numpy()  # noqa: E731
    h1 = relu(dense(unit.hidden[0], x / 255.0))
    h2 = relu(dense(unit.hidden[1], h1))
    h3 = relu(dense(unit.hidden[2], np.concatenate([h1, h2], -1)))
    expected = 127.0 * np.tanh(dense(unit.out, np.concatenate([h1, h2, h3], -1)))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)


def test_lut_unit_bad_arguments():
    with pytest.raises(ValueError, match="scale must be a positive integer, got 0"):
        LutUnit(scale=0)


def test_normalize_stages_errors():
    with pytest.raises(ValueError, match="unknown sampling pattern 'Q'"):
        normalize_stages([{"scale": 1, "patterns": "SQ"}])
    with pytest.raises(ValueError, match="stage 0: scale must be a positive integer"):
        normalize_stages([{"scale": 0, "patterns": "S"}])
    with pytest.raises(ValueError, match="distinct letters"):
        normalize_stages([{"scale": 1, "patterns": "SS"}])
    with pytest.raises(ValueError, match="stage 1: scale 17 is above 16"):
        normalize_stages([{"scale": 1, "patterns": "S"}, {"scale": 17, "patterns": "S"}])
    with pytest.raises(ValueError, match="non-empty list"):
        normalize_stages([])


def test_lut_net_save_load_and_shapes(tmp_path):
    net = LutNet(
        [{"scale": 1, "patterns": "SY", "rc": True}, {"scale": 2, "patterns": "D"}],
        filters=8,
        depth=1,
        rc_filters=4,
    )
    x = np.random.default_rng(4).uniform(0, 1, (2, 7, 5, 1)).astype(np.float32)
    y = net(x).numpy()
    assert y.shape == (2, 14, 10, 1) and y.min() >= 0 and y.max() <= 1
    model = functional_lut_net(net)
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_array_equal(restored(x).numpy(), y)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(net(x, training=True))
    grads = tape.gradient(loss, net.trainable_variables)
    # Every variable learns, the RC modules too (through the straight-through rounding).
    assert all(g is not None and float(tf.norm(g)) > 0 for g in grads)


@pytest.mark.parametrize(
    "name,tables,filters",
    [
        ("srlut_x4", 1, 32),
        ("srlut_dense_x4", 1, 64),
        ("mulut_x4", 6, 32),
        ("rclut_x4", 3, 32),
        ("rclut_wide_x4", 3, 64),
        ("rclut_dense_x4", 3, 64),
    ],
)
def test_registered_models(name, tables, filters):
    model = get_model_spec(name).build(scale=4)
    assert len(model.units) == tables
    assert {unit.filters for unit in model.units} == {filters}
    assert {unit.dense for unit in model.units} == {"dense" in name}
    assert model(np.zeros((1, 3, 3, 1), np.float32)).shape == (1, 12, 12, 1)
    assert lut_net("srlut", scale=2).scale == 2


def test_lut_net_computes_in_float32_under_mixed_precision():
    # train.py --mixed_precision sets a global bfloat16 policy; the RC thresholds and level
    # arithmetic must stay float32 (bfloat16 failed inside searchsorted).
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        net = lut_net("rclut", scale=4, filters=8, depth=1, rc_filters=4)
        x = tf.random.uniform((2, 12, 12, 1), seed=1)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(net(x, training=True))
        grads = tape.gradient(loss, net.trainable_variables)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert {v.dtype for v in net.variables} == {tf.float32}
    assert all(g is not None for g in grads)


def test_rc_module_levels_out_of_range_do_not_fail():
    """Levels outside [0, 255] are clipped; a NaN level (a diverged previous stage) gives NaN,
    for the training loop's divergence check, not a gather error."""
    rc = RcModule(window=3, filters=4)
    inside = np.full((1, 4, 4, 1), 255.0, np.float32)
    outside = inside.copy()
    outside[0, 1, 1, 0] = 300.0
    np.testing.assert_array_equal(rc(outside).numpy(), rc(inside).numpy())
    outside[0, 1, 1, 0] = np.nan
    out = rc(outside).numpy()
    assert np.isnan(out).any() and not np.isnan(out[0, 3, 3, 0])
