"""Gatys et al. style transfer: optimise the image coarse to fine, with plugins and checkpoints.

``render_gatys`` is one of the methods ``styled.engine.render.render`` dispatches to; the plugin
manager it receives supplies every loss term, the built-in ones included.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pluggy
import tensorflow as tf

from styled.engine import schedule, upsample
from styled.engine.finish import finalize, output_alpha
from styled.engine.hooks import fold
from styled.engine.job import Job
from styled.engine.memory import MemoryPlan, auto_budget, plan_scale
from styled.engine.objective import XLA_MIN_PIXELS, TiledLoss, check_tileable, compile_loss, layers_of, reach_of
from styled.engine.optimize import OPTIMIZERS, Adam, Budget, Lbfgs, ScaleState, optimise_scale
from styled.engine.spec import JobSpec
from styled.engine.types import (
    Checkpoint,
    LossTerm,
    Progress,
    RenderOptions,
    Result,
    ScaleJob,
    TilePass,
)
from styled.errors import MemoryBudgetError
from styled.io import images
from styled.nets.devices import Device, resolve_device
from styled.nets.precision import resolve_compute
from styled.nets.vgg import FeatureExtractor

log = logging.getLogger(__name__)

#: Keys of a history entry that are not losses.
HISTORY_KEYS = ("scale", "iteration", "seconds")

# --- Gatys et al. -------------------------------------------------------------------------------


@dataclass
class _Run:
    """The state of one optimisation render shared by its scales."""

    job: Job
    plugins: pluggy.PluginManager
    options: RenderOptions
    device: Device
    precision: str
    extractor: FeatureExtractor
    started: float
    optimizer: Lbfgs | Adam
    precision_reason: str = ""
    #: Loss functions of at least this many pixels are compiled with XLA (None: never, where XLA
    #: was measured slower on this device: styled.nets.precision).
    xla_min_pixels: int | None = None
    budget: int = 0
    #: What earlier renders in this process left with TensorFlow (``RenderOptions.held_memory``).
    held_before: int = 0
    plans: list[MemoryPlan] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    elapsed_before: float = 0.0
    last_checkpoint: float = 0.0
    scale_started: float = 0.0
    #: A tiled evaluation cut short by a stop request, for the checkpoint that ends the render.
    pending: TilePass | None = None

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.job.spec.scale_sizes()

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started


def render_gatys(job: Job, plugins: pluggy.PluginManager, options: RenderOptions) -> Result:
    """Optimise the image so its VGG features match the content and the style's Grams."""
    spec = job.spec
    device = resolve_device(spec.device)
    compute = resolve_compute(spec.precision, device)
    with tf.device(device.tf_name):
        backbone = options.backbones(spec.backbone, job.weights)
        extractor = FeatureExtractor(backbone, spec.pooling, tf.as_dtype(compute.precision))
        run = _Run(job, plugins, options, device, compute.precision, extractor, time.monotonic(),
                   OPTIMIZERS[spec.optimizer](spec), precision_reason=compute.reason,
                   xla_min_pixels=XLA_MIN_PIXELS if compute.xla else None,
                   budget=spec.max_memory or auto_budget(options.memory_share, device.gpu_index),
                   held_before=options.held_memory)
        run.plans = _first_plans(run)  # refuse now, not later
        if any(plan.tile for plan in run.plans):
            check_tileable(collect_terms(plugins, _scale_job(run, 0, run.plans[0])))  # the cheapest scale to ask
        run.last_checkpoint = run.started
        state, interrupted = _optimise_all_scales(run)
    return _finish(run, state, interrupted)


def _optimise_all_scales(run: _Run) -> tuple[tuple[int, ScaleState], bool]:
    resume = run.options.resume
    first = resume.scale_index if resume else 0
    if resume:
        run.history, run.elapsed_before = list(resume.history), resume.elapsed
    previous: np.ndarray | None = None
    for index in range(first, len(run.sizes)):
        scale_job = _scale_job(run, index, run.plans[index])
        evaluation = None
        if resume and index == first:
            state, evaluation = resume.state, resume.evaluation
        else:
            state = ScaleState(image=_initial_image(run, scale_job, previous))
        state, interrupted = _optimise_scale(run, scale_job, state, evaluation)
        if interrupted:
            return (index, state), True
        run.history.extend({"scale": index + 1, **entry} for entry in state.history)
        previous = state.best_image
    return (len(run.sizes) - 1, state), False


