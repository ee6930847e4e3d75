"""Reading clips: a video file through PyAV (FFmpeg's libraries, shipped in its wheels), or a folder
of numbered frames. ``open_clip`` checks everything a render will rely on before it starts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from styled.errors import ImageError, VideoError
from styled.io.images import Image, load_image
from styled.video import DEFAULT_FOLDER_FPS

#: Frames whose presentation times differ by more than this many ticks of the stream's time base
#: make a clip variable-frame-rate (timestamps are rounded to ticks, so one tick is noise).
PTS_TOLERANCE = 1
#: Audio codecs each result container can hold as they are (the audio is copied, never re-encoded).
AUDIO_CONTAINERS = {
    ".mp4": {"aac", "mp3", "opus", "ac3", "eac3", "alac", "flac"},
    ".mov": {"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le", "pcm_s16be"},
    ".webm": {"opus", "vorbis"},
    ".gif": set(),
}
#: Image files a folder of frames may hold (load_image still checks what each really is).
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
_NUMBER = re.compile(r"(\d+)")


@dataclass(frozen=True)
class Clip:
    """What styled knows of a clip before it decodes a frame."""

    path: Path
    frames: int
    rate: Fraction  # frames per second
    width: int
    height: int
    audio_codec: str | None = None
    #: A folder of numbered frames: its image files in playing order (empty for a video file).
    frame_files: tuple[Path, ...] = ()

    @property
    def duration(self) -> float:
        return float(self.frames / self.rate)

    def describe(self) -> dict:
        return {"path": self.path.name, "frames": self.frames, "fps": float(self.rate),
                "fps_exact": f"{self.rate.numerator}/{self.rate.denominator}", "width": self.width,
                "height": self.height, "duration": round(self.duration, 3), "audio": self.audio_codec}


def open_clip(path: Path, *, max_frames: int, max_pixels: int, fps: float | None = None) -> Clip:
    """Check and describe a clip; VideoError says what is wrong with it and how to fix it."""
    clip = _open_folder(path, fps, max_pixels) if path.is_dir() else _open_file(path)
    if clip.width * clip.height > max_pixels:
        raise VideoError(f"its frames are {clip.width} x {clip.height}, over the limit of {max_pixels:,} pixels "
                         "per frame", where=str(path), key="content", hint="scale the clip down first")
    if clip.frames > max_frames:
        raise VideoError(f"it has {clip.frames} frames, over the limit of {max_frames}", where=str(path),
                         key="content", hint=f"cut it into clips of at most {max_frames} frames, or ask the "
                                             "operator to raise max_video_frames")
    return clip


def read_frames(clip: Clip) -> Iterator[np.ndarray]:
    """The clip's frames in order, (H, W, 3) float32 in [0, 1]."""
    if clip.frame_files:
        for path in clip.frame_files:
            yield _folder_frame(clip, path)
        return
    import av

    with av.open(str(clip.path)) as container:
        for frame in container.decode(video=0):
            if (frame.width, frame.height) != (clip.width, clip.height):
                raise VideoError(f"a frame is {frame.width} x {frame.height} where the clip said {clip.width} x "
                                 f"{clip.height}; styled needs one frame size", where=str(clip.path), key="content",
                                 hint="re-encode the clip at one size")
            yield frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0


def first_frame(clip: Clip) -> Image:
    """The clip's first frame as an Image (what the contact sheet and the job's shape use)."""
    pixels = next(read_frames(clip))
    return Image(pixels, None, path=clip.path)


# --- video files --------------------------------------------------------------------------------


def _open_file(path: Path) -> Clip:
    import av

    try:
        with av.open(str(path)) as container:
            return _describe(path, container)
    except av.FFmpegError as error:
        raise VideoError(f"not a video styled can read: {error}", where=str(path), key="content",
                         hint="give an .mp4, .mov, .mkv, .webm or animated .gif, or a folder of numbered frames") from None


def _describe(path: Path, container) -> Clip:
    if not container.streams.video:
        raise VideoError("the file has no video stream", where=str(path), key="content",
                         hint="give a clip with pictures; a sound file cannot be stylised")
    stream = container.streams.video[0]
    audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
    times = sorted(packet.pts for packet in container.demux(stream) if packet.pts is not None and packet.size)
    if not times:
        raise VideoError("the video stream has no frames", where=str(path), key="content")
    rate = _constant_rate(path, times, stream.time_base, (stream.average_rate, stream.guessed_rate, stream.base_rate))
    return Clip(path, len(times), rate, stream.codec_context.width, stream.codec_context.height, audio)


def _constant_rate(path: Path, times: list[int], time_base: Fraction, declared: tuple) -> Fraction:
    """The frame rate: the one the stream declares when the frames' presentation times agree with it
    (to a tick: a millisecond time base cannot hold 24 fps exactly), else the times' own; VideoError
    when the times are not evenly spaced."""
    steps = np.diff(np.asarray(times, np.int64))
    if len(steps) == 0:
        return Fraction(DEFAULT_FOLDER_FPS)
    if steps.min() <= 0 or steps.max() - steps.min() > PTS_TOLERANCE:
        low, high = (float(1 / (int(step) * time_base)) for step in (steps.max(), steps.min()))
        raise VideoError(f"the clip has a variable frame rate ({low:.3g} to {high:.3g} frames per second); "
                         "styled keeps a clip's timing exactly and needs a constant rate", where=str(path),
                         key="content", hint="convert it first, e.g. ffmpeg -i in.mp4 -fps_mode cfr out.mp4")
    mean = Fraction(int(steps.sum()), len(steps)) * time_base
    for rate in declared:
        if rate and abs(1 / Fraction(rate) - mean) <= PTS_TOLERANCE * time_base:
            return Fraction(rate)
    return (1 / mean).limit_denominator(1001)


# --- folders of frames --------------------------------------------------------------------------


def _open_folder(path: Path, fps: float | None, max_pixels: int) -> Clip:
    files = _numbered_frames(path)
    first = _load_frame(files[0], max_pixels)
    height, width = first.pixels.shape[:2]
    rate = Fraction(fps).limit_denominator(1001) if fps is not None else Fraction(DEFAULT_FOLDER_FPS)
    return Clip(path, len(files), rate, width, height, None, tuple(files))


def _numbered_frames(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and _NUMBER.search(p.name)
             and not p.name.startswith(".")]
    if not files:
        raise VideoError("the folder has no numbered frames", where=str(folder), key="content",
                         hint="put frames named like frame_0001.png, frame_0002.png, ... in it")
    return sorted(files, key=lambda p: (int(_NUMBER.findall(p.name)[-1]), p.name))


def _load_frame(path: Path, max_pixels: int) -> Image:
    try:
        return load_image(path, max_pixels=max_pixels)
    except ImageError as error:
        raise VideoError(error.message, where=error.where, key="content", hint=error.hint) from None


def _folder_frame(clip: Clip, path: Path) -> np.ndarray:
    pixels = _load_frame(path, clip.width * clip.height).pixels
    if pixels.shape[:2] != (clip.height, clip.width):
        raise VideoError(f"this frame is {pixels.shape[1]} x {pixels.shape[0]}, the first was "
                         f"{clip.width} x {clip.height}", where=str(path), key="content",
                         hint="every frame of a clip must have the same size")
    return pixels
