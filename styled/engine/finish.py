"""What every render method does to its last image: colour preservation, the ``finalize_image``
hooks, and the content's alpha channel carried over."""

from __future__ import annotations

import numpy as np
import pluggy

from styled.engine.hooks import fold
from styled.engine.job import Job
from styled.io import colour, images


def finalize(job: Job, plugins: pluggy.PluginManager, image: np.ndarray) -> np.ndarray:
    """Colour preservation, then plugins' post-processing, on the final full-size image."""
    if job.spec.preserve_colors and job.content is not None:
        height, width = image.shape[:2]
        image = colour.preserve_colors(image, images.resize_to(job.content.pixels, width, height))
    image = fold(plugins.hook.finalize_image, "image", image, job=job)
    return np.clip(np.asarray(image, np.float32), 0.0, 1.0)


def output_alpha(job: Job, shape: tuple[int, ...]) -> np.ndarray | None:
    """The content's alpha channel, resized to the output, so transparent photos stay transparent."""
    if job.content is None or job.content.alpha is None:
        return None
    return np.clip(images.resize_to(job.content.alpha, shape[1], shape[0]), 0.0, 1.0)
