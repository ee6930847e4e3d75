"""The objective and its gradient as a numpy-in, numpy-out function: whole, or exactly tiled.

Whole, one traced function computes every term and the gradient (compiled with XLA at sizes where
that pays). Tiled (print sizes), each term that is a function of sums over positions (``Tiling``)
is computed in two passes over overlapping tiles: the first adds up each tile's sums over its core
positions; with the totals known, the second differentiates, tile by tile, the surrogate
Σ ⟨∂L/∂sums, the tile's sums⟩, whose gradient is the tile's exact share of ∂L/∂image. The last
tile of the first pass takes its share at once (its sums complete the totals inside the same
traced call), so n tiles cost 2n − 1 forward passes, not 2n, and n backward ones. When the
memory plan has room (``MemoryPlan.keep``), the first pass also keeps each tile's ReLU outputs
(in the compute dtype), and the second goes back through them without a forward pass
(``FeatureExtractor.input_gradient``): n forward passes and n backward ones, as untiled but for
the halos. Cores
partition the image and a halo as wide as the deepest layer's receptive field makes every core
activation equal to the whole image's, so the tiled loss and gradient equal the untiled ones up to
float rounding (docs/print-size.md). Each tile's targets (a content target's core, a mask's tile)
wait in files between the passes that use them (``TargetFiles``).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from styled.engine.types import LossTerm, TilePass, Window
from styled.errors import MemoryBudgetError
from styled.nets.vgg import FeatureExtractor

log = logging.getLogger(__name__)

#: XLA fuses each convolution with its padding and ReLU: on a 2-core AVX2 CPU a 512 px iteration
#: took 20 % less time (2.79 -> 2.26 s), for about 3.5 s of compiling per scale; on an AVX-512 BF16
#: CPU it was 2.2 times slower, so a render uses it only where it was measured faster
#: (styled.nets.precision). Below this many pixels the compile costs more than it saves
#: (docs/performance.md).
XLA_MIN_PIXELS = 256 * 256

Evaluate = Callable[[np.ndarray], tuple[float, dict[str, float], np.ndarray]]
#: Called after each tile of each pass: (tiles done, tiles in this evaluation).
OnTile = Callable[[int, int], None]


def traced(fn: Callable, signature: Sequence[tf.TensorSpec] | None, pixels: int,
           xla_min_pixels: int | None = XLA_MIN_PIXELS) -> Callable:
    """``fn`` under tf.function, compiled with XLA when ``pixels`` reach ``xla_min_pixels`` (None:
    never), falling back to plain TensorFlow if XLA refuses a plugin's ops. autograph is off: the
    loss has no tensor-dependent Python control flow, and converting it costs more than tracing it."""
    plain = tf.function(fn, input_signature=signature, autograph=False)
    use_xla = xla_min_pixels is not None and pixels >= xla_min_pixels
    chosen = [tf.function(fn, input_signature=signature, autograph=False, jit_compile=True) if use_xla else plain]

    def call(*args):
        try:
            return chosen[0](*args)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
            if chosen[0] is plain:
                raise
            log.info("XLA cannot compile this job's loss (%s); using plain TensorFlow", str(error).splitlines()[0])
            chosen[0] = plain
            return plain(*args)

    return call


def layers_of(terms: Sequence[LossTerm]) -> tuple[str, ...]:
    return tuple(sorted({layer for term in terms for layer in term.layers}))


def reach_of(terms: Sequence[LossTerm]) -> int:
    """The widest ``Tiling.reach`` of the terms: how much the halo must grow beyond the receptive field."""
    return max((term.tiling.reach for term in terms if term.tiling is not None), default=0)


def _values(terms: Sequence[LossTerm], image: tf.Tensor, features: dict[str, tf.Tensor], targets: Sequence[tuple]) -> tf.Tensor:
    """Every term's value; a tiled term's with its whole-image targets computed beforehand."""
    values = []
    for term, goal in zip(terms, targets):
        mine = {name: features[name] for name in term.layers}
        values.append(term.fn(image, mine) if term.tiling is None else term.tiling.whole(image, mine, goal))
    return tf.stack([tf.cast(value, tf.float32) for value in values])


def compile_loss(extractor: FeatureExtractor, terms: list[LossTerm], shape: tuple[int, int], *,
                 xla_min_pixels: int | None = XLA_MIN_PIXELS) -> Evaluate:
    """The whole-image objective: one traced function for the loss, its terms and the gradient."""
    layers = layers_of(terms)
    names = [term.name for term in terms]
    weights = tf.constant([term.weight for term in terms], tf.float32)
    whole = Window.whole(shape)
    targets = [term.tiling.targets(whole) if term.tiling else () for term in terms]

    def loss_and_grads(image: tf.Tensor):
        with tf.GradientTape() as tape:
            tape.watch(image)
            features = extractor(image, layers) if layers else {}
            values = _values(terms, image, features, targets)
            total = tf.reduce_sum(weights * values)
        return total, values, tape.gradient(total, image, unconnected_gradients="zero")

    compiled = traced(loss_and_grads, [tf.TensorSpec((1, *shape, 3), tf.float32)], shape[0] * shape[1], xla_min_pixels)

    def evaluate(image: np.ndarray) -> tuple[float, dict[str, float], np.ndarray]:
        total, values, grad = compiled(image[None])
        return float(total), dict(zip(names, values.numpy().tolist())), grad.numpy()[0]

    return evaluate


def check_tileable(terms: Sequence[LossTerm]) -> None:
    """Refuse, by name, terms that need the whole image at once."""
    whole_only = [term.name for term in terms if term.tiling is None]
    if whole_only:
        raise MemoryBudgetError(
            f"this render must be tiled to fit in memory, but the loss term(s) {', '.join(whole_only)} "
            "need the whole image at once",
            hint="raise max_memory, lower size, or turn off the plugin(s) that add these terms "
                 "(docs/plugins.md says how a term can tile)",
        )


@dataclass
class _Evaluation:
    """One tiled evaluation under way: the image, tile passes done, the sums, the gradient so far."""

    image: np.ndarray
    done: int = 0
    sums: list[tuple] | None = None
    gradient: np.ndarray | None = None
    key: str | None = None


class _ExpectedRetracing(logging.Filter):
    """Tiles of up to nine shapes (edges, corners) are traced once each, by design; TensorFlow's
    warning about functions traced repeatedly would only alarm users."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


