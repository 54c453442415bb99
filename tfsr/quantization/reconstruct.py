"""Post-training reconstruction: int8 ranges and kernel rounding chosen to match the float model.

Calibration sets each activation range from statistics of that one tensor, and TFLite rounds
every kernel weight to its nearest int8 step. Neither looks at what matters for SR: the
output. On the shipped sesr_m5_relu_x2 this loses 0.147 / 0.091 dB on Set5 / Set14 after the
percentile calibration (in fake-quant: kernels alone 0.094, activations alone 0.114 dB on Set5).
Two steps, both measured against the float model's outputs on calibration patches, bring it to
0.089 / 0.046 dB (``python export.py --model=sesr_m5_relu_x2 ...``, the README's table):

- :func:`search_ranges`: coordinate search over both ends of every learnt activation range,
  coarse then fine, keeping the candidate with the smallest mean squared difference between
  the fake-quant model's output and the float model's. Per-tensor
  statistics clip too much where it hurts: the last convolution's range doubles (its rare
  large values are the detail added at edges).
- :func:`round_kernels`: for each convolution in graph order, a least-squares refit of kernel
  and bias on the inputs the quantised model really gives that layer (the ones the earlier
  quantised layers produce), towards the float layer's outputs; then the kernel is rounded one
  weight at a time to its per-channel int8 grid, each rounding error spread over the weights
  not rounded yet through the inverse of the inputs' second-moment matrix (the optimal
  brain-surgeon update GPTQ uses). The bias is not rounded (TFLite keeps it in int32) and
  absorbs what is left; the mean shift the quantised inputs bring is corrected with it.

The kernels end exactly on their int8 grids, with each channel's largest weight unchanged in
magnitude (it is rounded first), so the converter's own per-channel scales reproduce them.

References: Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers", ICLR 2023 (arXiv 2210.17323); Hassibi and Stork, "Second order
derivatives for network pruning: Optimal Brain Surgeon", NeurIPS 1992; Nagel et al., "Up or
Down? Adaptive Rounding for Post-Training Quantization", ICML 2020 (layer-wise reconstruction).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfsr.quantization import configs, qat

INT8_MAX = 127  # per-channel symmetric, narrow range: kernels are integers in [-127, 127]
COARSE_FACTORS = (0.6, 0.7, 0.8, 0.9, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6)
FINE_FACTORS = (0.96, 0.98, 1.02, 1.04)


def _range_variables(qat_model: keras.Model) -> list[tuple[str, tf.Variable, tf.Variable]]:
    """``(layer name, min, max)`` of every learnt (not fixed) activation range."""
    return [
        (layer.name, *qat.range_vars(layer, "output"))
        for layer in qat_model.layers
        if isinstance(getattr(layer, "quantize_config", None), configs.OutputRangeConfig)
        and layer.quantize_config.range_quantizers()
    ]


def _as_batch(batches: Sequence) -> tf.Tensor:
    lr = [b[0] if isinstance(b, (tuple, list)) else b for b in batches]
    if not lr:
        raise ValueError("reconstruction needs at least one calibration batch, got none")
    return tf.concat([tf.convert_to_tensor(b, tf.float32) for b in lr], axis=0)


def output_error(qat_model: keras.Model, float_model: keras.Model, batches: Sequence) -> float:
    """Mean squared difference of the two models' outputs on ``batches`` (LR, [0, 1])."""
    x = _as_batch(batches)
    return float(tf.reduce_mean(tf.square(qat_model(x, training=False) - float_model(x))))


