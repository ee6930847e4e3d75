"""``render(job, plugins, options)``: the one door into the engine.

The daemon and the CLI know the engine only through this function and the types in
styled.engine.types. The plugin manager is given, never built here: the engine does not know where
plugins come from (``styled.render`` builds the default one).
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from styled.engine.adain import render_adain
from styled.engine.gatys import render_gatys
from styled.engine.hooks import call_notification, fold
from styled.engine.job import Job
from styled.engine.types import RenderOptions, Result

Renderer = Callable[[Job, pluggy.PluginManager, RenderOptions], Result]
#: One renderer per ``method`` of styled.engine.spec.METHODS.
RENDERERS: dict[str, Renderer] = {
    "gatys": render_gatys,
    "adain": render_adain,
}


def render(job: Job, plugins: pluggy.PluginManager, options: RenderOptions | None = None) -> Result:
    """Render ``job`` with its spec's method, telling plugins when it starts, finishes or fails."""
    options = options or RenderOptions()
    call_notification(plugins.hook.job_started, job=job)
    try:
        result = render_frame(job, plugins, options)
    except Exception as error:
        call_notification(plugins.hook.job_failed, job_name=job.name, error=error)
        raise
    if not result.interrupted:
        call_notification(plugins.hook.job_finished, job=job, result=result)
    return result


def render_frame(job: Job, plugins: pluggy.PluginManager, options: RenderOptions) -> Result:
    """Render ``job`` without the start, finish and failure notifications: one frame of a clip,
    whose notifications are the clip's (styled.video.render)."""
    job = fold(plugins.hook.prepare_job, "job", job)
    return RENDERERS[job.spec.method](job, plugins, options)
