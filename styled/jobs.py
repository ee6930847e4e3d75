"""Turn a validated JobSpec into a Job: resolve its paths and load its images."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from styled.config import JobSpec
from styled.engine import Job
from styled.errors import ImageError
from styled.images import DEFAULT_MAX_PIXELS, Image, load_image

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
    content = _load(resolve, "content", spec.content, max_pixels) if spec.content else None
    styles = tuple(_load(resolve, "style", path, max_pixels) for path in spec.style)
    weights = resolve("weights", spec.weights) if spec.weights else None
    return Job(spec=spec, content=content, styles=styles, name=name, weights=weights)


def _load(resolve: Resolver, key: str, value: str, max_pixels: int) -> Image:
    try:
        return load_image(resolve(key, value), max_pixels=max_pixels)
    except ImageError as error:
        raise dataclasses.replace(error, key=error.key or key) from None
