"""Shared fixtures: tiny real images, and a guard that fails any test leaking threads."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from PIL import Image as PILImage

REPO = Path(__file__).resolve().parents[1]
SHARED_IMAGES = REPO.parent / "shared" / "images"
#: Threads a test may leave behind: TensorFlow's and pytest-timeout's own helpers.
ALLOWED_THREAD_PREFIXES = ("pytest_timeout", "ThreadPoolExecutor", "tf_", "Dummy-", "AnyIO worker thread")
LEAK_GRACE_SECONDS = 5.0


def shared_image(relative: str) -> Path:
    """A test image from ../shared/images (content/, style/, textures/, ...)."""
    path = SHARED_IMAGES / relative
    if not path.exists():
        pytest.fail(f"test image {path} is missing: tests read ../shared/images beside the repo")
    return path


def tiny_copy(source: Path, target: Path, long_side: int) -> Path:
    """Save a small copy of ``source`` (tests stay fast on 2 cores)."""
    with PILImage.open(source) as picture:
        picture = picture.convert("RGB")
        picture.thumbnail((long_side, long_side), PILImage.Resampling.LANCZOS)
        picture.save(target)
    return target


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory) -> dict[str, Path]:
    """Tübingen (64 px), Starry Night and The Scream (48 px) as small PNGs."""
    folder = tmp_path_factory.mktemp("tiny")
    return {
        "content": tiny_copy(shared_image("content/tubingen.jpg"), folder / "content.png", 64),
        "style": tiny_copy(shared_image("style/starry_night.jpg"), folder / "style.png", 48),
        "style2": tiny_copy(shared_image("style/the_scream.jpg"), folder / "style2.png", 48),
    }


def _live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive() and not t.name.startswith(ALLOWED_THREAD_PREFIXES)}


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves threads running (observers, workers, timers)."""
    before = _live_threads()
    yield
    deadline = time.monotonic() + LEAK_GRACE_SECONDS
    leaked = _live_threads() - before
    while leaked and time.monotonic() < deadline:
        time.sleep(0.05)
        leaked = {t for t in leaked if t.is_alive()}
    assert not leaked, f"test leaked threads: {sorted(t.name for t in leaked)}"
