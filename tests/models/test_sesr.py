"""SESR: structure, collapse to plain convolutions, x4 from x2, serialisation, errors."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfsr.layers import CollapsibleLinearBlock
from tfsr.models.registry import get_model_spec
from tfsr.models.sesr import SESR_CONFIGS, collapse_model, init_from, sesr, sesr_model

TINY = dict(num_filters=4, num_blocks=2, expanded_filters=8)


def _randomize(model, seed=0, scale=0.5):
    """Random weights, biases and PReLU slopes included, keeping activations ~ 0.1."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights(
            [
                rng.normal(
                    0.0, scale / np.sqrt(np.prod(w.shape[:-1]) if w.ndim > 1 else 10.0), w.shape
                ).astype("float32")
                for w in layer.get_weights()
            ]
        )
    return model


def _image(shape, seed=1):
    return np.random.default_rng(seed).uniform(0.2, 0.8, shape).astype("float32")


def _nearest(x, scale):
    return np.repeat(np.repeat(x, scale, axis=1), scale, axis=2)


def _reference_forward(model, x, scale, activation):
    """The SESR equations written out with tf.nn on the blocks' collapsed weights."""

    def block(name, h):
        kernel, bias = model.get_layer(name).collapse()
        return tf.nn.conv2d(h, kernel, 1, "SAME") + bias

    first = h = block("first_block", x)
    m = sum(isinstance(layer, CollapsibleLinearBlock) for layer in model.layers) - 2
    for i in range(1, m + 1):
        h = block(f"block_{i}", h)
        if activation == "prelu":
            alpha = model.get_layer(f"prelu_{i}").get_weights()[0]
            h = tf.where(h > 0, h, alpha * h)
        else:
            h = tf.nn.relu(h)
    r = block("last_block", h + first) + tf.tile(x, [1, 1, 1, scale * scale])
    if scale == 4:
        y = tf.nn.depth_to_space(tf.nn.depth_to_space(r, 2), 2)
    else:
        y = tf.nn.depth_to_space(r, scale)
    return np.clip(y.numpy(), 0.0, 1.0)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("activation, channels", [("prelu", 1), ("relu", 3)])
def test_matches_written_out_equations(scale, activation, channels):
    model = _randomize(
        sesr(scale=scale, activation=activation, input_channels=channels, **TINY), seed=scale
    )
    x = _image((2, 5, 7, channels))
    y = model(x).numpy()
    assert y.shape == (2, 5 * scale, 7 * scale, channels)
    want = _reference_forward(model, x, scale, activation)
    np.testing.assert_allclose(y, want, atol=1e-5)
    assert 0.5 < np.mean((want > 0) & (want < 1))  # the clip does not hide the network


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("channels", [1, 3])
def test_zero_weights_give_nearest_upsampling(scale, channels):
    # Checks the channel order of the nearest residual against the pixel shuffle(s).
    model = sesr(scale=scale, input_channels=channels, **TINY)
    for layer in model.layers:
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    x = _image((1, 3, 4, channels))
    np.testing.assert_array_equal(model(x).numpy(), _nearest(x, scale))


def test_output_clipped_and_unknown_size():
    model = sesr(**TINY)
    assert model.input_shape == (None, None, None, 1)
    assert model.output_shape == (None, None, None, 1)
    x = np.array([0.0, 1.0, 0.5, 1.0], "float32").reshape(1, 2, 2, 1) * 3.0 - 1.0
    y = model(x).numpy()
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert model(_image((1, 9, 2, 1))).shape == (1, 18, 4, 1)


