"""A clip, frame by frame, without flicker: Ruder, Dosovitskiy & Brox, "Artistic style transfer for
videos" (GCPR 2016).

Each frame is an ordinary render of the engine (every spec key applies, coarse to fine included)
whose job carries ``extras["temporal"]``: the earlier results warped into it by the optical flow,
with the reliability weights. The built-in ``temporal`` plugin turns that into the temporal term
and the starting image. Finished frames go to a FrameStore, so a killed render resumes at its first
unfinished frame. ``method: adain`` renders each frame feed-forward and, with ``temporal_blend``,
mixes in the warped previous frame where the flow is reliable.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pluggy

from styled.engine.hooks import call_notification
from styled.engine.job import Job, Resolver, load_input
from styled.engine.render import render_frame
from styled.engine.spec import FIRST_FRAME_FACTOR, JobSpec
from styled.engine.types import Progress, RenderOptions, Result, TemporalTargets, versions
from styled.errors import VideoError
from styled.io.images import Image, resize_to, save_image
from styled.plugins.builtin.temporal import EXTRA
from styled.video import video_output_name
from styled.video.clip import Clip, first_frame, open_clip, read_frames
from styled.video.encode import audio_problem, write_clip
from styled.video.flow import FramePair, frame_pair, grey, long_term_weights, warp
from styled.video.store import FrameStore

log = logging.getLogger(__name__)

#: Spec keys that do not change a frame's pixels: a store made under other values is still good.
UNFINGERPRINTED = ("output", "frames", "device", "time_limit", "max_memory")
#: ``frames: true`` delivers the stylised frames in this folder beside the clip.
FRAMES_DIR = "frames"


@dataclass(frozen=True)
class ClipJob:
    """A job whose content is a clip: the spec and styles in ``job`` (its content is the first frame)."""

    job: Job
    clip: Clip

    @property
    def spec(self) -> JobSpec:
        return self.job.spec

    def output_name(self) -> str:
        """The result's file name: ``output``, with a video suffix (styled.video.video_output_name)."""
        return video_output_name(self.spec.output, self.clip.path)

    def check_output(self, output: Path) -> None:
        """VideoError, before any frame is rendered, when ``output`` cannot hold the clip's audio as it is
        (a .gif, which holds no sound at all, is let through: its report says the sound was left out)."""
        problem = audio_problem(self.clip.audio_codec, output)
        if problem and output.suffix.lower() != ".gif":
            raise VideoError(problem, where=str(output), key="output",
                             hint="use a .mkv result, which holds any audio, or one whose container takes it")


@dataclass(frozen=True)
class FrameRecord:
    """What styled keeps of one finished frame (frames.json, the report)."""

    frame: int  # 1-based
    seconds: float
    iterations: int
    losses: dict[str, float]
    #: Mean squared difference to the previous result warped by the computed flow, over reliable pixels.
    temporal_error: float | None
    reliable: float | None  # the share of reliable pixels


@dataclass(frozen=True)
class ClipResult:
    """A clip render: finished (every frame in ``store``) or interrupted (resumes from ``store``)."""

    clip_job: ClipJob
    store: FrameStore
    records: list[dict[str, Any]]
    resumed_at: int
    seconds: float
    device: str
    precision: str
    interrupted: bool = False

    @property
    def iterations(self) -> int:
        return sum(record["iterations"] for record in self.records)

    @property
    def losses(self) -> dict[str, float]:
        """The mean over frames of each final loss term."""
        names = {name for record in self.records for name in record["losses"]}
        return {name: statistics.fmean(r["losses"].get(name, 0.0) for r in self.records) for name in sorted(names)}

    def report(self) -> dict[str, Any]:
        errors = [r["temporal_error"] for r in self.records if r["temporal_error"] is not None]
        later = [r["seconds"] for r in self.records[1:]]
        return {
            "output": self.clip_job.output_name(), "clip": self.clip_job.clip.describe(),
            "frames": len(self.records), "resumed_at_frame": self.resumed_at + 1 if self.resumed_at else None,
            "seconds": round(self.seconds, 3), "iterations": self.iterations,
            "seconds_per_frame": round(statistics.median(later), 3) if later else None,
            "temporal_error": statistics.fmean(errors) if errors else None, "losses": self.losses,
            "device": self.device, "precision": self.precision, "settings": self.clip_job.spec.to_dict(),
            "interrupted": self.interrupted, "versions": clip_versions(), "per_frame": self.records,
        }


def clip_versions() -> dict[str, str]:
    """``versions()`` of a still, and the video libraries'."""
    import av
    import cv2

    return {**versions(), "av": av.__version__, "opencv": cv2.__version__}