_RETRACING_FILTER = _ExpectedRetracing()


class TargetFiles:
    """Each tile's targets, computed once per scale and kept in files until the passes read them.

    At 8192×8192 the content targets alone are 2.1 GB (relu4_2: 32 bytes a pixel); in files they
    cost a read per tile, mostly from the page cache, and stay exact. The files live in a temporary
    folder under ``folder`` (the daemon's work folder of the job, or the system's temporary folder)
    and go when the scale ends.
    """

    def __init__(self, per_window: Iterable[tuple], folder: Path | None = None):
        self._folder = tempfile.TemporaryDirectory(prefix="styled-targets-", dir=folder)
        self._layouts: list[tuple] = []
        for index, targets in enumerate(per_window):
            flat = [np.asarray(value) for value in tf.nest.flatten(targets)]
            if flat:
                np.savez(self._path(index), *flat)
            self._layouts.append(tf.nest.map_structure(lambda _: 0, targets))

    def __len__(self) -> int:
        return len(self._layouts)

    def __getitem__(self, index: int) -> tuple:
        layout = self._layouts[index]
        count = len(tf.nest.flatten(layout))
        if not count:
            return layout
        with np.load(self._path(index)) as saved:
            return tf.nest.pack_sequence_as(layout, [tf.constant(saved[f"arr_{i}"]) for i in range(count)])

    def close(self) -> None:
        self._folder.cleanup()

    def _path(self, index: int) -> Path:
        return Path(self._folder.name) / f"tile-{index}.npz"


def evaluation_key(image: np.ndarray, windows: Sequence[Window]) -> str:
    """A name for one tiled evaluation: the image's bytes, the tiles it is cut into and the order
    of the passes (records of the order before the last tile took both at once do not match)."""
    digest = hashlib.blake2b(np.ascontiguousarray(image, np.float32).data, digest_size=16)
    digest.update(repr(tuple(windows)).encode())
    digest.update(b"sums, then the last tile's gradient, then the others'")
    return digest.hexdigest()


