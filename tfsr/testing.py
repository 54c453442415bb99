"""Shared test helpers: one layer test and one gradient check, used by every test module.

These live in the library (not in ``tests/``) so that users who write their own layers on top of
tfsr can hold them to the same standard.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _random_inputs(input_shapes, rng, dtype="float32"):
    return [rng.uniform(-1.0, 1.0, size=s).astype(dtype) for s in input_shapes]


def run_layer_test(
    layer_cls: type[keras.layers.Layer],
    init_kwargs: dict,
    input_shape: Sequence[int] | Sequence[Sequence[int]],
    *,
    expected_output_shape: Sequence[int] | None = None,
    input_data: np.ndarray | Sequence[np.ndarray] | None = None,
    call_kwargs: dict | None = None,
    symbolic_batch: bool = False,
    check_training_step: bool = True,
    atol: float = 1e-6,
    seed: int = 0,
) -> keras.layers.Layer:
    """Checks what every tfsr layer must do, and returns the layer it built.

    1. Config round trip: ``from_config(get_config())`` rebuilds a layer whose config is equal.
    2. Symbolic call: the layer works on ``keras.Input`` tensors (unknown spatial size unless
       ``symbolic_batch``), inside a Functional model.
    3. Eager call: on concrete inputs, with the output shape checked when given.
    4. One training step: ``train_on_batch`` with an L2 loss runs and changes some trainable weight
       (skipped when the layer has none or ``check_training_step`` is False).
    5. Save and load: the model saved to ``.keras`` reloads (the layer must be registered
       serializable) and gives equal outputs, within ``atol``.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        input_shape: shape of the input with batch dimension, or a list of shapes for a layer
            called on a list of tensors.
        expected_output_shape: full expected output shape of the eager call, or None.
        input_data: concrete inputs instead of random ones in [-1, 1].
        call_kwargs: extra keyword arguments for ``layer(...)``.
        symbolic_batch: keep the spatial dimensions fixed in the symbolic Input (for layers that
            need static shapes).
        check_training_step: run step 4.
        atol: tolerance for the save/load comparison.
        seed: seed for the random inputs and for tf.random.

    Returns:
        The layer instance used in the Functional model.
    """
    call_kwargs = call_kwargs or {}
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    multi_input = bool(input_shape) and isinstance(input_shape[0], (list, tuple))
    shapes = [tuple(s) for s in (input_shape if multi_input else [input_shape])]
    data = _as_list(input_data) if input_data is not None else _random_inputs(shapes, rng)

    # 1. Config round trip.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config, "get_config() does not survive from_config()"

    # 2. Symbolic call inside a Functional model.
    def symbolic_shape(s):
        if symbolic_batch or len(s) != 4:
            return s[1:]
        return (None, None, s[-1])

    inputs = [
        keras.Input(shape=symbolic_shape(s), dtype=d.dtype)
        for s, d in zip(shapes, data, strict=True)
    ]
    layer = layer_cls(**init_kwargs)
    outputs = layer(inputs if multi_input else inputs[0], **call_kwargs)
    model = keras.Model(inputs, outputs)

    # 3. Eager call.
    feed = data if multi_input else data[0]
    eager_out = layer(
        [tf.constant(d) for d in data] if multi_input else tf.constant(data[0]), **call_kwargs
    )
    model_out = model(feed)
    for a, b in zip(_as_list(eager_out), _as_list(model_out), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol)
    if expected_output_shape is not None:
        assert tuple(_as_list(eager_out)[0].shape) == tuple(expected_output_shape), (
            f"output shape {tuple(_as_list(eager_out)[0].shape)}, "
            f"expected {tuple(expected_output_shape)}"
        )

    # 4. One training step moves some trainable weight.
    if check_training_step and layer.trainable_weights:
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
        before = [w.numpy().copy() for w in layer.trainable_weights]
        targets = [np.asarray(o) + 1.0 for o in _as_list(model_out)]
        loss = model.train_on_batch(feed, targets if len(targets) > 1 else targets[0])
        assert np.all(np.isfinite(loss)), f"training step gave loss {loss}"
        after = [w.numpy() for w in layer.trainable_weights]
        assert any(
            not np.array_equal(b, a) for b, a in zip(before, after, strict=True)
        ), "one training step changed no trainable weight: gradients do not reach the layer"
        model_out = model(feed)

    # 5. Save and load, equal outputs.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        restored = keras.models.load_model(path)
    for a, b in zip(_as_list(model_out), _as_list(restored(feed)), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol)
    return layer


def check_gradients(
    fn: Callable[..., tf.Tensor],
    inputs: Sequence[np.ndarray],
    *,
    delta: float = 1e-4,
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> float:
    """Compares the analytic gradients of ``fn`` with numerical ones, in float64.

    ``fn`` takes the inputs positionally and returns one tensor. Every input is cast to float64;
    ``tf.test.compute_gradient`` builds the theoretical and numerical Jacobians, which must agree
    within ``atol + rtol * |numerical|`` element-wise.

    Returns:
        The largest absolute difference between the two Jacobians.

    Raises:
        AssertionError: naming the input whose Jacobians disagree and by how much.
    """
    xs = [tf.constant(np.asarray(x, dtype=np.float64)) for x in inputs]
    theoretical, numerical = tf.test.compute_gradient(fn, xs, delta=delta)
    worst = 0.0
    for i, (t, n) in enumerate(zip(theoretical, numerical, strict=True)):
        diff = np.abs(t - n)
        worst = max(worst, float(diff.max(initial=0.0)))
        bad = diff > atol + rtol * np.abs(n)
        if bad.any():
            raise AssertionError(
                f"gradient of input {i} disagrees with finite differences: max |diff| "
                f"{diff.max():.3g} at {np.unravel_index(diff.argmax(), diff.shape)} "
                f"(analytic {t.flat[diff.argmax()]:.6g}, numerical {n.flat[diff.argmax()]:.6g})"
            )
    return worst


def shared_data_dir() -> str:
    """The ``shared/data`` folder beside the checkout, or ``$TFSR_SHARED_DATA``."""
    env = os.environ.get("TFSR_SHARED_DATA")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "shared", "data"))
