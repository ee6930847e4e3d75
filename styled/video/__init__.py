"""Video: a clip in, a stylised clip out, without flicker (Ruder, Dosovitskiy & Brox, GCPR 2016).

``clip`` decodes (PyAV) and checks a clip, ``flow`` computes OpenCV DIS optical flow and its
reliability, ``store`` keeps finished frames so that a killed render resumes, ``render`` runs the
engine frame by frame with the temporal term, ``encode`` writes the result with the clip's audio
copied, and ``camera`` makes test clips whose true flow is known. PyAV and OpenCV come with the
``video`` extra (``pip install -e '.[video]'``); nothing here is imported for a still.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from styled.errors import VideoError

#: Container suffixes styled reads and writes as clips (an animated ``.gif`` included).
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".gif")
#: A folder of numbered frames without ``fps`` plays at this rate.
DEFAULT_FOLDER_FPS = 24
#: Longest clip (in frames) a render takes unless told otherwise (the daemon's ``max_video_frames``):
#: about seven minutes at 24 frames per second.
DEFAULT_MAX_VIDEO_FRAMES = 10000
#: The import names of the ``video`` extra's packages, and what pip calls them.
LIBRARIES = {"av": "av", "cv2": "opencv-python-headless"}
#: The result of a clip whose ``output`` names an image: this suffix (or the clip's own).
DEFAULT_VIDEO_SUFFIX = ".mp4"


def is_clip(path: Path) -> bool:
    """A content path styled renders as a video: a video file, or a folder (of numbered frames)."""
    return path.suffix.lower() in VIDEO_SUFFIXES or path.is_dir()


def video_output_name(output: str, content: Path) -> str:
    """A clip's result is a clip: an ``output`` that names an image (the default ``result.png``)
    takes the clip's own suffix (``.mp4`` for a folder of frames); any other is kept as given, so
    an unknown one is refused by name."""
    from styled.io.images import SAVE_FORMATS

    if Path(output).suffix.lower() not in SAVE_FORMATS:
        return output
    own = content.suffix.lower()
    return str(Path(output).with_suffix(own if own in VIDEO_SUFFIXES else DEFAULT_VIDEO_SUFFIX))


def require_video_libraries() -> None:
    """VideoError, naming the extra to install, when PyAV or OpenCV is missing."""
    missing = [package for module, package in LIBRARIES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise VideoError(f"rendering a clip needs {' and '.join(missing)}, which are not installed",
                         hint="pip install 'styled[video]' (or -e '.[video]' in a checkout)")
