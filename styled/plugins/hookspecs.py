"""Every styled hook, in one place. Each docstring says when it is called, what to return and how
the answers of several plugins combine.

Hooks are called with keyword arguments; an implementation may accept fewer arguments than the
spec lists. Only ``initial_image`` wants a single answer and is ``firstresult``. "Applied in turn"
means each plugin receives the previous plugin's answer (``styled.engine.hooks.fold``), in the order
pluggy calls them: the plugin registered last goes first.

docs/plugins.md has one heading per hook, with an example; tests/plugins/test_hooks.py fails when a hook
has no heading there or no ``test_hook_<name>`` test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    import numpy as np
    import tensorflow as tf

    from styled.engine.job import Job
    from styled.engine.types import LossTerm, Result, ScaleJob
    from styled.plugins.schema import PluginSchema

PROJECT = "styled"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def plugin_schema() -> PluginSchema | None:
    """Return the name your plugin answers to under a job's ``plugins:`` and the options it accepts.

    Called when a job is validated (before any image is loaded) and by ``styled plugins``. Every
    plugin that answers has its options checked: unknown options, bad values and missing files
    fail the job with a PluginError naming ``plugins.NAME.OPTION``. Plugins without this hook are
    still known by their registered name and receive their options unchecked.
    """


@hookspec
def prepare_job(job: Job) -> Job | None:
    """Return a changed copy of ``job`` (``dataclasses.replace``), or None to leave it as it is.

    Called once per render, after the images are loaded and before any optimisation: load masks,
    check the options against the images, apply presets to ``job.spec``, and keep what you computed
    in ``job.extras[your plugin name]``. Answers are applied in turn; raise PluginError to refuse
    the job.
    """


@hookspec
def register_losses(job: ScaleJob) -> list[LossTerm]:
    """Return the loss terms you add at this scale, or an empty list; all plugins' lists are concatenated.

    Called at the start of every coarse-to-fine scale with the job's images resized to that
    scale, so that terms can precompute their targets (``job.features(image, layers)``). The
    built-in content, style and total-variation terms come through this hook too.
    """


@hookspec
def tiling_reach(job: ScaleJob) -> int | None:
    """Return how far, in image pixels at this scale, the terms you will register for ``job`` pair
    positions (their ``Tiling.reach``), without building them; None if they pair none.

    Called for every scale before the first iteration, with the job's images resized to that scale
    and no tiles yet, so that the memory plan of every scale counts the halo your terms need and a
    job that cannot fit ``max_memory`` is refused at once, not at the scale where the halo widens.
    A term whose reach exceeds what was announced still gets its halo: the scale is planned again.
    """


@hookspec(firstresult=True)
def initial_image(job: ScaleJob, image: tf.Tensor) -> tf.Tensor | np.ndarray | None:
    """Return a (1, H, W, 3) image in [0, 1] to start this scale from instead of ``image``, or None.

    Called at the start of every scale; ``image`` is what the engine would start from (the
    ``init`` image at the first scale, the previous scale's result resized at later ones). The
    first answer that is not None wins. The answer then goes through ``constrain_image``.
    """


@hookspec
def constrain_image(job: ScaleJob, image: tf.Tensor) -> tf.Tensor | np.ndarray | None:
    """Return ``image`` (1, H, W, 3) projected onto your constraint, or None to leave it unchanged.

    Called on every scale's starting image and after every optimiser step, once the engine has
    clipped the image to [0, 1]. Answers are applied in turn.
    """


@hookspec
def finalize_image(job: Job, image: np.ndarray) -> np.ndarray | None:
    """Return the post-processed final (H, W, 3) image in [0, 1], or None to leave it unchanged.

    Called once on the best image of the last scale, after colour preservation. You may change
    the size (the inpainting plugin composites at the content's own resolution). Answers are
    applied in turn. Not called for an interrupted render.
    """


@hookspec
def job_started(job: Job) -> None:
    """Called when a render starts, before ``prepare_job``; return nothing.

    Notifications never fail a job: an exception here is logged and ignored.
    """


@hookspec
def job_finished(job: Job, result: Result) -> None:
    """Called when a render has finished (not when it was interrupted); return nothing.

    ``result.report()`` holds what goes into report.json. An exception here is logged and ignored.
    """


@hookspec
def job_failed(job_name: str, error: BaseException) -> None:
    """Called when a render fails, with the exception, before it propagates; return nothing.

    An exception here is logged and ignored.
    """
