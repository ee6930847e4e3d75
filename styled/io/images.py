"""Images in and out: the one loader, atomic saving, resizing and colour transfer.

Every image the program reads opens through :func:`load_image`, which enforces the allowed formats
and the pixel limit before anything is decoded. Pixels travel as float32 RGB in [0, 1], shaped
``(height, width, 3)``; alpha, when there is one, travels beside them as ``(height, width)``.
"""

from __future__ import annotations

import functools
import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import ExifTags, ImageOps, UnidentifiedImageError
from PIL import Image as PILImage

from styled.errors import FileKindError, ImageError
from styled.io.files import atomic_write_stream, open_regular

logger = logging.getLogger(__name__)

#: A 100-megapixel medium-format photo (Fujifilm GFX100: 11648 x 8736 = 101.8 MP) is the largest
#: common camera output, so the default sits above it; the float32 copy (12 bytes a pixel) is then
#: at most about 1.4 GB. It is below Pillow's hard bomb limit (2 x ``PIL.Image.MAX_IMAGE_PIXELS``,
#: 179 MP), so ours is the limit users meet, with a message that says how to raise it. Between
#: Pillow's warning threshold (89.5 MP) and this limit Pillow emits a DecompressionBombWarning;
#: we leave the process-wide warning filters alone, and refuse it only if filters make it an error.
DEFAULT_MAX_PIXELS = 120_000_000

#: Raster formats people keep photos and paintings in. Everything else is refused before a decoder
#: runs: EPS and PDF would start Ghostscript, and the many rare decoders (PCX, SGI, FLI, ...) are
#: attack surface that no user needs. MPO is how Pillow names the JPEGs that many cameras and
#: phones write (a JPEG with an extra preview picture), so refusing it would refuse plain photos.
ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "MPO", "TIFF", "WEBP", "BMP", "GIF"})
#: The decoders Pillow may try. MPO has no decoder of its own: the JPEG one hands it back.
DECODERS = tuple(sorted(ALLOWED_FORMATS - {"MPO"}))

#: The config key that raises the pixel limit; named in the error so the user knows what to set.
MAX_PIXELS_KEY = "max_image_pixels"

#: How each allowed format starts, so that a file which begins like an image but will not open
#: is called truncated or corrupt rather than "not an image".
FORMAT_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"II*\x00",
    b"MM\x00*",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"RIFF",
)

#: Output suffix -> Pillow format name.
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
BIT_DEPTHS = (8, 16)
#: Quality 95 is where JPEG artefacts stop being visible on painterly textures.
JPEG_QUALITY = 95
#: 4:4:4 chroma: the default 4:2:0 halves colour resolution and smears thin coloured strokes.
JPEG_SUBSAMPLING_444 = 0

#: Modes whose samples are 16-bit greyscale; Pillow reads these at full precision.
GREY16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
#: 32-bit integer and float samples have no agreed white point, so there is no honest [0, 1].
UNSCALED_MODES = frozenset({"I", "F"})
#: Modes that carry an alpha channel (``a`` = premultiplied, which ``convert`` undoes).
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})

#: PNG colour types with colour or alpha; Pillow reduces these to 8 bits at 16-bit depth.
PNG_IHDR_DEPTH_OFFSET = 24
PNG_IHDR_COLOUR_TYPE_OFFSET = 25
PNG_COLOUR_TYPES_PILLOW_REDUCES = frozenset({2, 4, 6})
TIFF_BITS_PER_SAMPLE = 258


