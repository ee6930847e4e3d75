"""The engine's leaf types: what plugins, the daemon and the CLI see of a render.

Nothing here imports TensorFlow at module level, so hook specs and the daemon can name these types
without loading it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from styled.engine.job import Job
from styled.engine.optimize import ScaleState
from styled.engine.spec import JobSpec
from styled.io.files import atomic_write_bytes
from styled.nets.weights import Backbone, load_backbone

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import tensorflow as tf

    from styled.nets.vgg import FeatureExtractor

#: ``fn(image, features)`` of a loss term: a scalar tensor.
LossFn = Callable[["tf.Tensor", Mapping[str, "tf.Tensor"]], "tf.Tensor"]


@dataclass(frozen=True)
class LossTerm:
    """One weighted term of the objective.

    ``fn(image, features)`` returns a scalar tensor. ``image`` is the current (1, H, W, 3) float32
    image in [0, 1]; ``features`` maps each layer named in ``layers`` to its activation.
    """

    name: str
    weight: float
    fn: LossFn
    layers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))


@dataclass(frozen=True)
class ScaleJob:
    """What a loss plugin sees at one scale: the job's images resized to it, and a VGG helper."""

    job: Job
    content: tf.Tensor | None  # (1, H, W, 3) float32 in [0, 1]
    styles: tuple[tf.Tensor, ...]
    style_weights: tuple[float, ...]
    scale_index: int
    scale_count: int
    extractor: FeatureExtractor = field(repr=False)

    @property
    def spec(self) -> JobSpec:
        return self.job.spec

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the image being optimised at this scale."""
        return self.job.output_shape(self.spec.scale_sizes()[self.scale_index])

    def plugin_options(self, name: str) -> dict[str, Any] | None:
        return self.job.plugin_options(name)

    def features(self, image: tf.Tensor, layers: Iterable[str]) -> dict[str, tf.Tensor]:
        """VGG activations of ``image`` (1, H, W, 3) at ``layers``, for computing targets."""
        import tensorflow as tf

        return self.extractor(tf.convert_to_tensor(image, tf.float32), tuple(layers))


@dataclass(frozen=True)
class Progress:
    """One optimiser iteration, as reported to progress bars and the daemon's progress.json."""

    scale: int  # 1-based
    scales: int
    width: int
    height: int
    iteration: int  # 1-based, within the scale
    iterations: int
    loss: float
    terms: Mapping[str, float]
    elapsed: float
    eta: float | None
    #: Iterations done so far over all scales (resumed ones included): a count that only grows.
    done: int = 0


@dataclass
class Checkpoint:
    """Enough state to resume a render near where it stopped."""

    scale_index: int
    state: ScaleState
    history: list[dict[str, float]]
    elapsed: float

    def save(self, path: Path) -> None:
        """Write atomically: a reader (or a restart after kill -9) sees the old or the new one."""
        meta = {"scale_index": self.scale_index, "iteration": self.state.iteration,
                "best_loss": self.state.best_loss, "history": self.history + self.state.history,
                "scale_history_start": len(self.history), "elapsed": self.elapsed}
        best = self.state.best_image if self.state.best_image is not None else self.state.image
        buffer = io.BytesIO()
        np.savez(buffer, image=self.state.image, best_image=best, meta=json.dumps(meta))
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            history = meta["history"]
            start = meta["scale_history_start"]
            state = ScaleState(image=data["image"], iteration=meta["iteration"],
                               best_image=data["best_image"], best_loss=meta["best_loss"],
                               history=history[start:])
        return cls(meta["scale_index"], state, history[:start], meta["elapsed"])


@dataclass(frozen=True)
class Result:
    """The rendered image and how it went."""

    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    alpha: np.ndarray | None
    losses: dict[str, float]
    history: list[dict[str, float]]
    iterations: int
    seconds: float
    device: str
    precision: str
    settings: dict[str, Any]
    interrupted: bool = False
    precision_reason: str = ""
    checkpoint: Checkpoint | None = None

    def report(self) -> dict[str, Any]:
        """The keys of report.json (the daemon adds timestamps)."""
        return {
            "iterations": self.iterations,
            "seconds": round(self.seconds, 3),
            "seconds_per_iteration": round(self.seconds / self.iterations, 4) if self.iterations else None,
            "losses": self.losses,
            "settings": self.settings,
            "device": self.device,
            "precision": self.precision,
            "precision_reason": self.precision_reason,
            "versions": versions(),
            "interrupted": self.interrupted,
            "history": self.history,
        }


def versions() -> dict[str, str]:
    """The versions a report names, so that a result can be reproduced."""
    import importlib.metadata
    import platform

    import PIL
    import tensorflow as tf

    return {"styled": importlib.metadata.version("styled"), "tensorflow": tf.__version__, "numpy": np.__version__,
            "pillow": PIL.__version__, "python": platform.python_version()}


def clock(seconds: float | None) -> str:
    """Seconds as H:MM:SS or M:SS, '?' when unknown (progress bars, logs, ``styled status``)."""
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


ProgressCallback = Callable[[Progress], None]
CheckpointCallback = Callable[[Checkpoint], None]


@dataclass(frozen=True)
class RenderOptions:
    """How render() reports and can be interrupted; none of it changes the image."""

    on_progress: ProgressCallback | None = None
    on_checkpoint: CheckpointCallback | None = None
    checkpoint_seconds: float | None = None
    should_stop: Callable[[], bool] | None = None
    resume: Checkpoint | None = None
    #: How to get network weights; a long-running caller passes a memoised loader so that
    #: every job does not read them again.
    backbones: Callable[[str, Path | None], Backbone] = load_backbone
