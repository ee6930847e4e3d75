"""Writing a clip with PyAV: the frames encoded at the source's exact frame rate, the source's audio
copied packet by packet (never re-encoded), the file written atomically."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from styled.errors import VideoError
from styled.io.files import atomic_write_stream
from styled.video.clip import AUDIO_CONTAINERS


#: Test clips' sine tone, well below full scale.
TONE_AMPLITUDE = 0.2


@dataclass(frozen=True)
class Encoding:
    """How one container is written."""

    format: str
    codec: str
    pixel_format: str
    options: dict[str, str]
    #: 4:2:0 chroma needs even sides; the last row or column of an odd-sized frame is dropped.
    even: bool = True


#: x264 at CRF 18 is visually lossless for painted frames; VP9's CRF 30 with no bitrate cap is its
#: counterpart; GIF's 3-3-2 palette is for quick looks.
ENCODINGS = {
    ".mp4": Encoding("mp4", "libx264", "yuv420p", {"crf": "18", "preset": "medium"}),
    ".mov": Encoding("mov", "libx264", "yuv420p", {"crf": "18", "preset": "medium"}),
    ".mkv": Encoding("matroska", "libx264", "yuv420p", {"crf": "18", "preset": "medium"}),
    ".webm": Encoding("webm", "libvpx-vp9", "yuv420p", {"crf": "30", "b": "0"}),
    ".gif": Encoding("gif", "gif", "rgb8", {}, even=False),
}


def audio_problem(audio_codec: str | None, output: Path) -> str | None:
    """Why the clip's audio cannot be copied into ``output``'s container as it is, or None."""
    accepted = AUDIO_CONTAINERS.get(output.suffix.lower())
    if audio_codec is None or accepted is None or audio_codec in accepted:
        return None
    if not accepted:
        return f"{output.suffix} holds no sound; the clip's {audio_codec} audio is left out"
    return f"{output.suffix} cannot hold the clip's {audio_codec} audio as it is"


def write_clip(path: Path, frames: Iterable[np.ndarray], rate: Fraction, *, audio_from: Path | None = None,
               tone: float | None = None) -> None:
    """Encode (H, W, 3) float frames in [0, 1] at ``rate`` frames per second into ``path``.

    ``audio_from``: copy that file's first audio stream. ``tone``: add a sine of that many hertz
    instead (test clips). The container follows ``path``'s suffix (ENCODINGS).
    """
    encoding = ENCODINGS.get(path.suffix.lower())
    if encoding is None:
        raise VideoError(f"cannot write '{path.suffix or 'no suffix'}' clips", where=str(path),
                         hint=f"use one of {', '.join(ENCODINGS)}")
    atomic_write_stream(path, lambda stream: _write(stream, encoding, frames, rate, audio_from, tone))


def _write(stream, encoding: Encoding, frames: Iterable[np.ndarray], rate: Fraction, audio_from: Path | None,
           tone: float | None) -> None:
    """Every stream is added before the first packet is written: the header lists them all."""
    import av

    pictures = (_quantise(frame, encoding.even) for frame in frames)
    first = next(pictures, None)
    if first is None:
        raise VideoError("there are no frames to write")
    with av.open(stream, mode="w", format=encoding.format) as container, _AudioSource(audio_from) as audio:
        video = _video_stream(container, encoding, rate, first.shape)
        audio.add_to(container)
        tone_stream = _tone_stream(container) if tone is not None and audio_from is None else None
        count = 0
        for count, pixels in enumerate(itertools.chain([first], pictures), start=1):
            picture = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            picture.pts = count - 1
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
        audio.copy(container)
        if tone_stream is not None:
            _encode_tone(container, tone_stream, tone, count / rate)


def _quantise(frame: np.ndarray, even: bool) -> np.ndarray:
    pixels = (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if even:
        pixels = pixels[: pixels.shape[0] // 2 * 2, : pixels.shape[1] // 2 * 2]
    return np.ascontiguousarray(pixels)


def _video_stream(container, encoding: Encoding, rate: Fraction, shape: tuple[int, ...]):
    stream = container.add_stream(encoding.codec, rate=rate, options=dict(encoding.options))
    stream.height, stream.width = shape[:2]
    stream.pix_fmt = encoding.pixel_format
    stream.time_base = 1 / rate
    return stream


class _AudioSource:
    """The first audio stream of a file, copied packet by packet (nothing when there is none)."""

    def __init__(self, path: Path | None):
        self.path, self.original, self.incoming, self.outgoing = path, None, None, None

    def __enter__(self) -> _AudioSource:
        if self.path is not None:
            import av

            self.original = av.open(str(self.path))
            self.incoming = self.original.streams.audio[0] if self.original.streams.audio else None
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.original is not None:
            self.original.close()

    def add_to(self, container) -> None:
        if self.incoming is not None:
            self.outgoing = container.add_stream_from_template(self.incoming)

    def copy(self, container) -> None:
        if self.outgoing is None:
            return
        for packet in self.original.demux(self.incoming):
            if packet.dts is None:
                continue
            packet.stream = self.outgoing
            container.mux(packet)


def _tone_stream(container, sample_rate: int = 48000):
    return container.add_stream("aac", rate=sample_rate, layout="mono")


def _encode_tone(container, stream, hertz: float, seconds: Fraction) -> None:
    import av

    sample_rate = stream.codec_context.sample_rate
    samples = TONE_AMPLITUDE * np.sin(2 * np.pi * hertz * np.arange(int(seconds * sample_rate)) / sample_rate).astype(np.float32)
    chunk = stream.codec_context.frame_size or 1024
    for start in range(0, len(samples), chunk):
        frame = av.AudioFrame.from_ndarray(samples[None, start:start + chunk], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = sample_rate, start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