@dataclass(frozen=True, eq=False)
class Image:
    """A loaded image. ``eq=False`` because arrays do not compare to a single truth value."""

    pixels: np.ndarray
    alpha: np.ndarray | None
    path: Path | None = None
    bit_depth: int = 8

    def __post_init__(self) -> None:
        if self.pixels.ndim != 3 or self.pixels.shape[2] != 3:
            raise ValueError(f"pixels must be (height, width, 3), got {self.pixels.shape}")
        if self.alpha is not None and self.alpha.shape != self.pixels.shape[:2]:
            raise ValueError(f"alpha must be {self.pixels.shape[:2]}, got {self.alpha.shape}")
        if self.bit_depth not in BIT_DEPTHS:
            raise ValueError(f"bit_depth must be one of {BIT_DEPTHS}, got {self.bit_depth}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), the order Pillow and users speak in."""
        height, width = self.pixels.shape[:2]
        return width, height


# --- loading ------------------------------------------------------------------------------------


def load_image(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image:
    """Open ``path`` as an image, refusing non-images and oversize images before decoding.

    The file is opened once, and only if it is a regular file (a FIFO would block, a device may do
    anything when read); everything after that reads the same open file.
    """
    path = Path(path)
    try:
        with open_regular(path) as stream:
            return _load_stream(stream, path, max_pixels)
    except FileNotFoundError:
        raise ImageError("the image does not exist", where=str(path), hint="check the path") from None
    except FileKindError as kind:
        message = "is a folder, not an image" if "folder" in kind.message else kind.message
        raise ImageError(message, where=str(path), hint="name an image file") from None
    except PermissionError:
        raise ImageError("cannot be read: permission denied", where=str(path)) from None


def _load_stream(stream: BinaryIO, path: Path, max_pixels: int) -> Image:
    if os.fstat(stream.fileno()).st_size == 0:
        raise ImageError("not an image: the file is empty", where=str(path))
    with _open_header(stream, path) as header:
        _check_format(header, path)
        _check_pixel_count(header.size, max_pixels, path)
        if _is_reduced_png16(stream, header):
            pixels, alpha = _load_png16(stream, path, _header_orientation(header))
            return Image(pixels, alpha, path, bit_depth=16)
        bit_depth = _source_bit_depth(header, path)  # the TIFF tags go with the header
        pixels, alpha = _to_arrays(_decode(header, path), path)
        return Image(pixels, alpha, path, bit_depth=bit_depth)


def _open_header(stream: BinaryIO, path: Path) -> PILImage.Image:
    """Read only the header, trying only the allowed formats' decoders."""
    try:
        return PILImage.open(stream, formats=DECODERS)
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        # Pillow's own limit, checked inside open(); it is process-wide, so we leave it alone.
        raise ImageError(f"too large to open safely: {exc}", where=str(path),
                         hint="shrink the image before using it") from exc
    except UnidentifiedImageError as exc:
        raise _unidentified_error(stream, path) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _corrupt_error(path, exc) from exc


def _unidentified_error(stream: BinaryIO, path: Path) -> ImageError:
    stream.seek(0)
    head = stream.read(max(map(len, FORMAT_SIGNATURES)))
    if head.startswith(FORMAT_SIGNATURES):
        return ImageError("the image is truncated or corrupt", where=str(path),
                          hint="export or copy it again")
    return ImageError("not an image (or not a format we accept)", where=str(path),
                      hint=f"use one of: {', '.join(sorted(ALLOWED_FORMATS))}")


def _corrupt_error(path: Path, detail: object) -> ImageError:
    return ImageError(f"the image is truncated or corrupt ({detail})", where=str(path),
                      hint="export or copy it again")


def _check_format(picture: PILImage.Image, path: Path) -> None:
    # open(formats=...) already restricts the decoders; this guards against a plugin that
    # hands back a different format than the one asked for (JPEG -> MPO does exactly that).
    if picture.format not in ALLOWED_FORMATS:
        raise ImageError(f"not an image format we accept ({picture.format})", where=str(path),
                         hint=f"use one of: {', '.join(sorted(ALLOWED_FORMATS))}")


def _check_pixel_count(size: tuple[int, int], max_pixels: int, path: Path) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageError(
            f"image is {width} x {height} = {width * height:,} pixels, "
            f"over the limit of {max_pixels:,}",
            where=str(path),
            hint=f"shrink the image, or raise '{MAX_PIXELS_KEY}' in the config if you trust it",
        )


def _decode(picture: PILImage.Image, path: Path) -> PILImage.Image:
    """Decode the pixels and apply the EXIF orientation; decoding errors surface here."""
    try:
        picture.load()
        return ImageOps.exif_transpose(picture)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _corrupt_error(path, exc) from exc


def _to_arrays(picture: PILImage.Image, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Float RGB in [0, 1] and alpha (or None) from any mode we accept."""
    if picture.mode in GREY16_MODES:
        return _grey16_arrays(picture)
    if picture.mode in UNSCALED_MODES:
        raise ImageError(f"32-bit samples (mode {picture.mode}) are not supported",
                         where=str(path), hint="save the image as 8- or 16-bit")
    target = "RGBA" if _has_alpha(picture) else "RGB"
    try:
        values = np.asarray(picture.convert(target), dtype=np.float32) / np.float32(255)
    except ValueError as exc:
        raise ImageError(f"colour mode {picture.mode} is not supported", where=str(path),
                         hint="save the image as RGB") from exc
    return _split_alpha(values)


def _has_alpha(picture: PILImage.Image) -> bool:
    return picture.mode in ALPHA_MODES or "transparency" in picture.info


def _split_alpha(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if values.shape[-1] == 4:
        return np.ascontiguousarray(values[..., :3]), np.ascontiguousarray(values[..., 3])
    return values, None


def _grey16_arrays(picture: PILImage.Image) -> tuple[np.ndarray, np.ndarray | None]:
    raw = np.asarray(picture).astype(np.uint16)
    grey = raw.astype(np.float32) / np.float32(np.iinfo(np.uint16).max)
    transparent = picture.info.get("transparency")
    alpha = None if transparent is None else (raw != transparent).astype(np.float32)
    return np.repeat(grey[..., None], 3, axis=-1), alpha


def _source_bit_depth(header: PILImage.Image, path: Path) -> int:
    """16 when the file stores 16-bit samples, even where Pillow decodes only the top 8 bits."""
    if header.mode in GREY16_MODES:
        return 16
    bits = getattr(header, "tag_v2", {}).get(TIFF_BITS_PER_SAMPLE)
    if bits and max(np.atleast_1d(bits)) == 16:
        # Pillow has no 16-bit RGB mode and keeps only the high byte of each TIFF sample.
        logger.warning("%s: 16-bit colour TIFF read at 8-bit precision", path)
        return 16
    return 8


# --- 16-bit colour PNG --------------------------------------------------------------------------


def _is_reduced_png16(stream: BinaryIO, picture: PILImage.Image) -> bool:
    """A 16-bit PNG with colour or alpha, which Pillow would cut down to 8 bits."""
    if picture.format != "PNG":
        return False
    stream.seek(0)
    header = stream.read(PNG_IHDR_COLOUR_TYPE_OFFSET + 1)
    if len(header) <= PNG_IHDR_COLOUR_TYPE_OFFSET:
        return False
    depth, colour_type = header[PNG_IHDR_DEPTH_OFFSET], header[PNG_IHDR_COLOUR_TYPE_OFFSET]
    return depth == 16 and colour_type in PNG_COLOUR_TYPES_PILLOW_REDUCES


def _header_orientation(header: PILImage.Image) -> int:
    """The EXIF orientation from the header alone (``getexif()`` may decode the whole image)."""
    if "exif" not in header.info:
        return 1
    exif = PILImage.Exif()
    exif.load(header.info["exif"])
    return exif.get(ExifTags.Base.Orientation, 1)


def _load_png16(stream: BinaryIO, path: Path, orientation: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Full 16-bit precision through TensorFlow's PNG decoder (Pillow has no 16-bit RGB mode)."""
    import tensorflow as tf  # heavy; only 16-bit colour PNGs need it

    stream.seek(0)
    try:
        raw = tf.io.decode_png(stream.read(), channels=0, dtype=tf.uint16).numpy()
    except tf.errors.OpError as exc:  # its message is mostly TensorFlow's own plumbing
        raise _corrupt_error(path, "invalid PNG data") from exc
    values = _orient(raw.astype(np.float32) / np.float32(np.iinfo(np.uint16).max), orientation)
    if values.shape[-1] in (1, 2):  # grey or grey + alpha
        values = np.concatenate([np.repeat(values[..., :1], 3, axis=-1), values[..., 1:]], -1)
    return _split_alpha(np.ascontiguousarray(values))


def _orient(values: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an (H, W, ...) array, as ``ImageOps.exif_transpose`` does."""
    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    return transforms.get(orientation, lambda a: a)(values)


# --- resizing -----------------------------------------------------------------------------------


def resize_long_side(pixels: np.ndarray, long_side: int) -> np.ndarray:
    """Scale so the longer side is ``long_side`` pixels, keeping the aspect ratio."""
    height, width = pixels.shape[:2]
    scale = long_side / max(height, width)
    return resize_to(pixels, max(1, round(width * scale)), max(1, round(height * scale)))


def resize_to(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Lanczos-resample (H, W, C) or (H, W) float pixels to ``width`` x ``height``, in [0, 1].

    Pillow's Lanczos widens its kernel when shrinking, so it also averages like an area filter
    and does not alias. Its ringing can overshoot [0, 1] at hard edges, hence the clip.
    """
    if width < 1 or height < 1:
        raise ValueError(f"cannot resize to {width} x {height}")
    if pixels.ndim == 2:
        return _resize_plane(pixels, width, height)
    planes = [_resize_plane(pixels[..., c], width, height) for c in range(pixels.shape[-1])]
    return np.stack(planes, axis=-1)


def _resize_plane(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    if plane.shape == (height, width):
        return plane.astype(np.float32, copy=True)
    picture = PILImage.fromarray(np.ascontiguousarray(plane, dtype=np.float32))  # mode "F"
    resized = picture.resize((width, height), PILImage.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


# --- saving -------------------------------------------------------------------------------------


def save_image(
    path: Path, pixels: np.ndarray, *, alpha: np.ndarray | None = None, bit_depth: int = 8
) -> None:
    """Write ``pixels`` (float RGB in [0, 1]) atomically, in the format the suffix names.

    PNG keeps alpha and 16 bits; JPEG is 8-bit and drops alpha; TIFF keeps both.
    """
    path = Path(path)
    image_format = _save_format(path)
    if bit_depth not in BIT_DEPTHS:
        raise ImageError(f"bit depth {bit_depth} is not supported", where=str(path),
                         hint=f"use one of {BIT_DEPTHS}")
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"pixels must be (height, width, 3), got {pixels.shape}")
    if image_format == "JPEG":
        alpha, bit_depth = None, 8  # JPEG has neither; the suffix chose that
    samples = _quantize(_with_alpha(pixels, alpha), bit_depth)
    _write_atomic(path, _encoder(samples, image_format))


def _save_format(path: Path) -> str:
    try:
        return SAVE_FORMATS[path.suffix.lower()]
    except KeyError:
        raise ImageError(f"cannot save images as '{path.suffix}'", where=str(path),
                         hint=f"use one of: {', '.join(SAVE_FORMATS)}") from None


def _with_alpha(pixels: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    if alpha is None:
        return pixels
    return np.concatenate([pixels, alpha[..., None].astype(pixels.dtype)], axis=-1)


#: Rows quantised at a time: a print-size image is not copied whole in float (67 MP: 805 MB a copy).
QUANTIZE_ROWS = 256


def _quantize(values: np.ndarray, bit_depth: int) -> np.ndarray:
    """Clip to [0, 1] and round to the nearest level (truncating would darken by half a level),
    a band of rows at a time, so the only full-size copy is the integer result."""
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    top = np.iinfo(dtype).max
    samples = np.empty(values.shape, dtype)
    for start in range(0, values.shape[0], QUANTIZE_ROWS):
        band = values[start:start + QUANTIZE_ROWS]
        samples[start:start + QUANTIZE_ROWS] = np.rint(np.clip(band, 0.0, 1.0) * top)
    return samples


def _encoder(samples: np.ndarray, image_format: str) -> Callable[[BinaryIO], Any]:
    """What writes ``samples`` to an open file: straight to it, without an encoded copy in memory
    (except 16-bit PNG, which TensorFlow encodes to bytes)."""
    if samples.dtype == np.uint16 and image_format == "PNG":
        encoded = _encode_png16(samples)
        return lambda stream: stream.write(encoded)
    if samples.dtype == np.uint16:
        return functools.partial(_write_tiff16, samples)
    options = {"quality": JPEG_QUALITY, "subsampling": JPEG_SUBSAMPLING_444} if image_format == "JPEG" else {}
    return lambda stream: PILImage.fromarray(samples).save(stream, format=image_format, **options)


def _encode_png16(samples: np.ndarray) -> bytes:
    """Pillow cannot write 16-bit colour PNG; TensorFlow's encoder can."""
    import tensorflow as tf  # heavy; only 16-bit PNG output needs it

    return tf.io.encode_png(samples).numpy()


# TIFF field types (TIFF 6.0, section 2).
TIFF_SHORT, TIFF_LONG, TIFF_RATIONAL = 3, 4, 5
TIFF_TYPE_CODES = {TIFF_SHORT: "H", TIFF_LONG: "I", TIFF_RATIONAL: "I"}
TIFF_INLINE_BYTES = 4
TIFF_ENTRY_BYTES = 12
TIFF_HEADER_BYTES = 8
TIFF_DPI = 72  # the usual placeholder; baseline TIFF requires a resolution


def _write_tiff16(samples: np.ndarray, stream: BinaryIO) -> None:
    """An uncompressed little-endian baseline TIFF with 16-bit samples, one strip.

    Pillow has no 16-bit RGB mode and cannot write one, and this layout is the one every TIFF
    reader understands. Alpha, when present, is marked unassociated (ExtraSamples = 2). The
    samples go to the file from the array itself (no copy on little-endian machines).
    """
    data = np.ascontiguousarray(samples, "<u2")
    stream.write(_tiff16_header(data))
    stream.write(memoryview(data).cast("B"))


def _tiff16_header(data: np.ndarray) -> bytes:
    height, width, channels = data.shape
    fields = [
        (256, TIFF_LONG, [width]),
        (257, TIFF_LONG, [height]),
        (258, TIFF_SHORT, [16] * channels),
        (259, TIFF_SHORT, [1]),  # no compression
        (262, TIFF_SHORT, [2]),  # RGB
        (273, TIFF_LONG, [0]),  # strip offset, filled in below
        (277, TIFF_SHORT, [channels]),
        (278, TIFF_LONG, [height]),
        (279, TIFF_LONG, [data.nbytes]),
        (282, TIFF_RATIONAL, [TIFF_DPI, 1]),
        (283, TIFF_RATIONAL, [TIFF_DPI, 1]),
        (284, TIFF_SHORT, [1]),  # chunky
        (296, TIFF_SHORT, [2]),  # inches
    ] + ([(338, TIFF_SHORT, [2])] if channels == 4 else [])
    payloads = [_tiff_payload(kind, values) for _, kind, values in fields]
    extra_start = TIFF_HEADER_BYTES + 2 + TIFF_ENTRY_BYTES * len(fields) + 4
    extra_size = sum(len(p) for p in payloads if len(p) > TIFF_INLINE_BYTES)
    fields[5] = (273, TIFF_LONG, [extra_start + extra_size])
    payloads[5] = _tiff_payload(TIFF_LONG, fields[5][2])
    return _tiff_layout(fields, payloads, extra_start)


def _tiff_payload(kind: int, values: list[int]) -> bytes:
    return struct.pack(f"<{len(values)}{TIFF_TYPE_CODES[kind]}", *values)


def _tiff_layout(fields: list, payloads: list[bytes], extra_start: int) -> bytes:
    """Header, the IFD, then the values too long to sit in their entries."""
    entries, extra = [], b""
    for (tag, kind, values), payload in zip(fields, payloads):
        count = len(values) // 2 if kind == TIFF_RATIONAL else len(values)
        if len(payload) > TIFF_INLINE_BYTES:
            entries.append(struct.pack("<HHII", tag, kind, count, extra_start + len(extra)))
            extra += payload  # every payload has an even length, so offsets stay word-aligned
        else:
            entries.append(struct.pack("<HHI", tag, kind, count) + payload.ljust(4, b"\0"))
    ifd = struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0)
    return b"II" + struct.pack("<HI", 42, TIFF_HEADER_BYTES) + ifd + extra


def _write_atomic(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Other processes read the outbox, so they must see either no file or the whole file."""
    try:
        atomic_write_stream(path, write)
    except OSError as exc:
        raise ImageError(f"cannot write the image: {exc.strerror or exc}", where=str(path),
                         hint="check that the folder exists and is writable") from exc