@pytest.mark.parametrize("scale", [2, 4])
def test_collapse_model_equal_outputs_no_expanded_weights(scale):
    model = _randomize(sesr(scale=scale, num_filters=6, num_blocks=3, expanded_filters=24), seed=4)
    collapsed = collapse_model(model)
    x = _image((2, 8, 6, 1))
    np.testing.assert_allclose(collapsed(x).numpy(), model(x).numpy(), atol=1e-5)
    kinds = {type(layer).__name__ for layer in collapsed.layers}
    assert "CollapsibleLinearBlock" not in kinds and "Conv2D" in kinds
    convs = [layer for layer in collapsed.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.name, c.kernel.shape) for c in convs] == [
        ("first_block", (5, 5, 1, 6)),
        ("block_1", (3, 3, 6, 6)),
        ("block_2", (3, 3, 6, 6)),
        ("block_3", (3, 3, 6, 6)),
        ("last_block", (5, 5, 6, scale * scale)),
    ]
    # 25*6+6 + 3*(9*36+6) + 3*6 (PReLU) + 25*6*s^2 + s^2
    assert collapsed.count_params() == 156 + 990 + 18 + 151 * scale * scale
    assert collapsed.name == model.name + "_collapsed"


def test_collapsed_param_counts_of_named_variants():
    # Conv weights + biases + PReLU slopes; the paper's counts (13.5K, 105K) omit the last two.
    assert collapse_model(sesr_model("m5")).count_params() == 13520 + (16 * 6 + 4) + 16 * 5
    assert collapse_model(sesr_model("xl")).count_params() == 105376 + (32 * 12 + 4) + 32 * 11


def test_expanded_and_collapsed_training_forms_agree():
    collapsed = _randomize(sesr(**TINY), seed=2)
    expanded = sesr(collapsed_training=False, **TINY)
    expanded.set_weights(collapsed.get_weights())
    x = _image((1, 6, 6, 1))
    np.testing.assert_allclose(expanded(x).numpy(), collapsed(x).numpy(), atol=1e-5)