def search_ranges(
    qat_model: keras.Model,
    float_model: keras.Model,
    batches: Sequence,
    *,
    coarse: Sequence[float] = COARSE_FACTORS,
    fine: Sequence[float] = FINE_FACTORS,
    passes: int = 2,
    log: Callable[[str], None] | None = None,
) -> float:
    """Sets each learnt activation range of ``qat_model`` to minimise its output error.

    Coordinate search in graph order, ``passes`` times over all ranges: each non-zero end of a
    range (a ReLU's low end stays 0) is multiplied by every factor in ``coarse``, then the best
    value by every factor in ``fine``; the value with the smallest mean squared difference
    between ``qat_model``'s and ``float_model``'s outputs on ``batches`` is kept (the current
    one wins ties). Fixed ranges (the input, a clip) are left alone.

    Args:
        qat_model: from :func:`tfsr.quantization.qat.quantize_model`, ranges calibrated.
        float_model: the float model it was made from.
        batches: calibration LR batches ``(N, H, W, C)`` in [0, 1], or ``(lr, hr)`` pairs.
        coarse, fine: the factors tried, in two rounds, for each end.
        passes: rounds over all ranges.
        log: optional ``log(message)`` for every range that moved.

    Returns:
        The final output error (mean squared difference on ``batches``).
    """
    x = _as_batch(batches)
    reference = float_model(x)

    @tf.function
    def error():
        return tf.reduce_mean(tf.square(qat_model(x, training=False) - reference))

    best = float(error())
    for _ in range(int(passes)):
        for name, low_var, high_var in _range_variables(qat_model):
            before = (float(low_var.numpy()), float(high_var.numpy()))
            for var in (low_var, high_var):
                kept = float(var.numpy())
                for factors in (coarse, fine):
                    centre = kept
                    for f in factors:
                        if centre == 0.0:
                            break
                        var.assign(f * centre)
                        err = float(error())
                        if err < best:
                            best, kept = err, f * centre
                var.assign(kept)
            after = (float(low_var.numpy()), float(high_var.numpy()))
            if log is not None and after != before:
                log(
                    f"{name}: range [{before[0]:.4f}, {before[1]:.4f}] -> [{after[0]:.4f}, {after[1]:.4f}]"
                )
    return best


def _conv_wrappers(qat_model: keras.Model) -> list:
    """The QuantizeWrappers around plain ``Conv2D`` layers, in graph order."""
    found = []
    for layer in qat_model.layers:
        inner = getattr(layer, "layer", None)
        if type(inner) is not keras.layers.Conv2D:
            continue
        if (
            inner.strides != (1, 1)
            or inner.dilation_rate != (1, 1)
            or inner.padding != "same"
            or inner.groups != 1
            or not inner.use_bias
        ):
            raise ValueError(
                f"{inner.name}: kernel rounding handles stride-1, undilated, ungrouped 'same' "
                "convolutions with a bias"
            )
        found.append(layer)
    return found


def _variable(wrapper, suffix: str) -> tf.Variable:
    found = [w for w in wrapper.weights if w.name.endswith(suffix)]
    if len(found) != 1:
        raise ValueError(f"{wrapper.name}: expected one {suffix!r}, got {wrapper.weights}")
    return found[0]


def _patches(x: tf.Tensor, k: tuple[int, int]) -> np.ndarray:
    """``(N, H, W, C)`` -> ``(N*H*W, kh*kw*C + 1)`` float64: 'same' im2col plus a ones column."""
    cols = tf.image.extract_patches(x, [1, k[0], k[1], 1], [1, 1, 1, 1], [1, 1, 1, 1], "SAME")
    cols = cols.numpy().reshape(-1, cols.shape[-1]).astype(np.float64)
    return np.concatenate([cols, np.ones((len(cols), 1))], axis=1)


def round_channel(weights: np.ndarray, hessian: np.ndarray) -> np.ndarray:
    """One output channel's weights rounded to its int8 grid with error feedback.

    Args:
        weights: ``(d + 1,)``: ``d`` kernel weights, then the bias (not rounded).
        hessian: ``(d + 1, d + 1)`` second moments of the layer's inputs (with the ones column),
            positive definite.

    Returns:
        ``(d + 1,)``: kernel weights on the grid ``step * [-127, 127]``, ``step`` = the largest
        magnitude of ``weights[:d]`` over 127 (that weight is rounded first, so it stays), and
        the bias compensated.
    """
    d = weights.shape[0] - 1
    step = float(np.max(np.abs(weights[:d]))) / INT8_MAX
    if step == 0.0:
        return weights.copy()
    first = int(np.argmax(np.abs(weights[:d])))
    order = np.array([first] + [i for i in range(d) if i != first] + [d])
    # Upper Cholesky factor of the inverse Hessian (in rounding order): row i holds how the
    # error of weight i is best spread over the later ones.
    upper = np.linalg.cholesky(np.linalg.inv(hessian[np.ix_(order, order)])).T
    w = weights[order].astype(np.float64)
    for i in range(d):
        rounded = np.clip(np.round(w[i] / step), -INT8_MAX, INT8_MAX) * step
        w[i + 1 :] -= (w[i] - rounded) / upper[i, i] * upper[i, i + 1 :]
        w[i] = rounded
    out = np.empty_like(w)
    out[order] = w
    return out


