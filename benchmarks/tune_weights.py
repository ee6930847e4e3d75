"""Render Tübingen × Starry Night for several style (or TV) weights, beside jcjohnson's reference.

    python benchmarks/tune_weights.py --size 512 --iterations 300 --style-weights 20 50 100
    python benchmarks/tune_weights.py --size 512 --tv-weights 0 2 20 --out docs/images/tv

Writes one PNG per setting and a side-by-side strip (reference first), and prints the final
losses, so the defaults in styled/config.py can be chosen by looking.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image as PILImage
from PIL import ImageDraw

from styled import render
from styled.engine.job import load_job, relative_to
from styled.engine.spec import build_job_spec
from styled.io.images import load_image, save_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"
CONTENT = SHARED / "content" / "tubingen.jpg"
STYLE = SHARED / "style" / "starry_night.jpg"
REFERENCE = SHARED / "reference" / "tubingen_starry.png"


def render_one(size: int, iterations: int, changes: dict, out: Path) -> dict:
    spec = build_job_spec({"content": str(CONTENT), "style": [str(STYLE)], "size": size,
                           "iterations": iterations, "seed": 0, **changes})
    result = render(load_job(spec, relative_to(Path.cwd())))
    save_image(out, result.image)
    return {**changes, **{k: round(v, 5) for k, v in result.losses.items()},
            "seconds": round(result.seconds, 1)}


def strip(paths: list[Path], labels: list[str], out: Path) -> None:
    tiles = [PILImage.open(p).convert("RGB") for p in paths]
    height = min(t.height for t in tiles)
    tiles = [t.resize((round(t.width * height / t.height), height)) for t in tiles]
    sheet = PILImage.new("RGB", (sum(t.width for t in tiles), height + 18), "white")
    x = 0
    for tile, label in zip(tiles, labels):
        sheet.paste(tile, (x, 18))
        ImageDraw.Draw(sheet).text((x + 4, 3), label, fill="black")
        x += tile.width
    sheet.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--style-weights", type=float, nargs="*", default=[])
    parser.add_argument("--tv-weights", type=float, nargs="*", default=[])
    parser.add_argument("--set", nargs="*", default=[], help="extra KEY=VALUE spec settings (YAML values)")
    parser.add_argument("--out", type=Path, default=Path("out/tuning"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import yaml

    extra = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    settings = [{"style_weight": w} for w in args.style_weights] + [{"tv_weight": w} for w in args.tv_weights]
    paths, labels = [], []
    reference = load_image(REFERENCE).pixels
    height, width = reference.shape[:2]
    reference_path = args.out / "reference.png"
    save_image(reference_path, reference)
    paths.append(reference_path)
    labels.append("jcjohnson/neural-style")
    for changes in settings:
        name = "_".join(f"{k}{v:g}" for k, v in changes.items())
        out = args.out / f"{name}.png"
        row = render_one(args.size, args.iterations, {**extra, **changes}, out)
        print(json.dumps(row), flush=True)
        paths.append(out)
        labels.append(name)
    strip(paths, labels, args.out / "strip.png")
    print(f"wrote {args.out / 'strip.png'}")


if __name__ == "__main__":
    main()