def load_clip_job(spec: JobSpec, resolve: Resolver, *, name: str, max_pixels: int, max_frames: int) -> ClipJob:
    """Open the clip ``content`` names and load the style images; errors name the key they came from."""
    clip = open_clip(resolve("content", spec.content), max_frames=max_frames, max_pixels=max_pixels, fps=spec.fps)
    styles = tuple(load_input(resolve, "style", path, max_pixels) for path in spec.style)
    weights = resolve("weights", spec.weights) if spec.weights else None
    return ClipJob(Job(spec=spec, content=first_frame(clip), styles=styles, name=name, weights=weights), clip)


# --- rendering ----------------------------------------------------------------------------------


@dataclass
class _Earlier:
    """The last few frames: grey content at the output size and results, nearest last."""

    greys: deque = field(default_factory=deque)
    results: deque = field(default_factory=deque)

    def add(self, grey_frame: np.ndarray, result: np.ndarray, keep: int) -> None:
        for items, item in ((self.greys, grey_frame), (self.results, result)):
            items.append(item)
            while len(items) > keep:
                items.popleft()

    def back(self, offset: int) -> tuple[np.ndarray, np.ndarray] | None:
        if offset > len(self.greys):
            return None
        return self.greys[-offset], self.results[-offset]


@dataclass
class _ClipRun:
    clip_job: ClipJob
    plugins: pluggy.PluginManager
    options: RenderOptions
    store: FrameStore
    started: float = field(default_factory=time.monotonic)
    elapsed_before: float = 0.0
    earlier: _Earlier = field(default_factory=_Earlier)

    @property
    def spec(self) -> JobSpec:
        return self.clip_job.spec

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started


def render_clip(clip_job: ClipJob, plugins: pluggy.PluginManager, store: FrameStore,
                options: RenderOptions | None = None) -> ClipResult:
    """Render every unfinished frame of the clip into ``store``; tell plugins about the clip once."""
    options = options or RenderOptions()
    # Every frame is a render: load the network's weights once for all of them.
    options = dataclasses.replace(options, backbones=functools.cache(options.backbones))
    call_notification(plugins.hook.job_started, job=clip_job.job)
    try:
        result = _render_frames(_ClipRun(clip_job, plugins, options, store))
    except Exception as error:
        call_notification(plugins.hook.job_failed, job_name=clip_job.job.name, error=error)
        raise
    if not result.interrupted:
        call_notification(plugins.hook.job_finished, job=clip_job.job, result=result)
    return result


def _render_frames(run: _ClipRun) -> ClipResult:
    clip_job, spec = run.clip_job, run.spec
    start = run.store.open(fingerprint(clip_job))
    run.elapsed_before = sum(record["seconds"] for record in run.store.records)
    if start:
        log.info("%s: %d of %d frames were finished; resuming at frame %d", clip_job.job.name, start,
                 clip_job.clip.frames, start + 1)
    height, width = clip_job.job.output_shape(spec.size)
    keep = max(spec.temporal_frames)
    device = precision = ""
    for index, frame in enumerate(read_frames(clip_job.clip)):
        if index < start - keep:  # finished, and further back than any temporal term looks
            continue
        content = resize_to(frame, width, height)
        if index < start:
            run.earlier.add(grey(content), run.store.load(index), keep)
            continue
        if run.options.should_stop is not None and run.options.should_stop():
            return _clip_result(run, start, device, precision, interrupted=True)
        began = time.monotonic()
        result, record = _render_one(run, index, frame, content)
        if result.interrupted:
            return _clip_result(run, start, device, precision, interrupted=True)
        device, precision = result.device, result.precision
        run.store.save(index, result.image, dataclasses.asdict(dataclasses.replace(
            record, seconds=round(time.monotonic() - began, 3))))
        run.earlier.add(grey(content), result.image, keep)
    return _clip_result(run, start, device, precision)


def _clip_result(run: _ClipRun, start: int, device: str, precision: str, *, interrupted: bool = False) -> ClipResult:
    return ClipResult(run.clip_job, run.store, run.store.records, start, run.elapsed(), device, precision,
                      interrupted=interrupted)


def fingerprint(clip_job: ClipJob) -> dict[str, Any]:
    """What a store's frames depend on: the settings that change pixels, the clip and the styles."""
    settings = {key: value for key, value in clip_job.spec.to_dict().items() if key not in UNFINGERPRINTED}
    return {"settings": settings, "clip": clip_job.clip.describe(),
            "styles": [str(style.path) for style in clip_job.job.styles]}


