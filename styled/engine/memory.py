"""What a render needs in memory, and the plan that keeps a scale under ``max_memory``.

A scale needs a fixed part (the process with TensorFlow and the weights, the style images and,
untiled, the content targets; tiled, those wait in files, styled.engine.objective.TargetFiles), the
optimiser's state (L-BFGS keeps two image-sized vectors per curvature pair, Adam two in all), the
image-sized arrays of the loop (the image, its gradient, the best image...) and, while the loss is
evaluated, the VGG activations of one forward and backward pass over the whole image or one tile.
TensorFlow keeps the memory a pass took for the passes after it (measured: RSS stays at a 2048 px
scale's 5.2 GB after the render, and a 1024 px render after it takes no more), so the activations
add to the step's arrays rather than giving way to them, and a scale's passes leave their memory to
every later scale: a scale plans with what earlier scales and earlier renders in the same process
(``RenderOptions.held_memory``) left (``held``), and keeps its own passes within what later scales
leave room for (``network_cap``). ``plan_scale`` renders untiled if that fits with the job's L-BFGS
pairs or with 10 (``PAIRS_BEFORE_TILES``); otherwise it tiles with the grid that costs least time
among those that fit with either (the job's pairs on a tie); then with fewer L-BFGS pairs, then
with Adam; and if even Adam with the smallest tile does not fit, it says what the job would need.
A tiled plan keeps every tile's activations between the two passes when they fit too (``keep``:
the second pass then makes no forward pass, styled.engine.objective). The constants were measured
with benchmarks/print_size.py (docs/print-size.md compares the estimate with the peak RSS).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from styled.errors import MemoryBudgetError
from styled.nets.layers import VGG19_CONVS, VGG_BLOCK_WIDTHS, block_of, receptive_radius, relu_name, stride_of

log = logging.getLogger(__name__)

#: ``max_memory: auto`` is this share of the memory that is free (plus what this process holds).
AUTO_SHARE = 0.7
#: How long ``nvidia-smi`` may take to say how much of a GPU is free.
NVIDIA_SMI_SECONDS = 10
#: The process before any image: Python, TensorFlow, the engine and the VGG-19 weights.
BASELINE_BYTES = 900 * 10**6
#: A forward and backward pass keeps about two tensors per convolution (its output and the ReLU's).
TAPE_FACTOR = 2.0
#: Image-sized float32 arrays alive at most, during a step, besides the optimiser's state: the image,
#: the gradient, the best image, the content photo, the step's scratch, the new point and its
#: projection; L-BFGS also the accepted point's image and gradient, the direction, the new
#: curvature pair before the oldest goes, and the masks of pixels held at 0 or 1 (three boolean
#: arrays at most, a quarter of a copy each).
STEP_COPIES = {"lbfgs": 13, "adam": 6}
PIXEL_BYTES = 3 * 4
#: A tile's core should be at least this many halos wide: (4 + 2)² / 4² = 2.25x the core's pixels
#: computed per tile at most; narrower tiles are the last resort.
EFFICIENT_CORE = 4
#: A forward pass over a tile costs this share of a forward and backward one (VGG-19, float32, on a
#: 2-core AVX-512 CPU): what the planner weighs tiling's second forward pass by.
FORWARD_SHARE = 0.4
#: Rows (and columns) of tiles the planner considers at most.
MAX_PARTS = 128
#: L-BFGS pairs to try, after the job's own, before falling back to Adam.
FEWER_PAIRS = (10, 5, 3)
#: Down to this many L-BFGS pairs, fewer pairs are weighed against tiles by time alone: 10 pairs
#: were as low as 20 after 50 iterations and 0.3 % higher after 100 (docs/performance.md, "L-BFGS
#: memory"), while a tiled iteration costs 1.16-1.5 times an untiled one, more with more tiles.
PAIRS_BEFORE_TILES = 10
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
GB = 10**9


@dataclass(frozen=True)
class MemoryPlan:
    """How one scale fits its budget; the report lists one per scale."""

    size: int
    budget: int
    estimate: int
    tile: tuple[int, int] | None  # the cores' height and width in pixels; None: untiled
    halo: int
    tiles: int
    optimizer: str
    history: int
    reason: str
    #: Tiled: whether the first pass over the tiles keeps their ReLU outputs for the second (counted
    #: in ``estimate``).
    keep: bool = False
    #: What this scale's VGG passes take (the whole image's activations, or the largest tile's and
    #: any kept outputs), and what earlier scales' passes left with TensorFlow; ``estimate`` counts
    #: the larger of the two.
    network: int = 0
    held: int = 0

    @property
    def rest(self) -> int:
        """What the scale needs besides TensorFlow's memory for the passes."""
        return self.estimate - max(self.network, self.held)

    def to_dict(self) -> dict:
        return asdict(self)


