"""The pictures of docs/print-size.md: a print-size result beside the same job at a smaller size.

    python tools/print_comparison.py LARGE.png SMALL.png docs/images/print-size

writes ``PREFIX-overview.jpg`` (the large result, 1024 px wide) and ``PREFIX-detail.jpg``: the same
square of the picture from both results at the large one's pixels, the small one enlarged with
Lanczos, side by side and labelled. ``--box X Y SIDE`` chooses the square (fractions of the width,
the height and the width; default: the houses in the middle of Tübingen).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

OVERVIEW_WIDTH = 1024
DETAIL_SIDE = 640  # each half of the detail picture, in pixels
LABEL_HEIGHT = 28
QUALITY = 88


def square(image: Image.Image, box: tuple[float, float, float]) -> Image.Image:
    """The square at ``box`` (left and top as fractions of the width and height, side as a fraction
    of the width) of ``image``."""
    left, top, side = round(box[0] * image.width), round(box[1] * image.height), round(box[2] * image.width)
    return image.crop((left, top, left + side, top + side))


def labelled(picture: Image.Image, text: str) -> Image.Image:
    canvas = Image.new("RGB", (picture.width, picture.height + LABEL_HEIGHT), "white")
    canvas.paste(picture, (0, LABEL_HEIGHT))
    ImageDraw.Draw(canvas).text((8, 7), text, fill="black")
    return canvas


def detail(large: Image.Image, small: Image.Image, box: tuple[float, float, float]) -> Image.Image:
    """The square from both results, shown at DETAIL_SIDE pixels; the small one is enlarged to the
    large one's size first, as a print from it would be."""
    enlarged = small.resize(large.size, Image.Resampling.LANCZOS)
    halves = []
    for picture, name in ((enlarged, f"{small.width} px job, enlarged to {large.width} px"),
                          (large, f"{large.width} px job")):
        crop = square(picture, box)
        halves.append(labelled(crop.resize((DETAIL_SIDE, DETAIL_SIDE), Image.Resampling.LANCZOS),
                               f"{name}: {crop.width} x {crop.height} px"))
    canvas = Image.new("RGB", (2 * DETAIL_SIDE + 8, halves[0].height), "white")
    for index, half in enumerate(halves):
        canvas.paste(half, (index * (DETAIL_SIDE + 8), 0))
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("large", type=Path)
    parser.add_argument("small", type=Path)
    parser.add_argument("prefix", help="where to write PREFIX-overview.jpg and PREFIX-detail.jpg")
    parser.add_argument("--box", type=float, nargs=3, default=(0.42, 0.38, 0.16), metavar=("X", "Y", "SIDE"))
    args = parser.parse_args()
    with Image.open(args.large) as large_file, Image.open(args.small) as small_file:
        large, small = large_file.convert("RGB"), small_file.convert("RGB")
    overview = large.resize((OVERVIEW_WIDTH, round(large.height * OVERVIEW_WIDTH / large.width)), Image.Resampling.LANCZOS)
    overview.save(f"{args.prefix}-overview.jpg", quality=QUALITY)
    detail(large, small, tuple(args.box)).save(f"{args.prefix}-detail.jpg", quality=QUALITY)
    print(f"wrote {args.prefix}-overview.jpg and {args.prefix}-detail.jpg")


if __name__ == "__main__":
    main()
