"""Finished frames on disk, so that a killed clip resumes at its first unfinished frame.

Each frame is a 16-bit PNG (the next frame warps it, so 8 bits would add banding), written
atomically, then its record is added to ``frames.json``. A frame counts as finished when both exist.
``fingerprint.json`` holds what the frames were made from; a store made for another spec or clip
is emptied rather than mixed into this one.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from styled.io.files import atomic_write_json
from styled.io.images import load_image, save_image

log = logging.getLogger(__name__)

RECORDS_FILE = "frames.json"
FINGERPRINT_FILE = "fingerprint.json"
STORE_BIT_DEPTH = 16


class FrameStore:
    """The finished frames of one clip render, in ``folder``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._records: list[dict[str, Any]] = []

    def open(self, fingerprint: Mapping[str, Any]) -> int:
        """Make the store ready for ``fingerprint``; return how many frames are already finished."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._read_json(FINGERPRINT_FILE) != json.loads(json.dumps(fingerprint)):
            self._empty()
            atomic_write_json(self.folder / FINGERPRINT_FILE, dict(fingerprint))
        records = self._read_json(RECORDS_FILE) or []
        finished = 0
        while finished < len(records) and self.frame_path(finished).exists():
            finished += 1
        self._records = list(records[:finished])
        return finished

    def frame_path(self, index: int) -> Path:
        return self.folder / f"{index + 1:06d}.png"

    def save(self, index: int, image: np.ndarray, record: Mapping[str, Any]) -> None:
        """Keep frame ``index`` (0-based; the next to finish) and its record."""
        save_image(self.frame_path(index), image, bit_depth=STORE_BIT_DEPTH)
        self._records = [*self._records[:index], dict(record)]
        atomic_write_json(self.folder / RECORDS_FILE, self._records)

    def load(self, index: int) -> np.ndarray:
        return load_image(self.frame_path(index)).pixels

    @property
    def records(self) -> list[dict[str, Any]]:
        return list(self._records)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _read_json(self, name: str) -> Any:
        try:
            return json.loads((self.folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _empty(self) -> None:
        for path in self.folder.iterdir():
            if path.is_file():
                path.unlink()
        if any(self.folder.iterdir()):
            log.warning("the frame store %s holds folders styled did not write; they are left alone", self.folder)
