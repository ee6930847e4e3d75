"""Thumbnails made once and cached, and a job folder as a zip streamed while it is written."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

from PIL import Image as PILImage

from styled.io.files import atomic_write_bytes

#: Long side of a gallery thumbnail, in pixels (sharp on a phone's screen at two columns).
THUMBNAIL_SIDE = 360
THUMBNAIL_QUALITY = 82
#: A zip is sent in pieces of about this size.
ZIP_CHUNK = 1 << 20


def default_thumbnail_folder() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("styled")) / "thumbnails"


def thumbnail(source: Path, cache: Path) -> Path:
    """A JPEG of ``source`` at most THUMBNAIL_SIDE pixels long, made on first use and kept in ``cache``.

    The cache key is the source's path, size and modification time, so a changed result gets a new
    thumbnail; two requests racing to make one both write it atomically.
    """
    info = source.stat()
    key = hashlib.sha256(f"{source}\0{info.st_size}\0{info.st_mtime_ns}".encode()).hexdigest()[:40]
    target = cache / key[:2] / f"{key}.jpg"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, _thumbnail_bytes(source))
    return target


def _thumbnail_bytes(source: Path) -> bytes:
    with PILImage.open(source) as picture:
        picture.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # JPEG decodes at a fraction of its size
        picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        small = picture.convert("RGB")
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return buffer.getvalue()


class _Pipe(io.RawIOBase):
    """A write-only stream whose bytes are taken out piece by piece (zipfile writes into it)."""

    def __init__(self) -> None:
        super().__init__()
        self.pieces: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.pieces.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.pieces = b"".join(self.pieces), []
        return data


def zip_folder(folder: Path, top: str) -> Iterator[bytes]:
    """The folder's regular files as a zip under ``top/``, produced while it is read (never whole in
    memory or on disk). Links and anything but regular files are left out."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_STORED) as archive:
        for path, relative in _regular_files(folder):
            with open(path, "rb") as source, archive.open(f"{top}/{relative}", "w", force_zip64=True) as entry:
                while chunk := source.read(ZIP_CHUNK):
                    entry.write(chunk)
                    yield pipe.take()
            yield pipe.take()
    yield pipe.take()


def _regular_files(folder: Path) -> Iterator[tuple[Path, str]]:
    for parent, subfolders, files in os.walk(folder):  # os.walk does not descend into links
        subfolders.sort()
        for name in sorted(files):
            path = Path(parent, name)
            if path.is_file() and not path.is_symlink():
                yield path, path.relative_to(folder).as_posix()