def largest_network(plans: Iterable[dict]) -> int:
    """The most any scale of a render took for its passes (``plans``: its report's ``memory``), which
    TensorFlow keeps for the renders after it in the same process (``RenderOptions.held_memory``)."""
    return max((plan["network"] for plan in plans), default=0)


def halo_and_alignment(layers: Iterable[str], reach: int = 0) -> tuple[int, int]:
    """The context a tile needs around its core, and the multiple its core must start on.

    The halo is the deepest layer's receptive radius (70 pixels for relu5_1), plus the ``reach`` of
    terms that pair distant positions (``Tiling.reach``), rounded up to that layer's stride (16),
    so that tiles start on pooling boundaries: 80 pixels for the defaults.
    """
    layers = tuple(layers)
    if not layers:
        return max(1, reach), 1  # image-only terms such as TV look one pixel ahead
    alignment = max(stride_of(layer) for layer in layers)
    radius = max(receptive_radius(layer) for layer in layers) + reach
    return alignment * math.ceil(radius / alignment), alignment


def activation_bytes(pixels: int, layers: Sequence[str], precision: str) -> int:
    """A forward and backward VGG pass over ``pixels`` up to the deepest of ``layers``, plus (in
    bfloat16 or float16) the float32 copies of the requested activations that the losses work on.
    Measured at 1024 and 2048 px in float32: 2.3 GB per megapixel in all, against 2.5 estimated."""
    if not layers:
        return 0
    requested = sum(_channels_per_pixel(layer) for layer in set(layers)) if precision != "float32" else 0
    return int(pixels * (_relu_outputs_per_pixel(layers) * DTYPE_BYTES[precision] * TAPE_FACTOR + requested * 4 * 2))


def kept_bytes(shape: tuple[int, int], core: tuple[int, int], halo: int, layers: Sequence[str], precision: str) -> int:
    """What the first pass over a grid's tiles keeps for the second: every tile's ReLU outputs up
    to the deepest layer, in the compute dtype (halos included; the last tile's are not kept, which
    this leaves as a margin)."""
    if not layers:
        return 0
    return int(_computed_pixels(shape, core, halo) * _relu_outputs_per_pixel(layers) * DTYPE_BYTES[precision])


def _relu_outputs_per_pixel(layers: Sequence[str]) -> float:
    """ReLU output values per image pixel of a pass up to the deepest of ``layers`` (290 to relu5_1)."""
    deepest = max(VGG19_CONVS.index("conv" + layer.removeprefix("relu")) for layer in layers)
    return sum(_channels_per_pixel(relu_name(conv)) for conv in VGG19_CONVS[: deepest + 1])


def _computed_pixels(shape: tuple[int, int], core: tuple[int, int], halo: int) -> int:
    """The pixels a grid of ``core`` (height, width) cores computes over its tiles, halos included."""
    return math.prod(side + 2 * halo * (_parts(side, piece) - 1) for side, piece in zip(shape, core))


def _channels_per_pixel(layer: str) -> float:
    return VGG_BLOCK_WIDTHS[block_of(layer)] / stride_of(layer) ** 2


def optimizer_bytes(pixels: int, optimizer: str, history: int) -> int:
    vectors = 2 * history if optimizer == "lbfgs" else 2
    return vectors * pixels * PIXEL_BYTES


def fixed_bytes(shape: tuple[int, int], content_layers: Sequence[str], style_pixels: int, tiled: bool) -> int:
    """The process, the style images and, untiled, the content targets (tiled, they wait in files)."""
    pixels = shape[0] * shape[1]
    targets = 0 if tiled else sum(_channels_per_pixel(layer) for layer in content_layers) * 4 * pixels
    return int(BASELINE_BYTES + targets + PIXEL_BYTES * style_pixels)


def loop_bytes(pixels: int, optimizer: str, history: int, activations: int) -> int:
    """The optimiser's state, the loop's image-sized arrays at a step (when there are most) and the
    ``activations`` TensorFlow keeps for the passes."""
    return optimizer_bytes(pixels, optimizer, history) + STEP_COPIES[optimizer] * PIXEL_BYTES * pixels + activations