def test_init_from_x2_gives_x4_that_upsamples_x2():
    src = _randomize(sesr(scale=2, **TINY), seed=5)
    dst = sesr(scale=4, collapsed_training=False, **TINY)
    copied = init_from(dst, src)
    assert copied == ["first_block", "block_1", "prelu_1", "block_2", "prelu_2", "last_block"]
    for name in copied[:-1]:
        for a, b in zip(
            dst.get_layer(name).get_weights(), src.get_layer(name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(a, b)
    x = _image((2, 5, 4, 1))
    y2 = src(x).numpy()
    assert 0.5 < np.mean((y2 > 0) & (y2 < 1))
    np.testing.assert_allclose(dst(x).numpy(), _nearest(y2, 2), atol=1e-5)


def test_init_from_x2_to_x4_rgb_channel_order():
    src = _randomize(sesr(scale=2, input_channels=3, **TINY), seed=6)
    dst = sesr(scale=4, input_channels=3, **TINY)
    init_from(dst, src)
    x = _image((1, 4, 4, 3))
    np.testing.assert_allclose(dst(x).numpy(), _nearest(src(x).numpy(), 2), atol=1e-5)


def test_init_from_between_collapsed_networks():
    src = collapse_model(_randomize(sesr(scale=2, **TINY), seed=10))
    dst = collapse_model(sesr(scale=4, **TINY))
    assert "last_block" in init_from(dst, src)
    x = _image((1, 4, 5, 1))
    np.testing.assert_allclose(dst(x).numpy(), _nearest(src(x).numpy(), 2), atol=1e-5)


@pytest.mark.parametrize("dst_scale", [2, 4])
def test_init_from_collapsed_starts_training_network(dst_scale):
    src = collapse_model(_randomize(sesr(scale=2, **TINY), seed=11))
    # A collapsed network carries no expanded width; x4's last block needs p >= its 16 outputs.
    dst = sesr(scale=dst_scale, **{**TINY, "expanded_filters": 16})
    copied = init_from(dst, src)
    assert copied == ["first_block", "block_1", "prelu_1", "block_2", "prelu_2", "last_block"]
    x = _image((1, 5, 6, 1))
    np.testing.assert_allclose(dst(x).numpy(), _nearest(src(x).numpy(), dst_scale // 2), atol=1e-5)
    assert isinstance(dst.get_layer("block_1"), CollapsibleLinearBlock)


@pytest.mark.parametrize("src_activation, dst_activation", [("relu", "prelu"), ("prelu", "relu")])
def test_init_from_collapsed_other_activation_keeps_last_block(src_activation, dst_activation):
    src = collapse_model(_randomize(sesr(activation=src_activation, **TINY), seed=12))
    dst = sesr(activation=dst_activation, **TINY)
    assert "last_block" in init_from(dst, src, body_only=True)
    if src_activation == "relu":  # PReLU starts at slope 0: dst computes src exactly
        x = _image((1, 5, 4, 1))
        np.testing.assert_allclose(dst(x).numpy(), src(x).numpy(), atol=1e-5)


def test_init_from_takes_only_plain_convolutions_as_collapsed_blocks():
    def dilate(layer):  # block_1 as a dilated Conv2D: the same weight shapes, another function
        config = layer.get_config()
        if layer.name == "block_1":
            config["dilation_rate"] = (2, 2)
        return layer.__class__.from_config(config)

    src = keras.models.clone_model(collapse_model(sesr(**TINY)), clone_function=dilate)
    with pytest.raises(ValueError, match="'block_1' is a Conv2D in src but a Collapsible"):
        init_from(sesr(**TINY), src)


def test_init_from_x3_keeps_own_last_block():
    src = _randomize(sesr(scale=2, **TINY), seed=7)
    dst = sesr(scale=3, **TINY)
    before = dst.get_layer("last_block").get_weights()
    assert "last_block" not in init_from(dst, src)
    for a, b in zip(dst.get_layer("last_block").get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        dst.get_layer("block_2").get_weights()[0], src.get_layer("block_2").get_weights()[0]
    )


@pytest.mark.parametrize(
    "dst_kwargs, match",
    [
        (dict(num_blocks=3), "layers with weights in only one model: block_3, prelu_3"),
        (dict(activation="relu"), "layers with weights in only one model: prelu_1, prelu_2"),
        (dict(expanded_filters=16), "layer 'first_block' has weight shapes"),
        (dict(num_filters=5), "layer 'first_block' has weight shapes"),
    ],
)
def test_init_from_incompatible(dst_kwargs, match):
    src = sesr(**TINY)
    dst = sesr(**{**TINY, **dst_kwargs})
    with pytest.raises(ValueError, match=f"init_from: .*{match}"):
        init_from(dst, src)


def test_init_from_training_network_into_collapsed_is_a_type_error():
    src = sesr(**TINY)
    with pytest.raises(ValueError, match="'first_block' is a CollapsibleLinearBlock in src but a "):
        init_from(collapse_model(sesr(**TINY)), src)


def test_config_round_trip_and_save_load(tmp_path):
    model = _randomize(sesr(scale=4, **TINY), seed=8)
    clone = keras.Model.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    x = _image((1, 5, 5, 1))
    path = os.path.join(tmp_path, "sesr.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_array_equal(restored(x).numpy(), model(x).numpy())
    collapsed = collapse_model(model)
    collapsed.save(path)
    np.testing.assert_array_equal(keras.models.load_model(path)(x).numpy(), collapsed(x).numpy())


def test_one_training_step_updates_expanded_weights():
    model = _randomize(sesr(**TINY), seed=9)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mae")
    before = model.get_layer("block_1").get_weights()
    x = _image((2, 6, 6, 1))
    model.train_on_batch(x, _image((2, 12, 12, 1), seed=3))
    after = model.get_layer("block_1").get_weights()
    assert all(not np.array_equal(a, b) for a, b in zip(after, before, strict=True))


def test_xl_trains_at_p256_and_collapses_to_the_papers_network():
    widths = {}
    for p in (None, 64):
        model = sesr_model("xl", expanded_filters=p)
        blocks = [layer for layer in model.layers if isinstance(layer, CollapsibleLinearBlock)]
        widths[p] = {b.expanded_filters for b in blocks}
        assert collapse_model(model).count_params() == 105376 + (32 * 12 + 4) + 32 * 11
    assert widths == {None: {256}, 64: {64}}


def test_run_option_expanded_filters():
    def widths(model):
        return {
            layer.expanded_filters for layer in model.layers if hasattr(layer, "expanded_filters")
        }

    for name in ("sesr_m11", "sesr_dysample"):
        spec = get_model_spec(name)
        assert widths(spec.build_run_model(2, "prelu", expanded_filters=0)) == {256}
        assert widths(spec.build_run_model(2, "prelu", expanded_filters=32)) == {32}
    with pytest.raises(ValueError, match="model 'rclut_x4' takes no --expanded_filters"):
        get_model_spec("rclut_x4").build_run_model(4, "prelu", expanded_filters=64)


def test_named_variants():
    assert set(SESR_CONFIGS) == {"m3", "m5", "m7", "m11", "xl"}
    assert SESR_CONFIGS["xl"] == dict(num_filters=32, num_blocks=11, expanded_filters=64)
    model = sesr_model("M3", scale=3, activation="relu")
    assert model.name == "sesr_m3_x3"
    blocks = [layer for layer in model.layers if isinstance(layer, CollapsibleLinearBlock)]
    assert [(b.kernel_size, b.filters, b.expanded_filters) for b in blocks] == [
        (5, 16, 256),
        (3, 16, 256),
        (3, 16, 256),
        (3, 16, 256),
        (5, 9, 256),
    ]
    assert [b.residual for b in blocks] == [False, True, True, True, False]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scale=5), "scale must be one of \\(2, 3, 4\\), got 5"),
        (dict(scale="2"), "scale must be one of \\(2, 3, 4\\), got '2'"),
        (dict(scale=2.0), "scale must be one of \\(2, 3, 4\\), got 2.0"),
        (dict(activation="gelu"), "activation must be one of \\('prelu', 'relu'\\), got 'gelu'"),
        (dict(num_blocks=0), "num_blocks must be a positive integer, got 0"),
        (dict(expanded_filters=2.5), "expanded_filters must be a positive integer, got 2.5"),
        (dict(input_channels=None), "input_channels must be a positive integer, got None"),
    ],
)
def test_bad_sesr_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sesr(**kwargs)


def test_bad_variant_arguments():
    with pytest.raises(ValueError, match="unknown SESR variant 'm4'; expected one of m3, m5"):
        sesr_model("m4")
    with pytest.raises(ValueError, match="num_blocks is fixed by variant 'm5'"):
        sesr_model("m5", num_blocks=3)


def test_collapse_model_needs_a_graph_model():
    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="needs a Functional or Sequential model, got Sub"):
        collapse_model(Sub())