def _scale_job(run: _Run, index: int, plan: MemoryPlan | None) -> ScaleJob:
    """Scale ``index`` of the job, its images resized; tiled as ``plan`` says (None: not yet planned)."""
    tile, halo = (plan.tile, plan.halo) if plan is not None else (None, 0)
    return scale_job_at(run.job, run.extractor, run.sizes[index], index=index, count=len(run.sizes),
                        tile=tile, halo=halo)


def scale_job_at(job: Job, extractor: FeatureExtractor, size: int, *, index: int = 0, count: int = 1,
                 tile: tuple[int, int] | None = None, halo: int = 0) -> ScaleJob:
    """The job at ``size`` (long side) as scale ``index`` of ``count``: the photo resized to the scale,
    the paintings to ``style_scale`` times its long side; untiled unless ``tile`` is given."""
    height, width = job.output_shape(size)
    content = None
    if job.content is not None:
        content = _batch(images.resize_to(job.content.pixels, width, height))
    side = style_side(job.spec, (height, width))
    styles = tuple(_batch(images.resize_long_side(style.pixels, side)) for style in job.styles)
    return ScaleJob(job, content, styles, job.spec.blend_weights(), index, count, extractor, tile, halo)


def style_side(spec: JobSpec, shape: tuple[int, int]) -> int:
    """Style images are resized to ``style_scale`` times the scale's long side."""
    return max(16, round(max(shape) * spec.style_scale))


def spec_layers(spec: JobSpec) -> tuple[str, ...]:
    """The VGG layers the built-in terms use; plugins may add others (``_scale_with_terms``)."""
    return tuple(sorted({*spec.content_layers, *(name for name, _ in spec.style_layers)}))


def _first_plans(run: _Run) -> list[MemoryPlan]:
    """Every scale's plan before the first iteration: the spec's layers, and the widest reach the
    plugins announce for their terms (``tiling_reach``), so that a job that cannot fit is refused
    now, not at the scale where a plugin's halo no longer fits. The top scale is planned first:
    what TensorFlow takes for a scale's passes stays with the process, so each scale leaves room
    for the scales after it (styled.engine.memory)."""
    reaches = [0] * len(run.sizes)
    for index in reversed(range(len(run.sizes))):  # the top scale first, as it is planned
        answers = run.plugins.hook.tiling_reach(job=_scale_job(run, index, None))
        reaches[index] = max((reach for reach in answers if reach), default=0)
    try:
        return _plans_from_top(run, reaches)
    except MemoryBudgetError:
        if not run.held_before:
            raise
    held, run.held_before = run.held_before, 0
    plans = _plans_from_top(run, reaches)
    log.warning("max_memory (%.1f GB) holds this job in a fresh process but not beside the %.1f GB that earlier "
                "renders left with TensorFlow here; planned as if they had not, so it may take more: restart the "
                "daemon to give that memory back", run.budget / 1e9, held / 1e9)
    return plans


def _plans_from_top(run: _Run, reaches: Sequence[int]) -> list[MemoryPlan]:
    plans: list[MemoryPlan | None] = [None] * len(run.sizes)
    for index in reversed(range(len(run.sizes))):
        plans[index] = _plan(run, index, spec_layers(run.job.spec), reaches[index], plans)
    return plans


def _plan(run: _Run, index: int, layers: tuple[str, ...], reach: int = 0,
          plans: Sequence[MemoryPlan | None] | None = None) -> MemoryPlan:
    """How scale ``index`` fits ``max_memory`` (docs/print-size.md) beside what the earlier scales of
    ``plans`` (default: the run's) left with TensorFlow and what the later ones need;
    MemoryBudgetError if it cannot."""
    plans = run.plans if plans is None else plans
    held = max([run.held_before, *(plan.network for plan in plans[:index] if plan)])
    later = [plan.rest for plan in plans[index + 1:] if plan]
    job, spec = run.job, run.job.spec
    shape = job.output_shape(run.sizes[index])
    style_pixels = len(job.styles) * style_side(spec, shape) ** 2
    plan = plan_scale(size=run.sizes[index], shape=shape, layers=layers,
                      content_layers=spec.content_layers if job.content is not None else (),
                      style_pixels=style_pixels, precision=run.precision, optimizer=spec.optimizer,
                      history=spec.lbfgs_history, budget=run.budget, tile_size=spec.tile_size, reach=reach,
                      can_keep=run.extractor.can_keep, held=held,
                      network_cap=run.budget - max(later) if later else None)
    log.debug("memory at %dx%d: about %.2f GB of %.2f GB, %s", shape[1], shape[0], plan.estimate / 1e9,
              plan.budget / 1e9, plan.reason)
    return plan