def _render_one(run: _ClipRun, index: int, frame: np.ndarray, content: np.ndarray) -> tuple[Result, FrameRecord]:
    spec = run.spec
    pairs = _pairs(run, index, grey(content))
    targets = _targets(run, pairs)
    frame_spec = dataclasses.replace(spec.first_frame() if index == 0 else spec, time_limit=_frame_time(run, index))
    use_targets = targets is not None and spec.method == "gatys" and spec.temporal_weight > 0
    job = dataclasses.replace(run.clip_job.job, spec=frame_spec, content=Image(frame, None, path=run.clip_job.clip.path),
                              extras={**run.clip_job.job.extras, **({EXTRA: targets} if use_targets else {})})
    options = dataclasses.replace(run.options, on_progress=_frame_progress(run, index), on_checkpoint=None,
                                  resume=None)
    result = render_frame(job, run.plugins, options)
    if not result.interrupted and spec.method == "adain" and targets is not None and spec.temporal_blend > 0:
        result = dataclasses.replace(result, image=blend(result.image, targets, spec.temporal_blend))
    error, reliable = _temporal_error(result.image, targets)
    losses = {name: float(value) for name, value in result.losses.items()}
    return result, FrameRecord(index + 1, 0.0, result.iterations, losses, error, reliable)


def _pairs(run: _ClipRun, index: int, current: np.ndarray) -> list[FramePair]:
    """The flow to each earlier frame of ``temporal_frames`` that exists, nearest first."""
    pairs = []
    for offset in run.spec.temporal_frames:
        earlier = run.earlier.back(offset)
        if earlier is not None:
            pairs.append(frame_pair(current, earlier[0], run.spec.flow_preset))
    return pairs


def _targets(run: _ClipRun, pairs: list[FramePair]) -> TemporalTargets | None:
    if not pairs:
        return None
    weights = long_term_weights([pair.weights for pair in pairs])
    warped = [warp(run.earlier.back(offset)[1], pair.backward)
              for offset, pair in zip(run.spec.temporal_frames, pairs)]
    return TemporalTargets(tuple(warped), tuple(weights))


def blend(image: np.ndarray, targets: TemporalTargets, amount: float) -> np.ndarray:
    """``image`` with ``amount`` of the warped earlier results mixed in where they are reliable."""
    mixed = image.copy()
    for warped, weights in zip(targets.warped, targets.weights):
        share = amount * weights[..., None]
        mixed = (1.0 - share) * mixed + share * warped
    return mixed.astype(np.float32)


def _temporal_error(image: np.ndarray, targets: TemporalTargets | None) -> tuple[float | None, float | None]:
    """Ruder et al.'s temporal error against the previous result warped by the computed flow (the
    nearest of the targets, whose long-term weights are its plain reliability weights)."""
    if targets is None:
        return None, None
    weights = targets.weights[0]
    if weights.sum() == 0:
        return None, 0.0
    squared = np.square(image - targets.warped[0]).mean(axis=-1)
    return float((squared * weights).sum() / weights.sum()), float(weights.mean())


def _frame_time(run: _ClipRun, index: int) -> float | None:
    """This frame's share of what is left of ``time_limit`` (the first frame counts double)."""
    limit = run.spec.time_limit
    if limit is None:
        return None
    left = max(limit - run.elapsed(), 1e-3)
    costs = [FIRST_FRAME_FACTOR if later == 0 else 1 for later in range(index, run.clip_job.clip.frames)]
    return left * costs[0] / sum(costs)


def _frame_progress(run: _ClipRun, index: int):
    """The engine's progress of one frame, told as progress through the clip."""
    report = run.options.on_progress
    if report is None:
        return None
    frames = run.clip_job.clip.frames

    def on_progress(progress: Progress) -> None:
        report(dataclasses.replace(progress, frame=index + 1, frames=frames, elapsed=run.elapsed(),
                                   eta=_clip_eta(run, index, progress)))

    return on_progress


def _clip_eta(run: _ClipRun, index: int, progress: Progress) -> float | None:
    """This frame's ETA plus the frames after it at the pace of the finished ones (the first frame
    counts for FIRST_FRAME_FACTOR of them while nothing else is known)."""
    if progress.eta is None:
        return None
    later = [record["seconds"] for record in run.store.records[1:]]
    if later:
        pace = statistics.median(later)
    else:
        pace = (progress.elapsed + progress.eta) / (FIRST_FRAME_FACTOR if index == 0 else 1)
    return progress.eta + pace * (run.clip_job.clip.frames - index - 1)


# --- delivering ---------------------------------------------------------------------------------


def write_result(result: ClipResult, output: Path, frames_folder: Path | None = None) -> list[str]:
    """Encode the finished frames into ``output`` with the clip's audio copied; with ``frames_folder``,
    also the frames as PNGs. Returns warnings (audio that could not be kept)."""
    clip, spec = result.clip_job.clip, result.clip_job.spec
    problem = audio_problem(clip.audio_codec, output)
    count = len(result.records)
    frames = (result.store.load(index) for index in range(count))
    write_clip(output, frames, clip.rate, audio_from=None if problem or clip.frame_files else clip.path)
    if frames_folder is not None:
        frames_folder.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            save_image(frames_folder / f"{index + 1:06d}.png", result.store.load(index), bit_depth=spec.bit_depth)
    return [problem] if problem else []