def test_save_and_load_collapsed(tmp_path):
    from tfsr.models.sesr import load_collapsed, save_collapsed
    from tfsr.npz_header import decode_header, encode_header

    model = sesr_model("m3", scale=4)
    rng = np.random.default_rng(1)
    for w in model.weights:
        w.assign(rng.normal(0, 0.05, w.shape).astype(np.float32))
    path = str(tmp_path / "m3.npz")
    save_collapsed(model, path, variant="m3", activation="prelu")
    restored = load_collapsed(path)
    x = rng.uniform(0, 1, (1, 12, 10, 1)).astype(np.float32)
    np.testing.assert_allclose(restored(x).numpy(), model(x).numpy(), atol=1e-5)
    assert os.path.getsize(path) < 60_000

    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = decode_header(arrays["header"])
    np.savez(
        str(tmp_path / "v9.npz"),
        **{**arrays, "header": encode_header({**header, "version": 9})},
    )
    with pytest.raises(
        ValueError, match="expected format tfsr-sesr version 1, got 'tfsr-sesr' version 9"
    ):
        load_collapsed(str(tmp_path / "v9.npz"))
    np.savez(
        str(tmp_path / "x2.npz"),
        **{**arrays, "header": encode_header({**header, "scale": 2})},
    )
    with pytest.raises(
        ValueError,
        match=r"x2.npz: layer last_block: .* weight shape \(5, 5, 16, 4\) is not compatible",
    ):
        load_collapsed(str(tmp_path / "x2.npz"))
    np.savez(
        str(tmp_path / "novariant.npz"),
        **{**arrays, "header": encode_header({k: v for k, v in header.items() if k != "variant"})},
    )
    with pytest.raises(ValueError, match="novariant.npz: the header lacks variant"):
        load_collapsed(str(tmp_path / "novariant.npz"))
    np.savez(
        str(tmp_path / "m9.npz"),
        **{**arrays, "header": encode_header({**header, "variant": "m9"})},
    )
    with pytest.raises(ValueError, match="m9.npz: the header describes no SESR model: unknown"):
        load_collapsed(str(tmp_path / "m9.npz"))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(
        ValueError, match="is not a tfsr SESR weights file: it is not a zip of arrays"
    ):
        load_collapsed(str(tmp_path / "junk.npz"))
    whole = (tmp_path / "v9.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(
        ValueError, match="truncated.npz is not a tfsr SESR .*corrupted or truncated"
    ):
        load_collapsed(str(tmp_path / "truncated.npz"))
    np.save(str(tmp_path / "lone.npy"), np.zeros(3))
    with pytest.raises(ValueError, match="holds one array, not a zip of named arrays"):
        load_collapsed(str(tmp_path / "lone.npy"))
    with pytest.raises(FileNotFoundError, match="missing.npz does not exist"):
        load_collapsed(str(tmp_path / "missing.npz"))


