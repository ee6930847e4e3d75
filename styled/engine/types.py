"""The engine's leaf types: what plugins, the daemon and the CLI see of a render.

Nothing here imports TensorFlow at module level, so hook specs and the daemon can name these types
without loading it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from styled.engine.job import Job
from styled.engine.optimize import ScaleState
from styled.engine.spec import JobSpec
from styled.io.files import atomic_write_stream
from styled.nets.weights import Backbone, load_backbone

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import tensorflow as tf

    from styled.nets.vgg import FeatureExtractor

#: ``fn(image, features)`` of a loss term: a scalar tensor.
LossFn = Callable[["tf.Tensor", Mapping[str, "tf.Tensor"]], "tf.Tensor"]


@dataclass(frozen=True)
class Window:
    """A tile of the image, and the core of it whose positions the tile answers for.

    The tile covers rows ``top : top + height`` and columns ``left : left + width`` of an image of
    ``image_shape`` (height, width); its core is the part ``core = (top, left, height, width)``
    *in the tile's coordinates*. Cores partition the image; the rest of a tile is context (the halo)
    so that the core's activations are exactly those of the whole image. An untiled pass is one
    window whose tile and core are the whole image (``Window.whole``).
    """

    image_shape: tuple[int, int]
    top: int
    left: int
    height: int
    width: int
    core: tuple[int, int, int, int]

    @classmethod
    def whole(cls, shape: tuple[int, int]) -> Window:
        return cls(tuple(shape), 0, 0, shape[0], shape[1], (0, 0, shape[0], shape[1]))

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def local(self) -> Window:
        """The same geometry without the tile's place in the image: all a traced ``partial`` may use."""
        return Window(self.image_shape, 0, 0, self.height, self.width, self.core)

    def core_of(self, values: tf.Tensor, stride: int = 1) -> tf.Tensor:
        """The core positions of a (1, h, w, C) map computed on this tile with ``stride`` pixels per
        position (``styled.nets.layers.stride_of(layer)``; 1 for the image itself)."""
        import tensorflow as tf

        (top, bottom), (left, right) = self.core_span(stride)
        height, width = values.shape[1], values.shape[2]
        if height is None or width is None:
            return values[:, top:bottom, left:right, :]
        # tf.slice, not indexing: on a CPU the gradient of a strided slice (the 1104 x 1104 x 64
        # relu1_1 of a print tile) took 4 times as long as the Gram matrix it fed
        return tf.slice(values, [0, top, left, 0], [-1, min(bottom, height) - top, min(right, width) - left, -1])

    def core_span(self, stride: int = 1) -> tuple[tuple[int, int], tuple[int, int]]:
        """The core's (first, end) row and column in a map of ``stride`` pixels per position."""
        top, left, height, width = self.core
        return (top // stride, -(-(top + height) // stride)), (left // stride, -(-(left + width) // stride))

    @classmethod
    def grid(cls, shape: tuple[int, int], core: int | tuple[int, int] | None, halo: int) -> tuple[Window, ...]:
        """Tiles whose cores are ``core`` (height, width; a number: a square) pixels, cut at the
        image's edges, partitioning ``shape``, each with ``halo`` pixels of context where the image
        has them. ``core`` and ``halo`` must be multiples of the deepest layer's stride; None (or a
        core as large as the image) gives one window."""
        height, width = shape
        core_height, core_width = (core, core) if isinstance(core, int) else core or shape
        if core_height >= height and core_width >= width:
            return (cls.whole(shape),)
        windows = []
        for row in range(0, height, core_height):
            for column in range(0, width, core_width):
                bottom, right = min(height, row + core_height), min(width, column + core_width)
                top, left = max(0, row - halo), max(0, column - halo)
                windows.append(cls(tuple(shape), top, left, min(height, bottom + halo) - top,
                                   min(width, right + halo) - left, (row - top, column - left, bottom - row, right - column)))
        return tuple(windows)

    def crop(self, batch: tf.Tensor) -> tf.Tensor:
        """This tile of a (1, H, W, C) tensor of the whole image."""
        return batch[:, self.top:self.top + self.height, self.left:self.left + self.width, :]

    def pixels(self, image: np.ndarray) -> np.ndarray:
        """This tile of an (H, W, ...) array of the whole image."""
        return image[self.top:self.top + self.height, self.left:self.left + self.width]


#: ``partial(image, features, window, targets)`` of a tiled term: a tuple of tensors to sum over tiles.
PartialFn = Callable[["tf.Tensor", Mapping[str, "tf.Tensor"], Window, tuple], tuple]


@dataclass(frozen=True)
class Tiling:
    """How a term that is a function of sums over positions is computed tile by tile.

    ``partial(image, features, window, targets)`` returns a tuple of tensors summed over the
    window's *core* positions only (``window.core_of(features[layer], stride)``); the engine adds
    them up over all tiles and ``combine(sums)`` turns the totals into the term's value. Counts
    that normalise a mean are best returned as sums too, so ``combine`` needs no image size.
    ``targets(window)`` supplies per-tile constants (a content target's core, a mask's tile); the
    engine computes them once per tile and scale, outside the traced function, and ``partial``
    gets them as ``targets``. ``partial`` sees only ``window.local()``: it must not depend on
    where the tile lies, only on its shape and core. The gradient is exact: the engine
    differentiates Σ ⟨∂combine/∂sums, partial⟩ tile by tile (docs/print-size.md).
    """

    partial: PartialFn
    combine: Callable[[tuple], "tf.Tensor"]
    targets: Callable[[Window], tuple] = lambda window: ()
    #: Pixels beyond the core that ``partial`` reads besides its layers' receptive field: a term that
    #: pairs each position with the one δ positions further on, at a layer of stride s, reaches δ·s.
    #: The engine widens the tiles' halo by it.
    reach: int = 0

    def whole(self, image: tf.Tensor, features: Mapping[str, tf.Tensor], targets: tuple) -> tf.Tensor:
        """The term's value over the whole image: one window, with that window's ``targets``."""
        window = Window.whole(tuple(image.shape[1:3]))
        return self.combine(tuple(self.partial(image, features, window, targets)))


@dataclass(frozen=True)
class LossTerm:
    """One weighted term of the objective.

    ``fn(image, features)`` returns a scalar tensor. ``image`` is the current (1, H, W, 3) float32
    image in [0, 1]; ``features`` maps each layer named in ``layers`` to its activation. A term
    that also says how it tiles (``tiling``, see ``Tiling``) works at print sizes; one that does
    not makes a job that must be tiled fail with a clear message.
    """

    name: str
    weight: float
    fn: LossFn
    layers: tuple[str, ...] = ()
    tiling: Tiling | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))

    @classmethod
    def tiled(cls, name: str, weight: float, tiling: Tiling, layers: Iterable[str] = ()) -> LossTerm:
        """A term defined only by how it tiles; untiled, it is one window over the whole image."""

        def fn(image: tf.Tensor, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
            return tiling.whole(image, features, tiling.targets(Window.whole(tuple(image.shape[1:3]))))

        return cls(name, weight, fn, tuple(layers), tiling)


@dataclass(frozen=True)
class ScaleJob:
    """What a loss plugin sees at one scale: the job's images resized to it, and a VGG helper."""

    job: Job
    content: tf.Tensor | None  # (1, H, W, 3) float32 in [0, 1]
    styles: tuple[tf.Tensor, ...]
    style_weights: tuple[float, ...]
    scale_index: int
    scale_count: int
    extractor: FeatureExtractor = field(repr=False)
    #: Tiling at this scale: the cores' height and width in pixels (None: untiled) and the halo around them.
    tile: tuple[int, int] | None = None
    halo: int = 0

    def windows(self, shape: tuple[int, int]) -> tuple[Window, ...]:
        """How an image of ``shape`` (height, width) is tiled at this scale (one window if untiled)."""
        return Window.grid(tuple(shape), self.tile, self.halo)

    @property
    def spec(self) -> JobSpec:
        return self.job.spec

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the image being optimised at this scale."""
        return self.job.output_shape(self.spec.scale_sizes()[self.scale_index])

    def plugin_options(self, name: str) -> dict[str, Any] | None:
        return self.job.plugin_options(name)

    def features(self, image: tf.Tensor, layers: Iterable[str]) -> dict[str, tf.Tensor]:
        """VGG activations of ``image`` (1, H, W, 3) at ``layers``, for computing targets."""
        import tensorflow as tf

        return self.extractor(tf.convert_to_tensor(image, tf.float32), tuple(layers))


@dataclass(frozen=True)
class TemporalTargets:
    """What a video frame is held to by Ruder et al.'s temporal term (``Job.extras["temporal"]``).

    Each of ``warped`` is an earlier frame's result warped into this frame by the optical flow,
    (H, W, 3) in [0, 1] at the output size; its ``weights`` (H, W) are the per-pixel weights c of
    Ruder, Dosovitskiy & Brox (GCPR 2016, eq. 7-9): 0 where the flow is unreliable (disocclusions,
    motion boundaries). The frame starts from ``warped[0]`` where ``weights[0]`` is 1.
    """

    warped: tuple[np.ndarray, ...]
    weights: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Progress:
    """One optimiser iteration, as reported to progress bars and the daemon's progress.json."""

    scale: int  # 1-based
    scales: int
    width: int
    height: int
    iteration: int  # 1-based, within the scale
    iterations: int
    loss: float
    terms: Mapping[str, float]
    elapsed: float
    eta: float | None
    #: Iterations done so far over all scales (resumed ones included): a count that only grows.
    done: int = 0
    #: Tiled scales report within an iteration too: tile passes done of ``tiles`` (2n − 1 for n tiles).
    tile: int = 0
    tiles: int = 0
    #: A video reports the frame being rendered (1-based) of ``frames``; 0 for a still.
    frame: int = 0
    frames: int = 0

    def loss_text(self) -> str:
        """``loss 1.234``, or nothing before the first loss is known (a tiled first iteration)."""
        return f"loss {self.loss:.4g}" if math.isfinite(self.loss) else ""

    @property
    def fraction(self) -> float:
        """Iterations of this scale done, counting the finished tiles of the current one."""
        return self.iteration + (self.tile / self.tiles if self.tiles else 0.0)


@dataclass(frozen=True)
class TilePass:
    """How far a tiled evaluation of the checkpoint's image had got when the checkpoint was taken.

    At print sizes one evaluation (two passes over the tiles) takes minutes; with this a restart
    finishes it instead of starting it again, so a kill -9 loses at most ``checkpoint_seconds``.
    ``key`` names the image and the tiling it belongs to (``styled.engine.objective.evaluation_key``);
    a restart that tiles differently, or evaluates another image first, ignores it.
    """

    key: str
    done: int  # tile passes finished: below the tile count, first-pass sums; from it on, the gradient too
    sums: tuple[tuple[np.ndarray, ...], ...]  # per term, the sums of the tiles done (first pass: so far)
    gradient: np.ndarray | None = None  # the second pass's gradient so far

    def arrays(self) -> dict[str, np.ndarray]:
        named = {f"tile_sum_{i}_{j}": value for i, term in enumerate(self.sums) for j, value in enumerate(term)}
        return named | ({"tile_gradient": self.gradient} if self.gradient is not None else {})

    def meta(self) -> dict[str, Any]:
        return {"key": self.key, "done": self.done, "sums": [len(term) for term in self.sums]}

    @classmethod
    def from_saved(cls, meta: Mapping[str, Any], data: Mapping[str, np.ndarray]) -> TilePass:
        sums = tuple(tuple(data[f"tile_sum_{i}_{j}"] for j in range(count)) for i, count in enumerate(meta["sums"]))
        gradient = data["tile_gradient"] if "tile_gradient" in data else None
        return cls(meta["key"], int(meta["done"]), sums, gradient)


@dataclass
class Checkpoint:
    """Enough state to resume a render near where it stopped (at print sizes, within an iteration)."""

    scale_index: int
    state: ScaleState
    history: list[dict[str, float]]
    elapsed: float
    evaluation: TilePass | None = None

    def save(self, path: Path) -> None:
        """Write atomically: a reader (or a restart after kill -9) sees the old or the new one."""
        meta = {"scale_index": self.scale_index, "iteration": self.state.iteration,
                "best_loss": self.state.best_loss, "history": self.history + self.state.history,
                "scale_history_start": len(self.history), "elapsed": self.elapsed,
                "evaluation": self.evaluation.meta() if self.evaluation else None}
        best = self.state.best_image if self.state.best_image is not None else self.state.image
        extra = self.evaluation.arrays() if self.evaluation else {}
        atomic_write_stream(path, lambda stream: np.savez(stream, image=self.state.image, best_image=best,
                                                          meta=json.dumps(meta), **extra))

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            history = meta["history"]
            start = meta["scale_history_start"]
            state = ScaleState(image=data["image"], iteration=meta["iteration"],
                               best_image=data["best_image"], best_loss=meta["best_loss"],
                               history=history[start:])
            saved = meta.get("evaluation")
            evaluation = TilePass.from_saved(saved, data) if saved else None
        return cls(meta["scale_index"], state, history[:start], meta["elapsed"], evaluation)


@dataclass(frozen=True)
class Result:
    """The rendered image and how it went."""

    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    alpha: np.ndarray | None
    losses: dict[str, float]
    history: list[dict[str, float]]
    iterations: int
    seconds: float
    device: str
    precision: str
    settings: dict[str, Any]
    interrupted: bool = False
    precision_reason: str = ""
    checkpoint: Checkpoint | None = None
    #: One memory plan per scale (styled.engine.memory.MemoryPlan.to_dict): estimate, tiles, optimiser.
    memory: list[dict[str, Any]] = field(default_factory=list)
    #: What plugins noted while preparing the job (``Job.warn``): a resized mask, say.
    warnings: list[str] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """The keys of report.json (the daemon adds timestamps)."""
        return {
            "iterations": self.iterations,
            "seconds": round(self.seconds, 3),
            "seconds_per_iteration": round(self.seconds / self.iterations, 4) if self.iterations else None,
            "losses": self.losses,
            "settings": self.settings,
            "device": self.device,
            "precision": self.precision,
            "precision_reason": self.precision_reason,
            "memory": self.memory,
            "versions": versions(),
            "interrupted": self.interrupted,
            **({"warnings": list(self.warnings)} if self.warnings else {}),
            "history": self.history,
        }


def versions() -> dict[str, str]:
    """The versions a report names, so that a result can be reproduced."""
    import importlib.metadata
    import platform

    import PIL
    import tensorflow as tf

    return {"styled": importlib.metadata.version("styled"), "tensorflow": tf.__version__, "numpy": np.__version__,
            "pillow": PIL.__version__, "python": platform.python_version()}


def clock(seconds: float | None) -> str:
    """Seconds as H:MM:SS or M:SS, '?' when unknown (progress bars, logs, ``styled status``)."""
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


ProgressCallback = Callable[[Progress], None]
CheckpointCallback = Callable[[Checkpoint], None]


@dataclass(frozen=True)
class RenderOptions:
    """How render() reports and can be interrupted; none of it changes the image."""

    on_progress: ProgressCallback | None = None
    on_checkpoint: CheckpointCallback | None = None
    checkpoint_seconds: float | None = None
    should_stop: Callable[[], bool] | None = None
    resume: Checkpoint | None = None
    #: How to get network weights; a long-running caller passes a memoised loader so that
    #: every job does not read them again.
    backbones: Callable[[str, Path | None], Backbone] = load_backbone
    #: The part of ``max_memory: auto`` this render may take (a daemon gives each worker its share).
    memory_share: float = 1.0
    #: Where a tiled render keeps its tiles' targets between passes (None: the system's temporary folder).
    scratch: Path | None = None
    #: Bytes that earlier renders in this process left with TensorFlow (a long-running caller passes
    #: ``styled.engine.memory.largest_network`` of their reports), planned for like an earlier scale's.
    held_memory: int = 0
