"""A linear block that trains over-parameterised and collapses to one small convolution (SESR)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfsr.checks import int_at_least


def _fresh(initializer: keras.initializers.Initializer) -> keras.initializers.Initializer:
    return initializer.__class__.from_config(initializer.get_config())


@keras.saving.register_keras_serializable(package="tfsr")
class CollapsibleLinearBlock(keras.layers.Layer):
    """A ``k x k`` convolution into a wide space, then a ``1 x 1`` projection, with no activation.

    The block holds an expanded pair of convolutions, ``k x k`` from ``C_in`` to
    ``expanded_filters`` (p) channels and ``1 x 1`` from p to ``filters`` (``C_out``) channels,
    plus an optional short residual. Because nothing non-linear sits between them, the whole block
    equals one ``k x k`` convolution from ``C_in`` to ``C_out``::

        kernel[h, w, i, o] = sum_p expand_kernel[h, w, i, p] * project_kernel[0, 0, p, o]
                             (+ 1 at the centre tap when o == i and residual=True)
        bias[o]            = sum_p expand_bias[p] * project_kernel[0, 0, p, o] + project_bias[o]

    The identity is exact at the image borders too ("same" zero padding only touches the ``k x k``
    convolution; the ``1 x 1`` one has no spatial extent).

    With ``collapsed_training=True`` (the default) every call computes that collapsed kernel from
    the expanded variables (one matrix product of ``k*k*C_in x p`` by ``p x C_out``) and runs a
    single convolution; gradients still reach all expanded variables. This gives the training
    benefit of the wide block at the cost of a narrow one. ``collapsed_training=False`` runs the two
    convolutions (and the residual addition) as written, for comparison; both give the same
    outputs up to float rounding.

    The collapse is computed in the variable dtype (float32) and only the collapsed kernel and bias
    are cast to the compute dtype, so the block works under mixed precision policies.

    Quantisation-aware training hook: when ``kernel_quantizer`` is set, the collapsed kernel passes
    through it just before the convolution (``kernel = kernel_quantizer(kernel)``, in the variable
    dtype, before the cast to the compute dtype), for example a per-channel symmetric fake-quant
    (``tf.quantization.fake_quant_with_min_max_vars_per_channel`` on the last axis). It can be
    passed to the constructor or assigned to the public attribute later. It must be a registered
    serialisable function or object for ``get_config``.

    Args:
        filters: output channels ``C_out``.
        kernel_size: side ``k`` of the square kernel (stride 1, "same" padding); odd when
            ``residual`` is True.
        expanded_filters: width p of the expanded space between the two convolutions.
        residual: add the input to the output (needs ``C_in == filters``).
        collapsed_training: True runs one collapsed convolution per call; False runs the expanded
            pair of convolutions.
        kernel_quantizer: optional callable applied to the collapsed kernel before the
            convolution; None for no quantisation. Needs ``collapsed_training=True``.
        kernel_initializer: initializer of both expanded kernels.
        bias_initializer: initializer of both expanded biases.
        **kwargs: standard layer arguments (name, dtype, trainable).

    Call arguments:
        inputs: a 4-D tensor ``(N, H, W, C_in)`` with known ``C_in``.

    Input shape:
        ``(N, H, W, C_in)``.

    Output shape:
        ``(N, H, W, filters)``.

    Example:

    >>> block = CollapsibleLinearBlock(16, kernel_size=3, expanded_filters=256, residual=True)
    >>> y = block(tf.zeros((2, 8, 8, 16)))
    >>> y.shape
    TensorShape([2, 8, 8, 16])
    >>> kernel, bias = block.collapse()
    >>> kernel.shape, bias.shape
    (TensorShape([3, 3, 16, 16]), TensorShape([16]))

    Reference:
        Bhardwaj et al., "Collapsible Linear Blocks for Super-Efficient Super Resolution",
        MLSys 2022 (arXiv 2103.09404).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        expanded_filters: int = 256,
        residual: bool = False,
        collapsed_training: bool = True,
        kernel_quantizer: Callable[[tf.Tensor], tf.Tensor] | None = None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for arg, value in (
            ("filters", filters),
            ("kernel_size", kernel_size),
            ("expanded_filters", expanded_filters),
        ):
            int_at_least(arg, value)
        if residual and kernel_size % 2 == 0:
            raise ValueError(
                f"residual=True needs an odd kernel_size (the identity sits at the centre tap), "
                f"got kernel_size={kernel_size}"
            )
        if kernel_quantizer is not None and not callable(kernel_quantizer):
            raise ValueError(f"kernel_quantizer must be callable or None, got {kernel_quantizer!r}")
        if kernel_quantizer is not None and not collapsed_training:
            raise ValueError(
                "kernel_quantizer needs collapsed_training=True (the expanded form has no single "
                "kernel to quantise)"
            )
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.expanded_filters = int(expanded_filters)
        self.residual = bool(residual)
        self.collapsed_training = bool(collapsed_training)
        self.kernel_quantizer = kernel_quantizer
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError(
                f"{self.name}: the channel dimension of the input must be known, got shape "
                f"{input_shape}"
            )
        if self.residual and in_channels != self.filters:
            raise ValueError(
                f"{self.name}: residual=True needs input channels == filters, got input channels "
                f"{in_channels} and filters {self.filters}"
            )
        k, p = self.kernel_size, self.expanded_filters
        # Plain (not auto-cast) variables: the collapse runs in the variable dtype.
        common = dict(dtype=self.dtype, trainable=True, experimental_autocast=False)
        self.expand_kernel = self.add_weight(
            "expand_kernel",
            shape=(k, k, in_channels, p),
            initializer=self.kernel_initializer,
            **common,
        )
        self.expand_bias = self.add_weight(
            "expand_bias", shape=(p,), initializer=self.bias_initializer, **common
        )
        # Fresh initializer instances: an unseeded instance repeats its values on a second call.
        self.project_kernel = self.add_weight(
            "project_kernel",
            shape=(1, 1, p, self.filters),
            initializer=_fresh(self.kernel_initializer),
            **common,
        )
        self.project_bias = self.add_weight(
            "project_bias",
            shape=(self.filters,),
            initializer=_fresh(self.bias_initializer),
            **common,
        )
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: in_channels})
        self._in_channels = int(in_channels)
        super().build(input_shape)

    def _identity_kernel(self) -> np.ndarray:
        """The short residual as a kernel: 1 at the centre tap from channel c to channel c."""
        k, c = self.kernel_size, self.filters
        identity = np.zeros((k, k, c, c), dtype=self.dtype)
        identity[k // 2, k // 2] = np.eye(c, dtype=self.dtype)
        return identity

    def collapse(self) -> tuple[tf.Tensor, tf.Tensor]:
        """The kernel ``(k, k, C_in, filters)`` and bias ``(filters,)`` of the equivalent conv.

        Computed in the variable dtype from the current expanded weights; differentiable. The
        ``kernel_quantizer`` is not applied.

        Raises:
            ValueError: when the block is not built yet (its input channels are unknown).
        """
        if not self.built:
            raise ValueError(
                f"{self.name}: collapse() needs a built block; call it on an input first"
            )
        k, c_in, p = self.kernel_size, self._in_channels, self.expanded_filters
        project = tf.reshape(self.project_kernel, (p, self.filters))  # (p, C_out)
        kernel = tf.matmul(tf.reshape(self.expand_kernel, (k * k * c_in, p)), project)
        kernel = tf.reshape(kernel, (k, k, c_in, self.filters))  # (k, k, C_in, C_out)
        if self.residual:
            kernel = kernel + self._identity_kernel()
        bias = tf.linalg.matvec(project, self.expand_bias, transpose_a=True) + self.project_bias
        return kernel, bias

    def set_collapsed(self, kernel, bias) -> None:
        """Sets the expanded weights so that :meth:`collapse` returns ``kernel`` and ``bias``.

        The inverse of :meth:`collapse`, for starting training from a collapsed network (a shipped
        model, say). Among the many expanded weights that collapse to one kernel, it keeps the
        current projection ``P`` (``p -> C_out``) and moves the expansion ``E`` by the smallest
        change that makes ``E P`` equal the target: ``E += (K - E P) P^+``, with ``P^+`` the
        pseudo-inverse (``P^+ P = I``, ``C_out x C_out``, as long as ``P`` has full rank
        ``C_out``, which a random initialisation gives almost surely; with ``p`` well above
        ``C_out``, as in SESR, ``P`` is also well conditioned). The expansion bias is
        kept and the projection bias takes up the rest. So a freshly built block keeps its
        random-looking expanded weights, and training goes on from the given function.

        Args:
            kernel: ``(k, k, C_in, filters)``, the target collapsed kernel (the short residual's
                identity included, as :meth:`collapse` returns it).
            bias: ``(filters,)``.

        Raises:
            ValueError: when the block is not built, the shapes differ from the block's, or the
                projection has lost rank (``expanded_filters < filters`` or degenerate weights).
        """
        if not self.built:
            raise ValueError(
                f"{self.name}: set_collapsed() needs a built block; call it on an input first"
            )
        k, c_in, p, c_out = self.kernel_size, self._in_channels, self.expanded_filters, self.filters
        kernel = np.asarray(kernel, dtype=np.float64)
        bias = np.asarray(bias, dtype=np.float64)
        if kernel.shape != (k, k, c_in, c_out) or bias.shape != (c_out,):
            raise ValueError(
                f"{self.name}: set_collapsed() expects a kernel {(k, k, c_in, c_out)} and a bias "
                f"({c_out},), got {kernel.shape} and {bias.shape}"
            )
        if self.residual:
            kernel = kernel - self._identity_kernel()
        project = self.project_kernel.numpy().astype(np.float64).reshape(p, c_out)
        # One SVD gives the rank (numpy's matrix_rank tolerance) and the pseudo-inverse.
        u, s, vt = np.linalg.svd(project, full_matrices=False)
        rank = int(np.sum(s > s.max(initial=0.0) * max(p, c_out) * np.finfo(np.float64).eps))
        if rank < c_out:
            raise ValueError(
                f"{self.name}: set_collapsed() needs a projection of rank {c_out} "
                f"(expanded_filters={p}); this block's has rank {rank}"
            )
        expand = self.expand_kernel.numpy().astype(np.float64).reshape(k * k * c_in, p)
        target = kernel.reshape(k * k * c_in, c_out)
        project_pinv = (vt.T / s) @ u.T  # (C_out, p): full rank, so every s > 0
        expand += (target - expand @ project) @ project_pinv  # (k k C_in, p)
        expand_bias = self.expand_bias.numpy().astype(np.float64)
        dtype = self.expand_kernel.dtype.as_numpy_dtype
        self.expand_kernel.assign(expand.reshape(k, k, c_in, p).astype(dtype))
        self.project_bias.assign((bias - project.T @ expand_bias).astype(dtype))

    def call(self, inputs):
        compute_dtype = self.compute_dtype
        if self.collapsed_training:
            kernel, bias = self.collapse()  # in the variable dtype
            if self.kernel_quantizer is not None:
                kernel = self.kernel_quantizer(kernel)
            kernel = tf.cast(kernel, compute_dtype)
            outputs = tf.nn.conv2d(inputs, kernel, strides=1, padding="SAME")
            return tf.nn.bias_add(outputs, tf.cast(bias, compute_dtype))

        if self.kernel_quantizer is not None:
            raise ValueError(
                f"{self.name}: kernel_quantizer needs collapsed_training=True (the expanded form "
                "has no single kernel to quantise)"
            )

        def cast(v):
            return tf.cast(v, compute_dtype)

        hidden = tf.nn.conv2d(inputs, cast(self.expand_kernel), strides=1, padding="SAME")
        hidden = tf.nn.bias_add(hidden, cast(self.expand_bias))  # (N, H, W, p)
        outputs = tf.nn.conv2d(hidden, cast(self.project_kernel), strides=1, padding="VALID")
        outputs = tf.nn.bias_add(outputs, cast(self.project_bias))  # (N, H, W, C_out)
        return outputs + inputs if self.residual else outputs

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.filters])

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            expanded_filters=self.expanded_filters,
            residual=self.residual,
            collapsed_training=self.collapsed_training,
            kernel_quantizer=(
                None
                if self.kernel_quantizer is None
                else keras.saving.serialize_keras_object(self.kernel_quantizer)
            ),
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("kernel_quantizer") is not None:
            config["kernel_quantizer"] = keras.saving.deserialize_keras_object(
                config["kernel_quantizer"]
            )
        return cls(**config)