class TiledLoss:
    """The objective and its exact gradient, computed over ``windows`` (see the module's docstring).

    ``progress()`` says how far the evaluation under way has got (for a checkpoint within an
    iteration); ``resume``, such a record, lets the first evaluation of the same image and tiles
    pick up where it was.
    """

    def __init__(self, extractor: FeatureExtractor, terms: list[LossTerm], windows: Sequence[Window],
                 on_tile: OnTile | None = None, xla_min_pixels: int | None = XLA_MIN_PIXELS,
                 resume: TilePass | None = None, scratch: Path | None = None, keep: bool = False):
        check_tileable(terms)
        tf.get_logger().addFilter(_RETRACING_FILTER)  # a set: adding it again changes nothing
        self._extractor, self._terms, self._windows = extractor, terms, _largest_last(windows)
        self._layers = layers_of(terms)
        self._names = [term.name for term in terms]
        self._weights = [term.weight for term in terms]
        self._on_tile = on_tile
        self._xla_min_pixels = xla_min_pixels
        self._targets = TargetFiles((tuple(term.tiling.targets(window) for term in terms) for window in self._windows),
                                    scratch)
        self._passes: dict[Window, _TilePasses] = {}
        #: Whether the first pass keeps what the second needs to go back without a forward pass.
        self.keeps = keep and extractor.can_keep and bool(self._layers)
        self._kept: dict[int, tuple[tf.Tensor, ...]] = {}
        self._resume = resume
        self._current: _Evaluation | None = None

    def __call__(self, image: np.ndarray) -> tuple[float, dict[str, float], np.ndarray]:
        self._current = current = self._start(image)
        last = len(self._windows) - 1
        self._kept.clear()
        for index in range(current.done, last):
            self._add_sums(current, self._first_pass(image, index))
            self._finished_tile(current)
        if current.done == last:
            self._last_tile(current, last)
        total, values, cotangents = self._combine(current.sums)
        for index in range(current.done - len(self._windows), last):  # the second pass: tile k after n + k passes
            self._add_share(current, self._windows[index], self._second_pass(image, index, cotangents))
        self._current = None
        return total, dict(zip(self._names, values)), current.gradient

    def _first_pass(self, image: np.ndarray, index: int) -> list[tuple]:
        """Tile ``index``'s sums; when keeping, what its second pass needs is kept too."""
        window = self._windows[index]
        passes, tile, targets = self._pass(window), self._tile(image, window), self._targets[index]
        if not self.keeps:
            return passes.sums(tile, targets)
        parts, self._kept[index] = passes.keeping(tile, targets)
        return parts

    def _second_pass(self, image: np.ndarray, index: int, cotangents: list[tuple]) -> tf.Tensor:
        """Tile ``index``'s share of the gradient: from what its first pass kept, or (not keeping, or
        resumed from a checkpoint that could not keep it) by a forward and a backward pass."""
        window = self._windows[index]
        passes, tile, targets = self._pass(window), self._tile(image, window), self._targets[index]
        kept = self._kept.pop(index, None)
        if kept is None:
            return passes.share(tile, targets, cotangents)
        return passes.from_kept(tile, targets, cotangents, kept)

    @property
    def passes(self) -> int:
        """Tile passes per evaluation: every tile's sums, then every tile's gradient but the last
        one's, which its first pass takes at once (its forward pass is not made twice)."""
        return 2 * len(self._windows) - 1

    def _last_tile(self, current: _Evaluation, index: int) -> None:
        window = self._windows[index]
        current.sums, share = self._pass(window).last(self._tile(current.image, window), self._targets[index],
                                                      current.sums)
        current.gradient = np.zeros_like(current.image)
        self._add_share(current, window, share)

    def _add_share(self, current: _Evaluation, window: Window, share: tf.Tensor) -> None:
        window.pixels(current.gradient)[...] += share.numpy()[0]
        self._finished_tile(current)

    def close(self) -> None:
        """Remove the targets' files (also done when the object is collected) and what was kept."""
        self._kept.clear()
        self._targets.close()

    def progress(self) -> TilePass | None:
        """The evaluation under way, as a checkpoint keeps it. The sums are copies; the gradient is
        the live array (an image-sized copy is hundreds of megabytes at print size), so the record
        must be saved before the next tile, as the checkpoint callback does."""
        current = self._current
        if current is None or current.done == 0:
            return None
        if current.key is None:
            current.key = evaluation_key(current.image, self._windows)
        sums = tuple(tuple(np.array(value) for value in term) for term in current.sums)
        return TilePass(current.key, current.done, sums, current.gradient)

    def _start(self, image: np.ndarray) -> _Evaluation:
        """A fresh evaluation, or the one a checkpoint recorded if it is of this image and these tiles."""
        resume, self._resume = self._resume, None
        if resume is not None and resume.key == evaluation_key(image, self._windows):
            log.info("resuming an evaluation after %d of %d tile passes", resume.done, self.passes)
            sums = [tuple(tf.constant(value) for value in term) for term in resume.sums]
            gradient = None if resume.gradient is None else resume.gradient.copy()
            return _Evaluation(image, resume.done, sums, gradient, resume.key)
        return _Evaluation(image)

    @staticmethod
    def _add_sums(current: _Evaluation, parts: list[tuple]) -> None:
        current.sums = parts if current.sums is None else tf.nest.map_structure(tf.add, current.sums, parts)

    def _finished_tile(self, current: _Evaluation) -> None:
        current.done += 1
        if self._on_tile is not None:
            self._on_tile(current.done, self.passes)

    def _combine(self, sums: list[tuple]) -> tuple[float, list[float], list[tuple]]:
        total, values, cotangents = _loss_and_cotangents(self._terms, self._weights, sums)
        return float(total), [float(value) for value in values], cotangents

    @staticmethod
    def _tile(image: np.ndarray, window: Window) -> tf.Tensor:
        return tf.constant(window.pixels(image)[None])

    def _pass(self, window: Window) -> _TilePasses:
        """The traced passes for tiles of this geometry (at most nine: edges and corners differ)."""
        local = window.local()
        if local not in self._passes:
            self._passes[local] = self._trace(local)
        return self._passes[local]

    def _trace(self, local: Window) -> _TilePasses:
        extractor, terms, weights, layers = self._extractor, self._terms, self._weights, self._layers

        def of_features(tile: tf.Tensor, features: dict[str, tf.Tensor], targets: tuple) -> list[tuple]:
            return [tuple(term.tiling.partial(tile, {name: features[name] for name in term.layers}, local, goal))
                    for term, goal in zip(terms, targets)]

        def partials(tile: tf.Tensor, targets: tuple) -> list[tuple]:
            return of_features(tile, extractor(tile, layers) if layers else {}, targets)

        def keeping(tile: tf.Tensor, targets: tuple) -> tuple[list[tuple], tuple]:
            kept = extractor.keeping(tile, layers)
            return of_features(tile, extractor.kept_layers(kept, layers), targets), kept

        def from_kept(tile: tf.Tensor, targets: tuple, cotangents: list[tuple], kept: tuple) -> tf.Tensor:
            features = extractor.kept_layers(kept, layers)
            with tf.GradientTape() as tape:
                tape.watch(tile)
                tape.watch(features)
                surrogate = _surrogate(of_features(tile, features, targets), cotangents)
            direct, by_layer = tape.gradient(surrogate, (tile, features), unconnected_gradients="zero")
            return direct + extractor.input_gradient(tile.shape, kept, by_layer)

        def share(tile: tf.Tensor, targets: tuple, cotangents: list[tuple]) -> tf.Tensor:
            with tf.GradientTape() as tape:
                tape.watch(tile)
                surrogate = _surrogate(partials(tile, targets), cotangents)
            return tape.gradient(surrogate, tile, unconnected_gradients="zero")

        def last(tile: tf.Tensor, targets: tuple, before: list[tuple] | None) -> tuple[list[tuple], tf.Tensor]:
            with tf.GradientTape() as tape:
                tape.watch(tile)
                parts = partials(tile, targets)
                with tape.stop_recording():
                    sums = parts if before is None else tf.nest.map_structure(tf.add, before, parts)
                    cotangents = _loss_and_cotangents(terms, weights, sums)[2]
                surrogate = _surrogate(parts, cotangents)
            return sums, tape.gradient(surrogate, tile, unconnected_gradients="zero")

        pixels = local.height * local.width
        return _TilePasses(*(traced(fn, None, pixels, self._xla_min_pixels)
                             for fn in (partials, share, last, keeping, from_kept)))


