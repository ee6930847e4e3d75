"""Every styled hook, in one place. Each docstring says when it is called and what to return.

Hooks are called with keyword arguments; an implementation may accept fewer arguments than the
spec lists. Only hooks that want a single answer are ``firstresult``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    import numpy as np
    import tensorflow as tf

    from styled.engine import Job, Result, ScaleJob
    from styled.losses import LossTerm

PROJECT = "styled"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_losses(job: ScaleJob) -> list[LossTerm]:
    """Return extra loss terms for this scale (called at the start of every scale); lists are concatenated."""


@hookspec(firstresult=True)
def initial_image(job: ScaleJob, image: tf.Tensor) -> tf.Tensor | None:
    """Return a (1, H, W, 3) image to start this scale from instead of ``image``, or None; the first answer wins."""


@hookspec
def constrain_image(job: ScaleJob, image: tf.Tensor) -> tf.Tensor | None:
    """Return ``image`` projected onto a constraint after an optimiser step, or None; answers are applied in turn."""


@hookspec
def finalize_image(job: Job, image: np.ndarray) -> np.ndarray | None:
    """Return the post-processed final (H, W, 3) image at output size, or None; answers are applied in turn."""


@hookspec
def plugin_options(name: str, options: dict[str, Any]) -> dict[str, Any] | None:
    """Validate the job's options for plugin ``name`` if it is yours: return them normalised, or raise PluginError."""


@hookspec
def job_started(job: Job) -> None:
    """Called when a job starts rendering; return nothing."""


@hookspec
def job_finished(job: Job, result: Result) -> None:
    """Called when a job has rendered; return nothing."""


@hookspec
def job_failed(job_name: str, error: BaseException) -> None:
    """Called when a job fails, with the error; return nothing."""