def test_init_from_body_only_starts_sesr_dysample_from_sesr():
    from tfsr.models.sesr_dysample import sesr_dysample

    src = _randomize(sesr(scale=2), seed=11)
    dst = sesr_dysample(scale=2)
    with pytest.raises(ValueError, match="layers with weights in only one model: dysample"):
        init_from(dst, src)
    copied = init_from(dst, src, body_only=True)
    assert copied[0] == "first_block" and "dysample" not in copied and "last_block" not in copied
    assert len(copied) == 11  # first block, 5 blocks, 5 PReLUs
    for name in copied:
        for a, b in zip(
            dst.get_layer(name).get_weights(), src.get_layer(name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(a, b)


def test_init_from_body_only_needs_a_body():
    src = keras.Sequential([keras.layers.Conv2D(2, 3, name="conv")])
    src.build((None, 8, 8, 1))
    with pytest.raises(ValueError, match="no SESR body"):
        init_from(sesr(**TINY), src, body_only=True)


def test_init_from_body_only_refuses_another_depth():
    # An M2-like body into an M3-like one (or back) would leave a block untrained behind copied
    # ones (or drop a trained one): refused, naming the blocks.
    two = sesr(scale=2, **TINY)
    three = sesr(scale=2, **{**TINY, "num_blocks": 3})
    with pytest.raises(
        ValueError, match="bodies differ .*only in src .*: none; only in dst .*block_3"
    ):
        init_from(three, two, body_only=True)
    with pytest.raises(ValueError, match="bodies differ .*only in src .*: block_3; only in dst"):
        init_from(two, three, body_only=True)


def test_init_from_sesr_dysample_x2_to_x4_keeps_x4_dysample():
    from tfsr.models.sesr_dysample import sesr_dysample

    src = _randomize(sesr_dysample(scale=2), seed=12)
    dst = sesr_dysample(scale=4)
    before = dst.get_layer("dysample").get_weights()
    copied = init_from(dst, src)
    assert "dysample" not in copied and "last_block" in copied
    for a, b in zip(dst.get_layer("dysample").get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_init_from_body_only_starts_relu_from_prelu_with_its_last_block():
    src = _randomize(sesr(scale=2, **TINY), seed=13)
    dst = sesr(scale=2, activation="relu", **TINY)
    copied = init_from(dst, src, body_only=True)
    assert copied == ["first_block", "block_1", "block_2", "last_block"]
