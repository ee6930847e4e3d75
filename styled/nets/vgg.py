"""TensorFlow VGG feature extractor returning ``{layer name: activation}``.

Layers are named as in Gatys et al. (``relu4_2``), never indexed. The extractor runs only as far
as the deepest layer asked for, and in the compute dtype it was built with (float32, bfloat16 or
float16); activations are handed back in float32 so that losses stay in full precision.

``keeping`` and ``input_gradient`` split a pass in two for tiled print sizes: the forward pass keeps
every ReLU's output (in the compute dtype), and the backward pass, given the gradient at the
requested layers, needs nothing else: a ReLU goes back where its output is positive, and every
other step of VGG is linear in its input (convolutions go back by their transposes, average pooling
by spreading, reflection padding by folding the border back). So a tile's gradient needs no
second forward pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import tensorflow as tf

from styled.nets.layers import POOLED_BLOCKS, POOLING, block_of, relu_name
from styled.nets.weights import Backbone, ConvWeights


@dataclass(frozen=True)
class _Conv:
    name: str  # "conv3_1"
    relu: str  # "relu3_1"
    kernel: tf.Tensor
    bias: tf.Tensor
    pool_after: bool


def _plan(backbone: Backbone, dtype: tf.DType) -> tuple[_Conv, ...]:
    names = list(backbone.convs)
    steps = []
    for position, name in enumerate(names):
        weights = backbone.convs[name]
        last_in_block = position + 1 == len(names) or block_of(names[position + 1]) != block_of(name)
        steps.append(
            _Conv(
                name=name,
                relu=relu_name(name),
                kernel=tf.constant(weights.kernel, dtype=dtype),
                bias=tf.constant(weights.bias, dtype=dtype),
                pool_after=last_in_block and block_of(name) in POOLED_BLOCKS,
            )
        )
    return tuple(steps)


class FeatureExtractor:
    """Maps a (1, H, W, 3) RGB image in [0, 1] to the activations of named VGG layers."""

    def __init__(self, backbone: Backbone, pooling: str = "avg", dtype: tf.DType = tf.float32):
        if pooling not in POOLING:
            raise ValueError(f"pooling must be one of {POOLING}, got {pooling!r}")
        self.backbone = backbone
        self.pooling = pooling
        self.dtype = tf.as_dtype(dtype)
        self._input = _as_tensors(backbone.input_conv, self.dtype)
        self._steps = _plan(backbone, self.dtype)
        self.layer_names = tuple(step.relu for step in self._steps)

    def __call__(self, image: tf.Tensor, layers: Iterable[str]) -> dict[str, tf.Tensor]:
        found, _ = self._forward(image, layers, keep=False)
        return {name: tf.cast(value, tf.float32) for name, value in found.items()}

    @property
    def can_keep(self) -> bool:
        """Whether ``input_gradient`` can go back through this network: average pooling only (max
        pooling's way back depends on its input, which is not kept)."""
        return self.pooling == "avg"

    def keeping(self, image: tf.Tensor, layers: Iterable[str]) -> tuple[tf.Tensor, ...]:
        """Every ReLU's output (compute dtype) up to the deepest of ``layers``, in order: the
        requested activations are among them (``kept_layers``), and ``input_gradient`` goes back
        through them without a second forward pass."""
        if not self.can_keep:
            raise ValueError("only a network with average pooling can go back through kept activations")
        return self._forward(image, layers, keep=True)[1]

    def kept_layers(self, kept: Sequence[tf.Tensor], layers: Iterable[str]) -> dict[str, tf.Tensor]:
        """The requested activations (float32, as ``__call__`` gives them) among ``keeping``'s."""
        return {name: tf.cast(kept[self.layer_names.index(name)], tf.float32) for name in layers}

    def input_gradient(self, image_shape: Sequence[int], kept: Sequence[tf.Tensor],
                       layer_gradients: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """∂/∂image (float32) of Σ ⟨layer_gradients[layer], activation of layer⟩ for the pass that
        ``kept`` these ReLU outputs (``keeping``) of an image of ``image_shape`` (1, H, W, 3)."""
        gradient = None
        steps = self._steps[: len(kept)]
        for position in reversed(range(len(steps))):
            step, output = steps[position], kept[position]
            if gradient is not None and step.pool_after:
                gradient = tf.raw_ops.AvgPoolGrad(orig_input_shape=tf.shape(output), grad=gradient, ksize=[1, 2, 2, 1],
                                                  strides=[1, 2, 2, 1], padding="SAME")
            if step.relu in layer_gradients:
                own = tf.cast(layer_gradients[step.relu], self.dtype)
                gradient = own if gradient is None else gradient + own
            if gradient is None:
                continue
            gradient = self._conv_input_gradient(tf.raw_ops.ReluGrad(gradients=gradient, features=output), step)
        if gradient is None:
            return tf.zeros(image_shape, tf.float32)
        image = tf.nn.conv2d_transpose(gradient, self._input[0], image_shape, 1, "VALID")
        return tf.cast(image, tf.float32)

    def _forward(self, image: tf.Tensor, layers: Iterable[str],
                 keep: bool) -> tuple[dict[str, tf.Tensor], tuple[tf.Tensor, ...]]:
        wanted = set(layers)
        self._check(wanted)
        x = tf.nn.conv2d(tf.cast(image, self.dtype), self._input[0], 1, "VALID") + self._input[1]
        found: dict[str, tf.Tensor] = {}
        outputs = []
        for step in self._steps:
            if len(found) == len(wanted):
                break
            x = tf.nn.relu(self._conv(x, step))
            if keep:
                outputs.append(x)
            if step.relu in wanted:
                found[step.relu] = x
            if step.pool_after:
                x = self._pool(x)
        return found, tuple(outputs)

    def _check(self, wanted: set[str]) -> None:
        unknown = wanted.difference(self.layer_names)
        if unknown:
            raise ValueError(
                f"{self.backbone.name} has no layer {', '.join(sorted(unknown))}; "
                f"it has {', '.join(self.layer_names)}"
            )

    def _conv(self, x: tf.Tensor, step: _Conv) -> tf.Tensor:
        if self.backbone.padding == "REFLECT":
            # Reflection needs two pixels; a 1-pixel map (tiny inputs, deep layers) repeats its edge.
            # Unknown (None) sizes come from callers tracing for any size, which ensure 2 or more.
            mode = "SYMMETRIC" if 1 in (x.shape[1], x.shape[2]) else "REFLECT"
            x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode=mode)
            return tf.nn.conv2d(x, step.kernel, 1, "VALID") + step.bias
        return tf.nn.conv2d(x, step.kernel, 1, "SAME") + step.bias

    def _conv_input_gradient(self, gradient: tf.Tensor, step: _Conv) -> tf.Tensor:
        """The transpose of ``_conv`` (without its bias) applied to ``gradient``, the step's output's."""
        height, width = gradient.shape[1], gradient.shape[2]
        channels = step.kernel.shape[2]
        if self.backbone.padding == "REFLECT":
            padded = tf.nn.conv2d_transpose(gradient, step.kernel, (1, height + 2, width + 2, channels), 1, "VALID")
            mode = "SYMMETRIC" if 1 in (height, width) else "REFLECT"
            return tf.raw_ops.MirrorPadGrad(input=padded, paddings=[[0, 0], [1, 1], [1, 1], [0, 0]], mode=mode)
        return tf.nn.conv2d_transpose(gradient, step.kernel, (1, height, width, channels), 1, "SAME")

    def _pool(self, x: tf.Tensor) -> tf.Tensor:
        # "SAME" pads odd sizes at the bottom/right, like torch's ceil_mode=True that the
        # normalised VGG-19 and the AdaIN decoder were trained with.
        if self.pooling == "max":
            return tf.nn.max_pool2d(x, 2, 2, "SAME")
        return tf.nn.avg_pool2d(x, 2, 2, "SAME")


def _as_tensors(weights: ConvWeights, dtype: tf.DType) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.constant(weights.kernel, dtype=dtype), tf.constant(weights.bias, dtype=dtype)