def _largest_last(windows: Sequence[Window]) -> tuple[Window, ...]:
    """The tiles in their order, but the largest last: the last tile's forward pass is the one
    made only once (``TiledLoss``), so it saves most there (a 3 x 3 grid's last corner may be a
    sliver)."""
    largest = max(range(len(windows)), key=lambda index: windows[index].height * windows[index].width)
    return (*windows[:largest], *windows[largest + 1:], windows[largest])


@dataclass(frozen=True)
class _TilePasses:
    """The traced passes over tiles of one geometry: ``sums`` (the first pass), ``share`` (the
    second: the tile's share of the gradient, given ∂L/∂sums) and ``last`` (both at once, for the
    last tile of the first pass, given the other tiles' sums); ``keeping`` and ``from_kept`` are
    the first and second pass when the first keeps what the second needs."""

    sums: Callable
    share: Callable
    last: Callable
    keeping: Callable
    from_kept: Callable


def _loss_and_cotangents(terms: Sequence[LossTerm], weights: Sequence[float],
                         sums: list[tuple]) -> tuple[tf.Tensor, list[tf.Tensor], list[tuple]]:
    """The loss from the totals of every term's sums, each term's value, and ∂loss/∂sums."""
    flat = tf.nest.flatten(sums)
    with tf.GradientTape() as tape:
        tape.watch(flat)
        packed = tf.nest.pack_sequence_as(sums, flat)
        values = [tf.cast(term.tiling.combine(tuple(part)), tf.float32) for term, part in zip(terms, packed)]
        total = tf.add_n([weight * value for weight, value in zip(weights, values)])
    cotangents = tape.gradient(total, flat, unconnected_gradients="zero")
    return total, values, tf.nest.pack_sequence_as(sums, cotangents)


def _surrogate(parts: list[tuple], cotangents: list[tuple]) -> tf.Tensor:
    """Σ ⟨∂L/∂sums, a tile's sums⟩: its gradient is the tile's share of ∂L/∂image."""
    return tf.add_n([tf.reduce_sum(tf.cast(part, tf.float32) * cotangent) for part, cotangent
                     in zip(tf.nest.flatten(parts), tf.nest.flatten(cotangents))])