def plan_scale(*, size: int, shape: tuple[int, int], layers: Sequence[str], content_layers: Sequence[str],
               style_pixels: int, precision: str, optimizer: str, history: int, budget: int,
               tile_size: int | None, reach: int = 0, can_keep: bool = True, held: int = 0,
               network_cap: int | None = None) -> MemoryPlan:
    """The plan for one scale (see the module's docstring), or MemoryBudgetError saying what it needs.
    ``can_keep``: whether the network can go back through kept ReLU outputs (average pooling).
    ``held``: what earlier scales' passes left with TensorFlow (this scale's passes reuse it);
    ``network_cap``: the most this scale's passes may take so that later scales still fit."""
    cap = budget if network_cap is None else network_cap
    halo, alignment = halo_and_alignment(layers, reach)
    pixels = shape[0] * shape[1]
    untiled_fixed = fixed_bytes(shape, content_layers, style_pixels, tiled=False)
    tiled_fixed = fixed_bytes(shape, content_layers, style_pixels, tiled=True)
    smallest = _core(max(alignment, min(halo, max(shape))), alignment)
    forced = (_core(tile_size, alignment),) * 2 if tile_size else None  # square cores of tile_size
    untiled_network = activation_bytes(pixels, layers, precision)

    def untiled(kind: str, pairs: int) -> MemoryPlan | None:
        whole = untiled_fixed + loop_bytes(pixels, kind, pairs, max(untiled_network, held))
        if tile_size is not None or whole > budget or untiled_network > cap:
            return None
        return MemoryPlan(size, budget, whole, None, halo, 1, kind, pairs,
                          "untiled" + _why(kind, pairs, optimizer, history), network=untiled_network, held=held)

    def tiled(kind: str, pairs: int, least_core: int) -> tuple[float, MemoryPlan] | None:
        """The grid that costs least time and fits beside ``pairs``: its time and its plan."""
        room = min(budget - tiled_fixed - loop_bytes(pixels, kind, pairs, 0), cap)  # for a tile's activations
        cores = [forced] if forced else itertools.product(*(_even_cores(side, alignment, least_core)
                                                            for side in shape))
        choice = _cheapest_grid(shape, cores, halo, room, layers, precision, can_keep, single=bool(forced))
        if choice is None:
            return None
        cost, core, keep = choice
        network = _tile_bytes(shape, core, halo, layers, precision)
        network += kept_bytes(shape, core, halo, layers, precision) if keep else 0
        need = tiled_fixed + loop_bytes(pixels, kind, pairs, max(network, held))
        if need > budget:
            return None
        tiles = _tile_count(shape, core)
        reason = f"tile_size {tile_size}" if tile_size else "the whole image does not fit max_memory"
        kept = "; activations kept between passes" if keep else ""
        return cost, MemoryPlan(size, budget, need, core, halo, tiles, kind, pairs,
                                f"{tiles} tiles: {reason}{_why(kind, pairs, optimizer, history)}{kept}",
                                keep, network, held)

    # First only tiles whose halo costs little (a core of EFFICIENT_CORE halos: 1.56x the pixels),
    # dropping L-BFGS pairs before shrinking tiles further; then any tile down to one halo wide.
    for least_core in (EFFICIENT_CORE * halo, smallest):
        for choices in _optimizer_groups(optimizer, history):
            whole = next((plan for kind, pairs in choices if (plan := untiled(kind, pairs))), None)
            if whole is not None:
                return whole
            fits = [fit for kind, pairs in choices if (fit := tiled(kind, pairs, least_core))]
            if fits:  # the cheapest; on a tie the first, with more pairs
                return min(fits, key=lambda fit: fit[0])[1]
    least = tiled_fixed + loop_bytes(pixels, "adam", 0, max(held, _tile_bytes(
        shape, forced or (smallest, smallest), halo, layers, precision)))
    raise MemoryBudgetError(
        f"a {shape[1]}x{shape[0]} scale needs about {least / GB:.1f} GB even tiled with Adam, "
        f"and max_memory allows {budget / GB:.1f} GB",
        hint=f"raise max_memory to {math.ceil(least / GB * 10) / 10:.1f}GB or more, or lower size",
    )


def _optimizer_groups(optimizer: str, history: int) -> list[list[tuple[str, int]]]:
    """The optimisers to try, in groups: within a group, untiled comes first, then the grid that
    costs least time whatever its pairs (the more pairs on a tie); later groups only if none fits."""
    if optimizer == "adam":
        return [[("adam", 0)]]
    fewer = [pairs for pairs in FEWER_PAIRS if pairs < history]
    first = [("lbfgs", history)] + [("lbfgs", pairs) for pairs in fewer if pairs >= PAIRS_BEFORE_TILES]
    return [first] + [[("lbfgs", pairs)] for pairs in fewer if pairs < PAIRS_BEFORE_TILES] + [[("adam", 0)]]


def _why(kind: str, pairs: int, optimizer: str, history: int) -> str:
    return "" if (kind, pairs) == (optimizer, history) else f"; {_fewer(kind, pairs)} to fit max_memory"


def _fewer(kind: str, pairs: int) -> str:
    return "Adam instead of L-BFGS" if kind == "adam" else f"{pairs} L-BFGS pairs"


def _core(side: int, alignment: int) -> int:
    return alignment * math.ceil(side / alignment)


