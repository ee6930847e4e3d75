"""TensorFlow VGG feature extractor returning ``{layer name: activation}``.

Layers are named as in Gatys et al. (``relu4_2``), never indexed. The extractor runs only as far
as the deepest layer asked for, and in the compute dtype it was built with (float32, bfloat16 or
float16); activations are handed back in float32 so that losses stay in full precision.
"""

from __future__ import annotations

from collections.abc import Iterable
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
        wanted = set(layers)
        self._check(wanted)
        x = tf.nn.conv2d(tf.cast(image, self.dtype), self._input[0], 1, "VALID") + self._input[1]
        found: dict[str, tf.Tensor] = {}
        for step in self._steps:
            if len(found) == len(wanted):
                break
            x = tf.nn.relu(self._conv(x, step))
            if step.relu in wanted:
                found[step.relu] = tf.cast(x, tf.float32)
            if step.pool_after:
                x = self._pool(x)
        return found

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

    def _pool(self, x: tf.Tensor) -> tf.Tensor:
        # "SAME" pads odd sizes at the bottom/right, like torch's ceil_mode=True that the
        # normalised VGG-19 and the AdaIN decoder were trained with.
        if self.pooling == "max":
            return tf.nn.max_pool2d(x, 2, 2, "SAME")
        return tf.nn.avg_pool2d(x, 2, 2, "SAME")


def _as_tensors(weights: ConvWeights, dtype: tf.DType) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.constant(weights.kernel, dtype=dtype), tf.constant(weights.bias, dtype=dtype)

