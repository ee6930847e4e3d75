"""VGG layer names, their only home: which convolutions a backbone has, what a ReLU is called,
which layers Gatys et al. use, and the rules that check a layer name in a spec or a plugin option.

Layers are named as in Gatys et al. (``relu4_2`` is the ReLU after the second conv of block 4),
never indexed.
"""

from __future__ import annotations

from typing import Any

from styled.settings.fields import Invalid, suggest
from styled.settings.rules import short

#: Convolutions per block (Simonyan & Zisserman 2015, table 1, configurations E and D).
VGG19_BLOCK_DEPTHS = {1: 2, 2: 2, 3: 4, 4: 4, 5: 4}
VGG16_BLOCK_DEPTHS = {1: 2, 2: 2, 3: 3, 4: 3, 5: 3}
#: Output channels of every conv in VGG block b (the same table).
VGG_BLOCK_WIDTHS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
#: Every block but the last ends in a 2x2, stride-2 pool.
POOLED_BLOCKS = frozenset({1, 2, 3, 4})
POOLING = ("avg", "max")


def conv_names(depths: dict[int, int]) -> tuple[str, ...]:
    """``conv1_1, conv1_2, conv2_1, ...`` for the given convs per block."""
    return tuple(f"conv{block}_{index}" for block, count in depths.items() for index in range(1, count + 1))


VGG19_CONVS = conv_names(VGG19_BLOCK_DEPTHS)
VGG16_CONVS = conv_names(VGG16_BLOCK_DEPTHS)


def relu_name(conv_name: str) -> str:
    """``conv3_1`` -> ``relu3_1``."""
    return "relu" + conv_name.removeprefix("conv")


def block_of(layer: str) -> int:
    """``relu3_1`` or ``conv3_1`` -> 3."""
    return int(layer.removeprefix("relu").removeprefix("conv").split("_")[0])


#: Every layer a spec or a plugin may name: the ReLUs of VGG-19 (VGG-16 has a subset).
VGG_LAYER_NAMES = tuple(relu_name(name) for name in VGG19_CONVS)

#: Gatys et al. (2015) take the content from relu4_2 ("conv4_2" in the paper).
CONTENT_LAYERS = ("relu4_2",)
#: Gatys et al. (2015) match Gram matrices at the first ReLU of every block, equally weighted.
STYLE_LAYERS = tuple((relu_name(f"conv{block}_1"), 1.0) for block in VGG19_BLOCK_DEPTHS)


def vgg_layer(value: Any) -> str:
    """A rule: the name of a VGG layer."""
    if value not in VGG_LAYER_NAMES:
        hint = suggest(value, VGG_LAYER_NAMES, "layers are")
        raise Invalid(f"{short(value)} is not a VGG layer", hint)
    return value


def vgg_layers(value: Any) -> tuple[str, ...]:
    """A rule: a layer name or a non-empty list of them."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise Invalid(f"must be a layer name or a list of them, such as [relu4_2], got {short(value)}")
    return tuple(vgg_layer(item) for item in items)


def stride_of(layer: str) -> int:
    """Pixels per activation of ``layer``: 2 to the number of 2x2 pools before its block."""
    return 2 ** sum(1 for block in POOLED_BLOCKS if block < block_of(layer))


def receptive_radius(layer: str) -> int:
    """How many pixels beyond its own block of ``stride_of(layer)`` pixels can change an activation.

    Every 3x3 convolution widens the field by one activation of its block on each side; a 2x2,
    stride-2 pool adds nothing beyond the doubled block. For relu5_1 of VGG-19 that is 70 pixels on
    each side (a 156-pixel field); tiles need that much context around the positions they are
    trusted for.
    """
    radius = 0
    for conv in VGG19_CONVS:
        radius += stride_of(conv)
        if conv == "conv" + layer.removeprefix("relu"):
            return radius
    raise ValueError(f"{layer} is not a VGG-19 layer")
