"""``Job``: a validated JobSpec with its images loaded; and how to build one from a spec.

Nothing here imports TensorFlow, so bad input is reported before the engine starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from styled.engine.spec import JobSpec
from styled.errors import ImageError
from styled.io.images import DEFAULT_MAX_PIXELS, Image, load_image


@dataclass(frozen=True)
class Job:
    """A validated spec with its images loaded at full resolution."""

    spec: JobSpec
    content: Image | None
    styles: tuple[Image, ...]
    name: str = "job"
    weights: Path | None = None  # resolved ``spec.weights``
    #: What plugins computed in ``prepare_job`` (masks, source images), by plugin name.
    extras: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def plugin_options(self, name: str) -> dict[str, Any] | None:
        """The options the job gave plugin ``name``, or None when it did not ask for it."""
        return self.spec.plugin_options(name)

    def warn(self, text: str) -> Job:
        """This job with ``text`` added to the warnings its report.json will carry (``prepare_job``
        uses it for what it changed, such as a resized mask)."""
        return dataclasses.replace(self, extras={**self.extras, WARNINGS: (*self.warnings, text)})

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(self.extras.get(WARNINGS, ()))

    def output_shape(self, long_side: int) -> tuple[int, int]:
        """(height, width) of the output at ``long_side``, in the content's (or first style's) aspect."""
        height, width = (self.content or self.styles[0]).pixels.shape[:2]
        factor = long_side / max(height, width)
        return max(1, round(height * factor)), max(1, round(width * factor))


#: The key of ``Job.extras`` that holds the job's warnings (``Job.warn``).
WARNINGS = "warnings"

#: ``resolve(key, value)`` turns a path as written in the spec into a real path (or raises).
Resolver = Callable[[str, str], Path]


def relative_to(base: Path) -> Resolver:
    """Resolve spec paths against ``base`` (the job file's folder, or the working directory)."""

    def resolve(key: str, value: str) -> Path:
        return (base / Path(value).expanduser()).resolve()

    return resolve


def load_job(spec: JobSpec, resolve: Resolver, *, name: str = "job",
             max_pixels: int = DEFAULT_MAX_PIXELS) -> Job:
    """Load every image the spec names; errors name the spec key they came from."""
    content = load_input(resolve, "content", spec.content, max_pixels) if spec.content else None
    styles = tuple(load_input(resolve, "style", path, max_pixels) for path in spec.style)
    weights = resolve("weights", spec.weights) if spec.weights else None
    return Job(spec=spec, content=content, styles=styles, name=name, weights=weights)


def load_input(resolve: Resolver, key: str, value: str, max_pixels: int) -> Image:
    """The image a spec key names; an ImageError says which key named it."""
    try:
        return load_image(resolve(key, value), max_pixels=max_pixels)
    except ImageError as error:
        raise dataclasses.replace(error, key=error.key or key) from None
