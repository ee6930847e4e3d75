"""styled: turn photos into paintings with neural style transfer.

The public API is ``hookimpl``, ``LossTerm`` and ``render()``; nothing else is promised.
docs/architecture.md shows the layers behind them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from styled.engine.types import LossTerm
from styled.plugins.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["LossTerm", "hookimpl", "render", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    import pluggy

    from styled.engine.job import Job
    from styled.engine.types import RenderOptions, Result


def render(job: Job, plugins: pluggy.PluginManager | None = None, options: RenderOptions | None = None) -> Result:
    """Render ``job``; ``plugins`` defaults to the built-in and first-party plugins (and entry points).

    TensorFlow loads here, on the first render, so that ``styled --help`` and bad input are quick.
    """
    from styled.engine.render import render as render_job
    from styled.plugins.manager import make_plugin_manager

    return render_job(job, plugins or make_plugin_manager(), options)