def _batch(pixels: np.ndarray) -> tf.Tensor:
    return tf.constant(pixels[None], tf.float32)


def _initial_image(run: _Run, scale_job: ScaleJob, previous: np.ndarray | None) -> np.ndarray:
    if previous is not None:
        image = _enlarged(scale_job, previous)
    else:
        image = INITIALISERS[_init_kind(scale_job)](scale_job)
    chosen = run.plugins.hook.initial_image(job=scale_job, image=_batch(image))
    image = image if chosen is None else np.asarray(chosen)[0]
    return _projector(run.plugins, scale_job)(image)


def _enlarged(scale_job: ScaleJob, previous: np.ndarray) -> np.ndarray:
    """The previous scale's result at this scale, with the detail enlarging cannot restore (upsample.py)."""
    seed = scale_job.spec.seed
    rng = np.random.default_rng(None if seed is None else (seed, scale_job.scale_index))
    content = None if scale_job.content is None else scale_job.content.numpy()[0]
    styles = [style.numpy()[0] for style in scale_job.styles]
    return upsample.enlarge(previous, scale_job.shape, content, styles, scale_job.style_weights, rng)


def _init_kind(scale_job: ScaleJob) -> str:
    """Textures (no content image) start from noise whatever ``init`` says."""
    return "noise" if scale_job.content is None else scale_job.spec.init


def _init_noise(scale_job: ScaleJob) -> np.ndarray:
    height, width = scale_job.shape
    rng = np.random.default_rng(scale_job.spec.seed)
    return rng.uniform(0.0, 1.0, (height, width, 3)).astype(np.float32)


def _init_style(scale_job: ScaleJob) -> np.ndarray:
    height, width = scale_job.shape
    return images.resize_to(scale_job.job.styles[0].pixels, width, height)


def _init_content(scale_job: ScaleJob) -> np.ndarray:
    return scale_job.content.numpy()[0]


def _init_adain(scale_job: ScaleJob) -> np.ndarray:
    from styled.engine import adain

    height, width = scale_job.shape
    return adain.stylize(scale_job.job, max(height, width)).image


INITIALISERS: dict[str, Callable[[ScaleJob], np.ndarray]] = {
    "content": _init_content,
    "noise": _init_noise,
    "style": _init_style,
    "adain": _init_adain,
}


def collect_terms(plugins: pluggy.PluginManager, scale_job: ScaleJob) -> list[LossTerm]:
    """Every plugin's terms for this scale, built-ins included, in registration order."""
    answers = plugins.hook.register_losses(job=scale_job)
    terms = [term for answer in reversed(answers) for term in (answer or [])]
    names = [term.name for term in terms]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise ValueError(f"two loss terms share the name {', '.join(sorted(duplicates))}")
    return terms


class _StopWithinIteration(Exception):
    """A stop request seen between two tiles: the render ends with a checkpoint of the tiles done."""


