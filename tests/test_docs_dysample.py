"""Runs the code of docs/dysample.md and checks what it claims."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "dysample.md")


@pytest.fixture(scope="module")
def namespace():
    """The doc's python blocks, run in order in one namespace."""
    with open(DOC) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    assert len(blocks) == 2, "the doc should hold a usage block and the FPN block"
    ns = {}
    for block in blocks:
        exec(compile(block, DOC, "exec"), ns)  # noqa: S102 - our own documentation
    return ns


def test_usage_block(namespace):
    up, features = namespace["up"], namespace["features"]
    assert up.get_config()["dynamic_scope"] is True and up.style == "lp"
    out = up(features).numpy()
    assert out.shape == (1, 32, 32, 32)
    diff = np.abs(out - tf.image.resize(features, (32, 32), "bilinear").numpy())
    assert 0.0 < diff.max() < 0.01


def test_fpn_block_shapes(namespace):
    assert [tuple(o.shape) for o in namespace["outputs"]] == [
        (1, 32, 32, 32),
        (1, 16, 16, 32),
        (1, 8, 8, 32),
    ]
    ups = [layer.name for layer in namespace["model"].layers if layer.name.startswith("up_")]
    assert sorted(ups) == ["up_0", "up_1"]


def test_fpn_with_zeroed_offsets_is_the_bilinear_fpn(namespace):
    """Rebuilds the top-down pathway from the model's own layers with tf.image.resize."""
    model = namespace["model"]
    for name in ("up_0", "up_1"):
        kernel = model.get_layer(name).offset_kernel
        kernel.assign(tf.zeros_like(kernel))
    image = np.random.default_rng(0).uniform(size=(1, 64, 64, 3)).astype(np.float32)
    convs = [layer for layer in model.layers if layer.name.startswith("conv2d")]  # backbone
    assert len(convs) == 3
    x, pyramid = image, []
    for conv in convs:
        x = conv(x)
        pyramid.append(x)
    merged = [model.get_layer("lateral_2")(pyramid[2])]
    for i in (1, 0):
        coarse = merged[0]
        size = (2 * coarse.shape[1], 2 * coarse.shape[2])
        lateral = model.get_layer(f"lateral_{i}")(pyramid[i])
        merged.insert(0, lateral + tf.image.resize(coarse, size, "bilinear"))
    want = [model.get_layer(f"smooth_{i}")(m).numpy() for i, m in enumerate(merged)]
    got = model(image)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.numpy(), w, atol=1e-5)