def _tile_bytes(shape: tuple[int, int], core: tuple[int, int], halo: int, layers: Sequence[str],
                precision: str) -> int:
    """The activations of the largest tile of a grid of ``core`` (height, width) cores."""
    sides = [min(side, piece + halo * min(2, _parts(side, piece) - 1)) for side, piece in zip(shape, core)]
    return activation_bytes(sides[0] * sides[1], layers, precision)


def _cheapest_grid(shape: tuple[int, int], cores: Iterable[tuple[int, int]], halo: int, room: int,
                   layers: Sequence[str], precision: str, can_keep: bool,
                   single: bool = False) -> tuple[float, tuple[int, int], bool] | None:
    """Among grids of ``cores`` (height, width), the one that costs least time whose largest tile's
    activations (and, keeping, every tile's kept ReLU outputs) fit ``room``: its time, core and
    whether to keep.
    A grid's time is the pixels its tiles compute, halos included, times 1 + FORWARD_SHARE (n - 1) /
    n for the forward pass every tile but the last makes twice (styled.engine.objective.TiledLoss)
    unless the first pass keeps what the second needs. ``single``: a grid of one tile counts too
    (a forced ``tile_size`` as large as the image)."""
    best: tuple[float, tuple[int, int], bool] | None = None
    for core in cores:
        tiles = _tile_count(shape, core)
        if tiles == 1 and not single:
            continue
        activations = _tile_bytes(shape, core, halo, layers, precision)
        computed = _computed_pixels(shape, core, halo)
        kept = kept_bytes(shape, core, halo, layers, precision) if can_keep else 0
        for keep in (True, False) if kept else (False,):
            if activations + (kept if keep else 0) > room:
                continue
            cost = computed * (1 + (0 if keep else FORWARD_SHARE * (tiles - 1) / tiles))
            if best is None or cost < best[0]:
                best = (cost, core, keep)
    return best


def _even_cores(side: int, alignment: int, least_core: int) -> list[int]:
    """The core lengths that cut ``side`` into 1, 2, 3... even parts (aligned), none narrower than
    ``least_core`` (unless the side is) and at most ``MAX_PARTS`` parts."""
    least = min(max(least_core, alignment), _core(side, alignment))
    most = min(MAX_PARTS, side // least)
    cores = {_core(math.ceil(side / parts), alignment) for parts in range(1, most + 1)}
    return sorted(core for core in cores if core >= least)


def _parts(side: int, core: int) -> int:
    return math.ceil(side / core)


def _tile_count(shape: tuple[int, int], core: tuple[int, int]) -> int:
    return _parts(shape[0], core[0]) * _parts(shape[1], core[1])


def auto_budget(share: float = 1.0, gpu: int | None = None) -> int:
    """``AUTO_SHARE`` of the memory that is free now plus what this process holds, times ``share``
    (a daemon gives each worker its part), within the cgroup's limit when there is one. On GPU
    ``gpu`` (TensorFlow's index), the card's free memory as ``nvidia-smi`` reports it; where it
    cannot say, the host's, with a warning (set ``max_memory`` to what the card has)."""
    if gpu is not None:
        free = gpu_free_bytes(gpu)
        if free is not None:
            return int(AUTO_SHARE * free * share)
        log.warning("the free memory of gpu:%d is unknown (no nvidia-smi answer); max_memory: auto uses the "
                    "host's free memory, which may be more than the card has: set max_memory", gpu)
    available = _meminfo("MemAvailable") + _resident()
    limit = _cgroup_limit()
    if limit is not None:
        available = min(available, limit)
    return int(AUTO_SHARE * available * share)


def gpu_free_bytes(index: int) -> int | None:
    """Free memory of TensorFlow's GPU ``index`` from ``nvidia-smi`` (TensorFlow does not say how
    much a card has), mapped through CUDA_VISIBLE_DEVICES; None when it cannot be known."""
    physical = str(index)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        listed = [entry.strip() for entry in visible.split(",") if entry.strip()]
        if index >= len(listed):
            return None
        physical = listed[index]
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None
    try:
        answer = subprocess.run([tool, "--query-gpu=memory.free", "--format=csv,noheader,nounits", "-i", physical],
                                capture_output=True, text=True, timeout=NVIDIA_SMI_SECONDS, check=True)
        return int(answer.stdout.split()[0]) * 2**20  # MiB
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _meminfo(key: str) -> int:
    """``key`` of /proc/meminfo in bytes; free pages from the C library where there is no /proc."""
    with contextlib.suppress(OSError):
        with open("/proc/meminfo") as lines:
            for line in lines:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _resident() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _cgroup_limit() -> int | None:
    try:
        with open("/sys/fs/cgroup/memory.max") as limit:
            text = limit.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