def _optimise_scale(run: _Run, scale_job: ScaleJob, state: ScaleState,
                    evaluation: TilePass | None = None) -> tuple[ScaleState, bool]:
    """Optimise one scale; True with the state if a stop request ended it early. ``evaluation``
    is a checkpoint's unfinished tiled evaluation of ``state.image``."""
    scale_job, terms = _scale_with_terms(run, scale_job)
    plan = run.plans[scale_job.scale_index]
    optimizer = _optimizer_for(run, plan)
    budget = _budget(run, scale_job.scale_index)
    iterations = budget.iterations
    stop = {"requested": False}
    last: dict[str, object] = {"total": math.nan, "values": {}}
    run.scale_started = time.monotonic()

    def on_tile(done: int, tiles: int) -> None:
        _report_progress(run, scale_job, state, iterations, last["total"], last["values"], (done, tiles))
        if _stop_requested(run):
            raise _StopWithinIteration
        _maybe_checkpoint(run, scale_job.scale_index, state, force=False, evaluation=evaluate.progress)

    evaluate = _objective(run, scale_job, terms, plan, on_tile, evaluation)

    def on_iteration(current: ScaleState, total: float, values: dict[str, float]) -> bool:
        last.update(total=total, values=values)
        _report_progress(run, scale_job, current, iterations, total, values)
        stop["requested"] = _stop_requested(run)
        _maybe_checkpoint(run, scale_job.scale_index, current, force=stop["requested"])
        return stop["requested"]

    try:
        state = optimise_scale(
            state, evaluate, optimizer, budget=budget,
            project=_projector(run.plugins, scale_job), on_iteration=on_iteration, clock=run.elapsed,
        )
    except _StopWithinIteration:
        run.pending = evaluate.progress()
        return state, True
    finally:
        if isinstance(evaluate, TiledLoss):
            evaluate.close()
    return state, stop["requested"]


def _stop_requested(run: _Run) -> bool:
    return bool(run.options.should_stop and run.options.should_stop())


def _scale_with_terms(run: _Run, scale_job: ScaleJob) -> tuple[ScaleJob, list[LossTerm]]:
    """The scale's terms; re-planned (and the terms made again) if a plugin's layers or reach need a
    wider halo."""
    terms = collect_terms(run.plugins, scale_job)
    index, layers = scale_job.scale_index, layers_of(terms)
    plan = _plan(run, index, layers, reach_of(terms))
    if (plan.tile, plan.halo) != (scale_job.tile, scale_job.halo):
        scale_job = replace(scale_job, tile=plan.tile, halo=plan.halo)
        terms = collect_terms(run.plugins, scale_job)
    run.plans[index] = plan
    return scale_job, terms


def _objective(run: _Run, scale_job: ScaleJob, terms: list[LossTerm], plan: MemoryPlan, on_tile,
               evaluation: TilePass | None):
    if plan.tile is None:
        return compile_loss(run.extractor, terms, scale_job.shape, xla_min_pixels=run.xla_min_pixels)
    return TiledLoss(run.extractor, terms, scale_job.windows(scale_job.shape), on_tile=on_tile, resume=evaluation,
                     scratch=run.options.scratch, xla_min_pixels=run.xla_min_pixels, keep=plan.keep)


def _optimizer_for(run: _Run, plan: MemoryPlan) -> Lbfgs | Adam:
    """The render's optimiser, or what the memory plan puts in its place at this scale."""
    if plan.optimizer == "adam" and not isinstance(run.optimizer, Adam):
        run.optimizer = Adam(run.job.spec.learning_rate)
    run.optimizer.start_scale(**({"history": plan.history} if isinstance(run.optimizer, Lbfgs) else {}))
    return run.optimizer


def _iterations(spec: JobSpec, index: int, count: int) -> int:
    return spec.scale_iterations()[index]


def _budget(run: _Run, index: int) -> Budget:
    """Scale ``index``'s iterations (with what earlier scales left unused), deadline and, unless
    it must run all its iterations, its convergence test (styled.engine.schedule)."""
    spec = run.job.spec
    done = [sum(1 for entry in run.history if entry["scale"] == scale + 1) for scale in range(index)]
    converged = (lambda history: schedule.converged(history, spec.convergence)) \
        if schedule.stops_when_converged(spec, index) else None
    return Budget(schedule.budget(spec, index, done), _deadline(run, index), converged)


def _deadline(run: _Run, index: int) -> float:
    """Share ``time_limit`` between the scales in proportion to their expected cost (pixels × iterations)."""
    spec = run.job.spec
    if spec.time_limit is None:
        return math.inf
    costs = [s * s * _iterations(spec, i, len(run.sizes)) for i, s in enumerate(run.sizes)]
    share = sum(costs[: index + 1]) / max(sum(costs), 1)
    return run.started - run.elapsed_before + spec.time_limit * share


