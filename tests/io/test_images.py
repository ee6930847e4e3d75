"""Loading, saving, resizing and colour transfer, on real files written with Pillow."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags
from PIL import Image as PILImage

from styled.errors import ImageError
from styled.io.colour import match_luminance, preserve_colors, rgb_to_yiq, yiq_to_rgb
from styled.io.images import (
    ALLOWED_FORMATS,
    Image,
    load_image,
    resize_long_side,
    resize_to,
    save_image,
)

WIDTH, HEIGHT = 40, 24
CORNER = 8  # side of the red marker square in the top-left corner
RED = (255, 0, 0)
BLUE = (0, 0, 255)
ROTATE_CLOCKWISE = 6  # EXIF orientation: the camera was turned 90 degrees clockwise
ONE_LEVEL_8BIT = 1 / 255
SIXTEEN_BIT_TOP = 65535


def marked_picture(mode: str = "RGB") -> PILImage.Image:
    """Blue, with a red square in the top-left corner so orientation can be checked."""
    picture = PILImage.new("RGB", (WIDTH, HEIGHT), BLUE)
    picture.paste(RED, (0, 0, CORNER, CORNER))
    return picture.convert(mode)


def gradient_pixels(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Smooth colours on exact 8-bit levels, so an 8-bit round trip can be compared exactly."""
    y, x = np.mgrid[0:height, 0:width]
    channels = [x * 255 // (width - 1), y * 255 // (height - 1), (x + y) * 255 // (width + height)]
    return (np.stack(channels, axis=-1) / 255).astype(np.float32)


def exif_with_orientation(orientation: int) -> PILImage.Exif:
    exif = PILImage.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return exif


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def assert_red_corner_at_top_right(pixels: np.ndarray) -> None:
    """After a clockwise turn the top-left corner of the file is the top-right of the picture."""
    height, width = pixels.shape[:2]
    assert (height, width) == (WIDTH, HEIGHT)
    corner = pixels[:CORNER, width - CORNER :]
    assert np.allclose(corner.mean(axis=(0, 1)), [1, 0, 0], atol=0.1)
    assert np.allclose(pixels[:CORNER, :CORNER].mean(axis=(0, 1)), [0, 0, 1], atol=0.1)


# --- loading: orientation and modes --------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_is_applied(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"turned{suffix}"
    marked_picture().save(path, exif=exif_with_orientation(ROTATE_CLOCKWISE))
    image = load_image(path)
    assert_red_corner_at_top_right(image.pixels)
    assert image.size == (HEIGHT, WIDTH)


def splice_exif_into_png(path: Path, orientation: int) -> None:
    """Pillow cannot write 16-bit colour PNG with EXIF, so add an eXIf chunk after IHDR."""
    data = path.read_bytes()
    exif = exif_with_orientation(orientation).tobytes().removeprefix(b"Exif\x00\x00")
    ihdr_end = 8 + 25  # signature, then IHDR's length, type, 13 bytes of data and CRC
    path.write_bytes(data[:ihdr_end] + png_chunk(b"eXIf", exif) + data[ihdr_end:])


def test_exif_orientation_applies_to_16_bit_colour_png(tmp_path: Path) -> None:
    path = tmp_path / "turned16.png"
    save_image(path, np.asarray(marked_picture(), dtype=np.float32) / 255, bit_depth=16)
    splice_exif_into_png(path, ROTATE_CLOCKWISE)
    image = load_image(path)
    assert image.bit_depth == 16
    assert_red_corner_at_top_right(image.pixels)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16_bit_colour_png_turns_like_an_8_bit_one(tmp_path: Path, orientation: int) -> None:
    # 16-bit colour PNGs are decoded outside Pillow, so they are turned by our own table.
    pixels = gradient_pixels()
    eight, sixteen = tmp_path / "eight.png", tmp_path / "sixteen.png"
    save_image(eight, pixels)
    save_image(sixteen, pixels, bit_depth=16)
    for path in (eight, sixteen):
        splice_exif_into_png(path, orientation)
    assert np.allclose(load_image(sixteen).pixels, load_image(eight).pixels, atol=1e-6)


def test_pixels_are_float_rgb_in_unit_range(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    marked_picture().save(path)
    image = load_image(path)
    assert image.pixels.dtype == np.float32
    assert image.pixels.shape == (HEIGHT, WIDTH, 3)
    assert image.alpha is None and image.bit_depth == 8 and image.path == path
    assert np.array_equal(image.pixels[0, 0], [1, 0, 0])


def test_rgba_keeps_alpha(tmp_path: Path) -> None:
    path = tmp_path / "rgba.png"
    picture = marked_picture("RGBA")
    picture.putalpha(PILImage.linear_gradient("L").resize((WIDTH, HEIGHT)))
    picture.save(path)
    image = load_image(path)
    expected = np.asarray(picture)[..., 3] / 255
    assert image.alpha is not None
    assert np.allclose(image.alpha, expected, atol=1e-6)
    assert image.alpha.min() < 0.1 and image.alpha.max() > 0.9


def test_palette_transparency_becomes_alpha(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    picture = marked_picture().quantize(colors=2)
    red_index = picture.getpixel((0, 0))
    picture.save(path, transparency=red_index)
    image = load_image(path)
    assert image.alpha is not None
    assert np.all(image.alpha[:CORNER, :CORNER] == 0)
    assert np.all(image.alpha[CORNER:, :] == 1)


def test_gif_transparency_becomes_alpha(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    picture = marked_picture().quantize(colors=2)
    picture.save(path, transparency=picture.getpixel((0, 0)))
    image = load_image(path)
    assert image.alpha is not None and image.alpha[0, 0] == 0 and image.alpha[-1, -1] == 1


def test_grayscale_gives_three_equal_channels(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    PILImage.linear_gradient("L").resize((WIDTH, HEIGHT)).save(path)
    image = load_image(path)
    assert image.pixels.shape == (HEIGHT, WIDTH, 3)
    assert np.array_equal(image.pixels[..., 0], image.pixels[..., 1])
    assert np.array_equal(image.pixels[..., 0], image.pixels[..., 2])
    assert image.pixels.min() < 0.1 and image.pixels.max() > 0.9


def test_grey_with_alpha_keeps_alpha(tmp_path: Path) -> None:
    path = tmp_path / "la.png"
    picture = PILImage.new("LA", (WIDTH, HEIGHT), (200, 51))
    picture.save(path)
    image = load_image(path)
    assert np.allclose(image.pixels, 200 / 255) and np.allclose(image.alpha, 51 / 255)


def test_one_bit_image_is_black_and_white(tmp_path: Path) -> None:
    path = tmp_path / "bits.png"
    marked_picture("L").point(lambda v: 255 if v > 60 else 0).convert("1").save(path)
    image = load_image(path)
    assert set(np.unique(image.pixels)) <= {0.0, 1.0}


def test_cmyk_is_converted_to_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.tif"
    PILImage.new("CMYK", (WIDTH, HEIGHT), (255, 0, 0, 0)).save(path)  # pure cyan
    image = load_image(path)
    assert np.allclose(image.pixels, [0, 1, 1])


def test_16_bit_greyscale_keeps_full_precision(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    PILImage.fromarray(np.full((HEIGHT, WIDTH), 1000, dtype=np.uint16)).save(path)
    assert PILImage.open(path).mode == "I;16"
    image = load_image(path)
    assert image.bit_depth == 16
    assert np.allclose(image.pixels, 1000 / SIXTEEN_BIT_TOP, rtol=0, atol=1e-7)


def test_big_endian_16_bit_tiff_keeps_full_precision(tmp_path: Path) -> None:
    path = tmp_path / "deep.tif"
    raw = np.full((HEIGHT, WIDTH), 1000, dtype=">u2").tobytes()
    PILImage.frombytes("I;16B", (WIDTH, HEIGHT), raw).save(path)
    image = load_image(path)
    assert image.bit_depth == 16
    assert np.allclose(image.pixels, 1000 / SIXTEEN_BIT_TOP, rtol=0, atol=1e-7)


def test_camera_mpo_jpeg_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "camera.jpg"
    marked_picture().save(path, format="MPO", save_all=True, append_images=[marked_picture()])
    assert PILImage.open(path).format == "MPO"
    assert load_image(path).size == (WIDTH, HEIGHT)


def test_image_size_is_width_then_height() -> None:
    image = Image(np.zeros((HEIGHT, WIDTH, 3), np.float32), None)
    assert image.size == (WIDTH, HEIGHT)


def test_image_refuses_misshapen_arrays() -> None:
    with pytest.raises(ValueError, match="alpha"):
        Image(np.zeros((HEIGHT, WIDTH, 3), np.float32), np.zeros((WIDTH, HEIGHT), np.float32))


# --- loading: refusals ---------------------------------------------------------------------------


def png_claiming_size(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but whose data is a few bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + png_chunk(b"IEND", b"")
    )


def test_pixel_limit_is_checked_before_decoding(tmp_path: Path) -> None:
    # The data would not decode; the limit must be what stops it.
    path = tmp_path / "claims.png"
    path.write_bytes(png_claiming_size(3000, 2000))
    with pytest.raises(ImageError) as caught:
        load_image(path, max_pixels=1_000_000)
    text = str(caught.value)
    assert "3000 x 2000" in text and "1,000,000" in text and "max_image_pixels" in text


def test_pixel_limit_refuses_a_real_image(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    marked_picture().save(path)
    with pytest.raises(ImageError, match="over the limit of 959"):
        load_image(path, max_pixels=WIDTH * HEIGHT - 1)
    assert load_image(path, max_pixels=WIDTH * HEIGHT).size == (WIDTH, HEIGHT)


def test_pillow_decompression_bomb_becomes_image_error(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming_size(20_000, 20_000))  # past Pillow's own hard limit
    with pytest.raises(ImageError, match="too large"):
        load_image(path, max_pixels=10**12)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.jpg", b"this is a shopping list, not a photo\n"),
        ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>'),
        ("print.eps", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 4 4\nshowpage\n"),
        ("doc.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"),
    ],
)
def test_non_images_are_refused(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError, match="not an image") as caught:
        load_image(path)
    assert caught.value.where == str(path)
    assert "PNG" in str(caught.value)  # says what would be accepted


def test_accepted_but_unlisted_raster_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "icon.ico"
    marked_picture().save(path)
    assert "ICO" not in ALLOWED_FORMATS
    with pytest.raises(ImageError, match="not an image"):
        load_image(path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(ImageError, match="empty"):
        load_image(path)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
@pytest.mark.parametrize("keep", [0.5, 0.02])
def test_truncated_files_are_refused(tmp_path: Path, suffix: str, keep: float) -> None:
    whole = tmp_path / f"whole{suffix}"
    PILImage.fromarray((gradient_pixels() * 255).astype(np.uint8)).save(whole)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: max(12, int(len(data) * keep))])
    with pytest.raises(ImageError, match="truncated or corrupt") as caught:
        load_image(cut)
    assert caught.value.where == str(cut)


def test_truncated_16_bit_colour_png_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    save_image(path, gradient_pixels(), bit_depth=16)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.png"
    with pytest.raises(ImageError, match="does not exist") as caught:
        load_image(path)
    assert caught.value.where == str(path)


def test_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


# --- saving ---------------------------------------------------------------------------------------


def test_png_8_bit_round_trip_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    pixels = gradient_pixels()
    save_image(path, pixels)
    image = load_image(path)
    assert image.bit_depth == 8 and image.alpha is None
    assert np.array_equal(image.pixels, pixels)


def test_png_16_bit_keeps_precision_finer_than_8_bit(tmp_path: Path) -> None:
    path = tmp_path / "out16.png"
    pixels = np.random.default_rng(1).random((HEIGHT, WIDTH, 3), dtype=np.float32)
    save_image(path, pixels, bit_depth=16)
    image = load_image(path)
    assert image.bit_depth == 16
    error = np.abs(image.pixels - pixels).max()
    assert error <= 0.5 / SIXTEEN_BIT_TOP + 1e-7
    assert error < ONE_LEVEL_8BIT / 100


def test_png_keeps_alpha_in_8_and_16_bit(tmp_path: Path) -> None:
    pixels = gradient_pixels()
    alpha = np.linspace(0, 1, WIDTH * HEIGHT, dtype=np.float32).reshape(HEIGHT, WIDTH)
    for bit_depth, tolerance in ((8, 0.5 / 255), (16, 0.5 / SIXTEEN_BIT_TOP)):
        path = tmp_path / f"alpha{bit_depth}.png"
        save_image(path, pixels, alpha=alpha, bit_depth=bit_depth)
        image = load_image(path)
        assert image.alpha is not None
        assert np.abs(image.alpha - alpha).max() <= tolerance + 1e-7
        assert np.abs(image.pixels - pixels).max() <= tolerance + 1e-7


def test_jpeg_is_close_and_drops_alpha(tmp_path: Path) -> None:
    path = tmp_path / "out.jpg"
    pixels = gradient_pixels()
    save_image(path, pixels, alpha=np.zeros((HEIGHT, WIDTH), np.float32), bit_depth=16)
    image = load_image(path)
    assert PILImage.open(path).format == "JPEG"
    assert image.alpha is None and image.bit_depth == 8
    assert np.abs(image.pixels - pixels).mean() < 0.01


def test_tiff_8_bit_round_trip_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "out.tif"
    pixels = gradient_pixels()
    save_image(path, pixels)
    assert np.array_equal(load_image(path).pixels, pixels)


def test_tiff_16_bit_stores_16_bit_samples(tmp_path: Path) -> None:
    path = tmp_path / "out16.tiff"
    pixels = np.random.default_rng(2).random((HEIGHT, WIDTH, 3), dtype=np.float32)
    alpha = np.full((HEIGHT, WIDTH), 0.25, np.float32)
    save_image(path, pixels, alpha=alpha, bit_depth=16)
    with PILImage.open(path) as picture:
        assert picture.mode == "RGBA" and picture.size == (WIDTH, HEIGHT)
        assert tuple(picture.tag_v2[258]) == (16, 16, 16, 16)
        offset, length = picture.tag_v2[273][0], picture.tag_v2[279][0]
    strip = np.frombuffer(path.read_bytes()[offset : offset + length], dtype="<u2")
    stored = strip.reshape(HEIGHT, WIDTH, 4)
    assert np.array_equal(stored[..., :3], np.rint(pixels * SIXTEEN_BIT_TOP))
    assert np.all(stored[..., 3] == round(0.25 * SIXTEEN_BIT_TOP))
    # Pillow reads colour TIFF samples at 8-bit precision; the loader still reports the depth.
    image = load_image(path)
    assert image.bit_depth == 16
    assert np.abs(image.pixels - pixels).max() <= ONE_LEVEL_8BIT


def test_save_rounds_and_clips(tmp_path: Path) -> None:
    path = tmp_path / "levels.png"
    pixels = np.zeros((2, 3, 3), np.float32)
    pixels[0] = 100.6 / 255  # truncating would give 100
    pixels[1, 0], pixels[1, 1], pixels[1, 2] = -0.5, 1.5, 100.4 / 255
    save_image(path, pixels)
    stored = np.asarray(PILImage.open(path))
    assert np.all(stored[0] == 101)
    assert np.all(stored[1, 0] == 0) and np.all(stored[1, 1] == 255) and np.all(stored[1, 2] == 100)


def test_unknown_suffix_lists_the_allowed_ones(tmp_path: Path) -> None:
    path = tmp_path / "out.webp"
    with pytest.raises(ImageError, match=r"\.webp") as caught:
        save_image(path, gradient_pixels())
    assert ".png" in str(caught.value) and ".tiff" in str(caught.value)
    assert not path.exists()


def test_save_leaves_only_the_finished_file(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    save_image(path, gradient_pixels())
    save_image(path, np.zeros((HEIGHT, WIDTH, 3), np.float32))  # replaces the first
    assert os.listdir(tmp_path) == ["out.png"]
    assert load_image(path).pixels.max() == 0


def test_interrupted_save_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.png"
    save_image(path, gradient_pixels())
    before = path.read_bytes()

    def fail_replace(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail_replace)
    with pytest.raises(ImageError, match="cannot write"):
        save_image(path, np.zeros((HEIGHT, WIDTH, 3), np.float32))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.png"]


def test_saved_file_is_readable_by_others(tmp_path: Path) -> None:
    # tempfile would create the file as 0600 and the rename would keep that.
    path = tmp_path / "out.png"
    old_umask = os.umask(0o022)
    try:
        save_image(path, gradient_pixels())
    finally:
        os.umask(old_umask)
    assert path.stat().st_mode & 0o044 == 0o044


def test_save_into_missing_folder_is_an_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="cannot write"):
        save_image(tmp_path / "absent" / "out.png", gradient_pixels())


# --- resizing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width", "long_side", "expected"), [
    (24, 40, 20, (12, 20)),
    (40, 24, 20, (20, 12)),
    (24, 40, 100, (60, 100)),
    (30, 31, 7, (7, 7)),
])
def test_resize_long_side_keeps_aspect_ratio(
    height: int, width: int, long_side: int, expected: tuple[int, int]
) -> None:
    resized = resize_long_side(gradient_pixels(height, width), long_side)
    assert resized.shape == (*expected, 3)
    assert resized.dtype == np.float32


def test_resize_works_on_single_planes_and_keeps_flat_areas_flat() -> None:
    plane = np.full((HEIGHT, WIDTH), 0.3, np.float32)
    resized = resize_long_side(plane, 13)
    assert resized.shape == (8, 13)
    assert np.allclose(resized, 0.3, atol=1e-5)


def test_resize_stays_in_unit_range_at_hard_edges() -> None:
    pixels = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    pixels[:, WIDTH // 2 :] = 1.0  # Lanczos rings here
    resized = resize_to(pixels, 97, 55)
    assert resized.shape == (55, 97, 3)
    assert resized.min() >= 0.0 and resized.max() <= 1.0


def test_resize_to_preserves_the_picture() -> None:
    pixels = gradient_pixels()
    back = resize_to(resize_to(pixels, 80, 48), WIDTH, HEIGHT)
    assert np.abs(back - pixels).mean() < 0.01


# --- colour ---------------------------------------------------------------------------------------


def test_yiq_round_trip_and_grey_has_no_chroma() -> None:
    pixels = np.random.default_rng(3).random((HEIGHT, WIDTH, 3)).astype(np.float32)
    assert np.allclose(yiq_to_rgb(rgb_to_yiq(pixels)), pixels, atol=1e-5)
    grey = np.full((2, 2, 3), 0.4, np.float32)
    assert np.allclose(rgb_to_yiq(grey), [0.4, 0, 0], atol=1e-6)


def test_preserve_colors_takes_luminance_from_result_and_chroma_from_content() -> None:
    rng = np.random.default_rng(4)
    # Mid-range values with modest chroma, so no output pixel needs clipping.
    result = (0.35 + 0.3 * rng.random((HEIGHT, WIDTH, 3))).astype(np.float32)
    content = (0.45 + 0.1 * rng.random((HEIGHT, WIDTH, 3))).astype(np.float32)
    output = preserve_colors(result, content)
    assert output.shape == result.shape
    assert np.allclose(rgb_to_yiq(output)[..., 0], rgb_to_yiq(result)[..., 0], atol=1e-5)
    assert np.allclose(rgb_to_yiq(output)[..., 1:], rgb_to_yiq(content)[..., 1:], atol=1e-5)


def test_preserve_colors_resizes_content_to_the_result() -> None:
    result = np.full((12, 20, 3), 0.5, np.float32)
    content = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    content[...] = [0.6, 0.4, 0.4]  # reddish
    output = preserve_colors(result, content)
    assert output.shape == result.shape
    assert np.all(output[..., 0] > output[..., 2])


def test_match_luminance_matches_content_mean_and_spread() -> None:
    rng = np.random.default_rng(5)
    style = (0.1 + 0.2 * rng.random((HEIGHT, WIDTH, 3))).astype(np.float32)  # dark, flat
    content = (0.4 + 0.2 * rng.random((30, 30, 3))).astype(np.float32)
    matched = match_luminance(style, content)
    assert matched.shape == style.shape
    assert np.array_equal(matched[..., 0], matched[..., 1])
    assert np.array_equal(matched[..., 0], matched[..., 2])
    content_y = rgb_to_yiq(content)[..., 0]
    assert matched[..., 0].mean() == pytest.approx(content_y.mean(), abs=1e-4)
    assert matched[..., 0].std() == pytest.approx(content_y.std(), abs=1e-4)


def test_match_luminance_of_a_flat_style_is_the_content_mean() -> None:
    style = np.full((4, 4, 3), 0.2, np.float32)
    content = np.random.default_rng(6).random((4, 4, 3)).astype(np.float32)
    matched = match_luminance(style, content)
    assert np.allclose(matched, rgb_to_yiq(content)[..., 0].mean(), atol=1e-5)


def test_a_fifo_named_as_an_image_fails_at_once(tmp_path):
    os.mkfifo(tmp_path / "photo.png")
    with pytest.raises(ImageError, match="FIFO"):
        load_image(tmp_path / "photo.png")


@pytest.mark.parametrize("name", ["big.tif", "big.png"])
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_saving_a_big_image_copies_it_whole_at_most_once(tmp_path, name, bit_depth):
    """Print-size outputs: quantising goes a band of rows at a time and TIFF samples go straight
    to the file, so the peak beyond the float input is the integer samples (plus PNG's encoding)."""
    import tracemalloc

    import tensorflow  # noqa: F401 - 16-bit PNG imports it; its import is not the image's memory

    from styled.io.images import QUANTIZE_ROWS

    pixels = np.random.default_rng(0).uniform(0, 1, (1500, 1000, 3)).astype(np.float32)
    band = pixels[:QUANTIZE_ROWS].nbytes  # a band's clipped and scaled float copies are the temporaries
    tracemalloc.start()
    try:
        save_image(tmp_path / name, pixels, bit_depth=bit_depth)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    samples = pixels.size * bit_depth // 8
    encoded = (tmp_path / name).stat().st_size if name.endswith(".png") else 0
    assert peak < samples + encoded + 2 * band + 2**20, (peak, samples, encoded)
    assert peak < 2 * pixels.nbytes  # the old way held three float copies at once, beside the samples
    assert load_image(tmp_path / name).pixels.shape == pixels.shape