def round_kernels(
    qat_model: keras.Model,
    float_model: keras.Model,
    batches: Sequence,
    *,
    damping: float = 1e-6,
    log: Callable[[str], None] | None = None,
) -> None:
    """Refits and rounds every ``Conv2D`` kernel of ``qat_model`` layer by layer (in place).

    For each convolution in graph order: the inputs it gets in ``qat_model`` (quantised by the
    layers before, already rounded) and in ``float_model`` on ``batches``; kernel and bias
    refitted by least squares so that the former reproduce the float layer's outputs on the
    latter; then :func:`round_channel` per output channel. Afterwards the kernels are exactly on
    the per-channel int8 grids TFLite uses.

    Args:
        qat_model: from :func:`tfsr.quantization.qat.quantize_model`, ranges set.
        float_model: the float model it was made from (layers of the same names).
        batches: calibration LR batches, or ``(lr, hr)`` pairs.
        damping: added to the second-moment diagonal, relative to its mean.
        log: optional ``log(message)`` per layer.

    Raises:
        ValueError: a convolution with strides, dilation, groups, other padding or no bias.
    """
    x = _as_batch(batches)
    for wrapper in _conv_wrappers(qat_model):
        conv = wrapper.layer
        float_conv = float_model.get_layer(conv.name)
        kernel_var, bias_var = _variable(wrapper, "kernel:0"), _variable(wrapper, "bias:0")
        shape = tuple(float_conv.kernel.shape)
        d, cout = int(np.prod(shape[:3])), shape[3]
        float_w = np.concatenate(
            [float_conv.kernel.numpy().reshape(d, cout), float_conv.bias.numpy()[None]]
        ).astype(np.float64)
        quant_in = keras.Model(qat_model.inputs, wrapper.input)
        float_in = keras.Model(float_model.inputs, float_conv.input)
        hessian = np.zeros((d + 1, d + 1))
        cross = np.zeros((d + 1, cout))
        for start in range(0, int(x.shape[0]), 16):
            chunk = x[start : start + 16]
            cols_q = _patches(quant_in(chunk, training=False), conv.kernel_size)
            target = _patches(float_in(chunk), conv.kernel_size) @ float_w
            hessian += cols_q.T @ cols_q
            cross += cols_q.T @ target
        hessian += damping * np.mean(np.diag(hessian)) * np.eye(d + 1)
        refit = np.linalg.solve(hessian, cross)
        rounded = np.stack([round_channel(refit[:, o], hessian) for o in range(cout)], axis=1)
        kernel = rounded[:d].reshape(shape).astype(np.float32)
        kernel_var.assign(kernel)
        bias_var.assign(rounded[d].astype(np.float32))
        # The kernel quantizer's range (what inference-mode fake-quant and the converter use)
        # must be the new kernel's, or it would be rounded again on a stale grid.
        bound = np.max(np.abs(kernel), axis=(0, 1, 2))
        kernel_min, kernel_max = qat.range_vars(wrapper, "kernel")
        kernel_min.assign(-bound)
        kernel_max.assign(bound)
        if log is not None:
            log(f"{conv.name}: kernel refitted and rounded ({d} weights x {cout} channels)")


def reconstruct(
    qat_model: keras.Model,
    float_model: keras.Model,
    batches: Sequence,
    *,
    log: Callable[[str], None] | None = None,
) -> dict:
    """:func:`search_ranges`, then :func:`round_kernels`: the export's default after calibration.

    Returns:
        ``{"error_before", "error_ranges", "error_after"}``: :func:`output_error` at each point.
    """
    batches = list(batches)
    before = output_error(qat_model, float_model, batches)
    after_ranges = search_ranges(qat_model, float_model, batches, log=log)
    round_kernels(qat_model, float_model, batches, log=log)
    after = output_error(qat_model, float_model, batches)
    return {"error_before": before, "error_ranges": after_ranges, "error_after": after}