def _projector(plugins: pluggy.PluginManager, scale_job: ScaleJob) -> Callable[[np.ndarray], np.ndarray]:
    """Clip to [0, 1], then let plugins project the image onto their constraints."""
    hook = plugins.hook.constrain_image
    constrained = bool(hook.get_hookimpls())

    def project(image: np.ndarray) -> np.ndarray:
        image = np.clip(image, 0.0, 1.0)
        if constrained:
            image = np.asarray(fold(hook, "image", _batch(image), job=scale_job))[0]
        return image.astype(np.float32, copy=False)

    return project


def _report_progress(run: _Run, scale_job: ScaleJob, state: ScaleState, iterations: int,
                     total: float, values: dict[str, float], tiles: tuple[int, int] = (0, 0)) -> None:
    if run.options.on_progress is None:
        return
    height, width = scale_job.shape
    progress = Progress(
        scale=scale_job.scale_index + 1, scales=scale_job.scale_count, width=width, height=height,
        iteration=state.iteration, iterations=iterations, loss=total, terms=values,
        elapsed=run.elapsed(), eta=None, done=len(run.history) + state.iteration, tile=tiles[0], tiles=tiles[1],
    )
    run.options.on_progress(replace(progress, eta=_eta(run, scale_job.scale_index, progress.fraction, iterations)))


def _eta(run: _Run, index: int, done_here: float, iterations: int) -> float | None:
    """Seconds left: this scale's pace (tiles of an unfinished iteration count), scaled by pixel
    count for the scales still to come."""
    spec = run.job.spec
    if done_here == 0:
        return None
    pace = (time.monotonic() - run.scale_started) / done_here
    current = run.sizes[index] ** 2
    remaining = (iterations - done_here) * pace
    for later in range(index + 1, len(run.sizes)):
        remaining += _iterations(spec, later, len(run.sizes)) * pace * run.sizes[later] ** 2 / current
    if spec.time_limit is not None:
        remaining = min(remaining, max(0.0, spec.time_limit - run.elapsed()))
    return remaining


def _maybe_checkpoint(run: _Run, index: int, state: ScaleState, force: bool,
                      evaluation: Callable[[], TilePass | None] | None = None) -> None:
    """A checkpoint if one is due; between the tiles of an iteration, ``evaluation`` says how far
    that iteration has got, so a restart does not do its tiles again."""
    options = run.options
    if options.on_checkpoint is None:
        return
    now = time.monotonic()
    due = options.checkpoint_seconds is not None and now - run.last_checkpoint >= options.checkpoint_seconds
    if force or due:
        options.on_checkpoint(_snapshot(run, index, state, evaluation() if evaluation else None))
        run.last_checkpoint = now


def _snapshot(run: _Run, index: int, state: ScaleState, evaluation: TilePass | None = None) -> Checkpoint:
    """A checkpoint that later iterations cannot change (images are replaced, never mutated)."""
    return Checkpoint(index, replace(state, history=list(state.history)), list(run.history), run.elapsed(),
                      evaluation)


def _finish(run: _Run, position: tuple[int, ScaleState], interrupted: bool) -> Result:
    index, state = position
    job, spec = run.job, run.job.spec
    image = state.best_image if state.best_image is not None else state.image
    history = run.history + ([] if not interrupted else [{"scale": index + 1, **e} for e in state.history])
    checkpoint = _snapshot(run, index, state, run.pending) if interrupted else None
    if not interrupted:
        image = finalize(job, run.plugins, image)
    return Result(
        image=image, alpha=output_alpha(job, image.shape), losses=_final_losses(history),
        history=history, iterations=len(history), seconds=run.elapsed(), device=run.device.name,
        precision=run.precision, precision_reason=run.precision_reason, settings=spec.to_dict(),
        interrupted=interrupted, checkpoint=checkpoint, memory=[plan.to_dict() for plan in run.plans],
        warnings=list(job.warnings),
    )


def _final_losses(history: list[dict[str, float]]) -> dict[str, float]:
    """The last iteration's losses, by term name, with ``total``; built-ins always present."""
    last = dict(history[-1]) if history else {}
    for key in HISTORY_KEYS:
        last.pop(key, None)
    return {"content": 0.0, "style": 0.0, "tv": 0.0, **last}
