"""Real-size runs of the first-party plugins: the pictures and numbers of docs/plugins.md.

Usage: python3 benchmarks/plugins_demo.py [long_range symmetry inpainting season_transfer regions scale_control]
           [--size 256] [--iterations 200] [--out docs/images/plugins] [--images ../shared/images]

Each demo renders with and without its plugin on the images in ../shared/images, saves a small
side-by-side JPEG per case in --out, and prints one line of measures per render (also written to
--out/measures.json):

long_range       texture synthesis (no content image) of bricks.jpg and windows.jpg: row and
                 column coherence (share of the variance explained by whole rows / columns) and
                 the autocorrelation error at 1-3 periods, next to the source's own values.
symmetry         symmetry1.jpg as a texture, and tubingen.jpg in the style of starry_night.jpg:
                 the mean and max |image - mirror image| in 8-bit grey levels (of the saved PNG
                 for exact mode).
inpainting       a square hole over windows in building.jpg and over bricks in smaller_bricks.jpg:
                 styled's fill beside its first fill alone and OpenCV's and scikit-image's fills
                 (benchmark-only dependencies: opencv-python-headless, scikit-image): the normalised
                 cross-correlation with the hidden pixels (whole hole and the 8 px band inside its
                 edge), sharpness, colour fringes, the hole's outline, and whether every pixel outside
                 the hole of the saved PNG equals the input's.
regions          tubingen.jpg with a feathered horizon (sky: starry_night, town: the_scream), and with
                 a feathered circle left to the photo: each region's guided Gram distance to each
                 painting (relu1_1-relu5_1), before and after; the mean change inside and outside the circle.
scale_control    tubingen.jpg with the fine layers (relu1_1, relu2_1) of one painting and the coarse
                 ones of the other, both ways: the distances of each group of layers to each painting.
season_transfer  tree_summer -> tree_winter and city_day -> city_night, two scales: plain Gatys, the
                 plugin with its guided filter only (its old way), the plugin (the matting-Laplacian
                 term), and both: the Fréchet colour distance to the reference, the VGG Gram distance
                 to it (relu1_1-relu3_1), the correlation of the output's edges with the content's,
                 and sharpness (mean gradient over the content's).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image as PILImage  # noqa: E402

from styled import render  # noqa: E402
from styled.engine.job import load_job, relative_to  # noqa: E402
from styled.engine.spec import build_job_spec  # noqa: E402
from styled.io.images import load_image, resize_long_side, resize_to, save_image  # noqa: E402
from styled.plugins import make_plugin_manager, validate_job  # noqa: E402
from styled.plugins.builtin import long_range, season_transfer, symmetry  # noqa: E402
from styled.plugins.builtin.inpainting import grow  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PANEL_HEIGHT = 256
JPEG_QUALITY = 85
SEED = 1
#: Inpainting holes, [x, y, width, height] in the photos' pixels: a square over windows / bricks.
HOLES = {"building": [370, 360, 120, 120], "smaller_bricks": [420, 420, 150, 150]}
TEXTURE_LAYERS = ("relu1_1", "relu2_1", "relu3_1")


class Demo:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.images = Path(args.images)
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.pm = make_plugin_manager()
        self.measures: dict[str, Any] = {}

    def load(self, data: dict[str, Any]) -> Any:
        """The job of a spec (paths relative to the images folder), validated; one scale unless it says."""
        spec = build_job_spec({"size": self.args.size, "iterations": self.args.iterations, "seed": SEED,
                               "scales": 1, **data})
        resolve = relative_to(self.images)
        return validate_job(self.pm, load_job(spec, resolve), resolve)

    def run(self, data: dict[str, Any]) -> tuple[Any, np.ndarray, float]:
        """Render a spec; returns (job, image, seconds)."""
        job = self.load(data)
        started = time.monotonic()
        result = render(job, self.pm)
        return job, result.image, time.monotonic() - started

    def record(self, case: str, seconds: float, **values: Any) -> None:
        rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}
        self.measures[case] = {"seconds": round(seconds, 1), **rounded}
        print(f"{case:<40} {seconds:6.0f} s  " + "  ".join(f"{k} {v}" for k, v in rounded.items()), flush=True)

    def panel(self, name: str, pictures: list[np.ndarray]) -> None:
        """Side by side at PANEL_HEIGHT, as a JPEG small enough for the docs."""
        scaled = [resize_to(p, max(1, round(p.shape[1] * PANEL_HEIGHT / p.shape[0])), PANEL_HEIGHT) for p in pictures]
        gap = np.ones((PANEL_HEIGHT, 4, 3), np.float32)
        strip = np.concatenate([part for picture in scaled for part in (picture, gap)][:-1], axis=1)
        PILImage.fromarray((strip * 255).round().astype(np.uint8)).save(self.out / f"{name}.jpg", quality=JPEG_QUALITY)

    def save(self) -> None:
        path = self.out / "measures.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**old, **self.measures}, indent=2) + "\n")


# --- long_range ---------------------------------------------------------------------------------


def demo_long_range(demo: Demo) -> None:
    for texture in ("bricks", "windows"):
        style = f"textures/{texture}.jpg"
        source = resize_long_side(load_image(demo.images / style).pixels, demo.args.size)
        demo.record(f"long_range/{texture}/source", 0.0, **_alignment(source, source))
        pictures = [source]
        for label, plugins in (("gram", {}), ("long_range", {"long_range": {}})):
            _, image, seconds = demo.run({"style": style, "plugins": plugins})
            demo.record(f"long_range/{texture}/{label}", seconds, **_alignment(image, source))
            pictures.append(image)
        demo.panel(f"long_range_{texture}", pictures)


def _alignment(image: np.ndarray, source: np.ndarray) -> dict[str, float]:
    return {"row_coherence": long_range.coherence(image, 0), "column_coherence": long_range.coherence(image, 1),
            "autocorrelation_error_y": long_range.alignment_error(image, source, 0),
            "autocorrelation_error_x": long_range.alignment_error(image, source, 1)}


# --- symmetry -----------------------------------------------------------------------------------


def demo_symmetry(demo: Demo) -> None:
    cases = {
        "texture": {"style": "textures/symmetry1.jpg"},
        "photo": {"content": "content/tubingen.jpg", "style": "style/starry_night.jpg"},
    }
    for name, data in cases.items():
        pictures = []
        for mode in ("none", "exact", "statistics"):
            plugins = {} if mode == "none" else {"symmetry": {"mirror": "left-right", "mode": mode}}
            _, image, seconds = demo.run({**data, "plugins": plugins})
            saved = demo.out / f".symmetry_{name}_{mode}.png"
            save_image(saved, image)
            mean, top = symmetry.mirror_error(np.asarray(PILImage.open(saved), np.float64) / 255)
            saved.unlink()
            demo.record(f"symmetry/{name}/{mode}", seconds, mirror_error_mean=mean, mirror_error_max=top)
            pictures.append(image)
        demo.panel(f"symmetry_{name}", pictures)


# --- inpainting ---------------------------------------------------------------------------------


def demo_inpainting(demo: Demo) -> None:
    """styled's fill (a first fill by the best offset, refined by the Gram and long-range terms at the
    photo's resolution) beside the first fill alone and the classic fills of OpenCV (Telea,
    Navier-Stokes) and scikit-image (biharmonic), on each photo's hole."""
    for name, region in HOLES.items():
        photo = f"inpainting/{name}.jpg"
        original = load_image(demo.images / photo).pixels
        x, y, w, h = region
        hole = np.zeros(original.shape[:2], bool)
        hole[y:y + h, x:x + w] = True
        crop = (slice(max(0, y - h), y + 2 * h), slice(max(0, x - w), x + 2 * w))
        holed = original.copy()
        holed[hole] = 0.5
        pictures = [holed[crop]]
        demo.record(f"inpainting/{name}/truth", 0.0, **inpainting_measures(original, original, hole))
        fills = {"styled": lambda: _styled_fill(demo, photo, region)}
        fills.update(_classic_fills(original, hole))
        for label, make in fills.items():
            started = time.monotonic()
            image = make()
            seconds = time.monotonic() - started
            saved = demo.out / f".inpainting_{name}.png"
            save_image(saved, image)
            written = np.asarray(PILImage.open(saved), np.float64) / 255
            saved.unlink()
            demo.record(f"inpainting/{name}/{label}", seconds, **inpainting_measures(written, original, hole))
            if label in ("styled", "opencv_telea", "first_fill"):
                pictures.append(written[crop])
        pictures.append(original[crop])
        demo.panel(f"inpainting_{name}", pictures)


def _styled_fill(demo: Demo, photo: str, region: list[int]) -> np.ndarray:
    _, image, _ = demo.run({"content": photo, "scales": 2, "scale_start": 128,
                            "plugins": {"inpainting": {"region": region}}})
    return image


def _classic_fills(original: np.ndarray, hole: np.ndarray) -> dict[str, Callable[[], np.ndarray]]:
    """The first fill alone and the diffusion fills a user would otherwise reach for."""
    import cv2
    from skimage.restoration import inpaint_biharmonic

    from styled.plugins.builtin.inpainting import first_fill

    eight_bit = (original * 255).round().astype(np.uint8)
    mask = hole.astype(np.uint8) * 255
    radius = 5
    return {
        "first_fill": lambda: first_fill(original, hole),
        "opencv_telea": lambda: cv2.inpaint(eight_bit, mask, radius, cv2.INPAINT_TELEA) / 255.0,
        "opencv_ns": lambda: cv2.inpaint(eight_bit, mask, radius, cv2.INPAINT_NS) / 255.0,
        "skimage_biharmonic": lambda: inpaint_biharmonic(original, hole, channel_axis=-1),
    }


#: The band inside the hole's edge where continuation is judged, and the ring outside it that is
#: the fill's reference for sharpness and colours.
EDGE_BAND = 8
RING = 16


def inpainting_measures(image: np.ndarray, original: np.ndarray, hole: np.ndarray) -> dict[str, Any]:
    """NCC of the fill with the hidden pixels (whole hole, and the band inside its edge); sharpness
    (mean gradient in the hole over the ring around it, and over the truth's); the share of hole
    pixels whose chroma lies outside the ring's (colour fringes); the outline (mean gradient across
    the hole's border over the mean gradient of the rows and columns just inside and outside it);
    and whether every pixel outside the hole is the input's."""
    from styled.io.colour import rgb_to_yiq

    inner = _shrink(hole, EDGE_BAND)
    band = hole & ~inner
    ring = grow(hole, RING) & ~hole
    gradient = _gradient(image)
    truth_gradient = _gradient(original)
    chroma, ring_chroma = rgb_to_yiq(image)[..., 1:], rgb_to_yiq(original)[..., 1:][ring]
    low, high = np.percentile(ring_chroma, 0.5, axis=0), np.percentile(ring_chroma, 99.5, axis=0)
    fringes = float(np.mean(np.any((chroma[hole] < low - 0.02) | (chroma[hole] > high + 0.02), axis=-1)))
    border = grow(hole, 1) & ~_shrink(hole, 1)
    near = (grow(hole, 4) & ~_shrink(hole, 4)) & ~border
    outside = ~hole
    identical = image.shape == original.shape and bool(
        np.array_equal(np.rint(image[outside] * 255), np.rint(original[outside] * 255)))
    return {"ncc_with_hidden": _ncc(image[hole], original[hole]), "ncc_edge_band": _ncc(image[band], original[band]),
            "sharpness": float(gradient[hole].mean() / gradient[ring].mean()),
            "sharpness_vs_truth": float(gradient[hole].mean() / truth_gradient[hole].mean()),
            "colour_fringes": fringes, "outline": float(gradient[border].mean() / gradient[near].mean()),
            "outside_identical": identical}


def _gradient(image: np.ndarray) -> np.ndarray:
    grey = long_range.grey(image)
    dy, dx = np.zeros_like(grey), np.zeros_like(grey)
    dy[1:-1], dx[:, 1:-1] = (grey[2:] - grey[:-2]) / 2, (grey[:, 2:] - grey[:, :-2]) / 2
    return np.hypot(dy, dx)


def _shrink(mask: np.ndarray, steps: int) -> np.ndarray:
    return ~grow(~mask, steps)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = long_range.grey(a).ravel(), long_range.grey(b).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


# --- season transfer ----------------------------------------------------------------------------


def demo_season_transfer(demo: Demo) -> None:
    from styled.engine.losses import gram

    for content, reference in (("tree_summer", "tree_winter"), ("city_day", "city_night")):
        data = {"content": f"seasons/{content}.jpg", "style": f"seasons/{reference}.jpg"}
        job = demo.load(data)
        height, width = job.output_shape(demo.args.size)
        photo = resize_to(job.content.pixels, width, height)
        ref = resize_long_side(job.styles[0].pixels, demo.args.size)
        extractor = _extractor()

        def grams(image: np.ndarray) -> dict[str, np.ndarray]:
            feats = extractor(image[None].astype(np.float32), TEXTURE_LAYERS)
            return {k: gram(v).numpy() for k, v in feats.items()}

        target = grams(ref)

        def measures(image: np.ndarray) -> dict[str, float]:
            current = grams(image)
            texture = float(np.mean([np.sum((current[k] - target[k]) ** 2) for k in TEXTURE_LAYERS]))
            sharpness = season_transfer.gradient_magnitude(image).mean() / season_transfer.gradient_magnitude(photo).mean()
            return {"colour_distance": season_transfer.colour_distance(image, ref), "gram_distance": texture,
                    "edge_agreement": season_transfer.edge_agreement(image, photo), "sharpness": float(sharpness)}

        demo.record(f"season_transfer/{content}/content", 0.0, **measures(photo))
        pictures = [photo, ref]
        variants = (("gatys", {}, True), ("guided_filter_only", {"season_transfer": {"photorealism": 0, "detail": 1}}, True),
                    ("season_transfer", {"season_transfer": {}}, True),
                    ("season_transfer_and_guided_filter", {"season_transfer": {"detail": 1}}, False))
        for label, plugins, shown in variants:
            _, image, seconds = demo.run({**data, "scales": 2, "plugins": plugins})
            demo.record(f"season_transfer/{content}/{label}", seconds, **measures(image))
            if shown:
                pictures.append(image)
        demo.panel(f"season_transfer_{content}", pictures)


# --- regions and scale_control ------------------------------------------------------------------

REGION_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
#: Soft edges: the horizon's band and the circle's rim fade over this share of the photo's height.
FEATHER = 0.08


def _guided(image: np.ndarray, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    import tensorflow as tf

    from styled.nets.layers import stride_of
    from styled.plugins.builtin.regions import guided_gram, pooled_guides

    features = _extractor()(tf.constant(image[None], tf.float32), REGION_LAYERS)
    guides = pooled_guides(np.ones(image.shape[:2], np.float32) if mask is None else mask,
                           [stride_of(name) for name in REGION_LAYERS])
    found = {}
    for name in REGION_LAYERS:
        product, count = guided_gram(features[name], tf.constant(guides[stride_of(name)][None, ..., None]))
        found[name] = (product / count).numpy()
    return found


def _gram_distance(a: dict, b: dict, layers=REGION_LAYERS) -> float:
    return float(np.mean([np.sum((a[k] - b[k]) ** 2) for k in layers]))


def _masks(shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """A feathered horizon (sky = 1 above 40 % of the height) and a feathered centred circle."""
    height, width = shape
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    band = FEATHER * height
    sky = np.clip((0.4 * height - rows) / band + 0.5, 0.0, 1.0)
    radius = np.hypot(rows - height / 2, columns - width / 2)
    circle = np.clip((0.3 * height - radius) / band + 0.5, 0.0, 1.0)
    return {"sky": sky, "town": 1.0 - sky, "circle": circle}


def demo_regions(demo: Demo) -> None:
    import tempfile

    folder = Path(tempfile.mkdtemp())
    photo = load_image(demo.images / "content/tubingen.jpg").pixels
    masks = _masks(photo.shape[:2])
    for name, mask in masks.items():
        save_image(folder / f"{name}.png", np.repeat(mask[..., None], 3, axis=-1))
    styles = {name: str(demo.images / f"style/{name}.jpg") for name in ("starry_night", "the_scream")}
    cases = {
        "sky_and_town": [{"mask": str(folder / "sky.png"), "style": styles["starry_night"]},
                         {"mask": str(folder / "town.png"), "style": styles["the_scream"]}],
        "keep_circle": [{"mask": str(folder / "circle.png")}],
    }
    targets = {name: _guided(resize_long_side(load_image(Path(path)).pixels, demo.args.size))
               for name, path in styles.items()}
    for case, entries in cases.items():
        data = {"content": "content/tubingen.jpg", "plugins": {"regions": {"regions": entries}}}
        if case == "keep_circle":
            data["style"] = "style/starry_night.jpg"
        job, image, seconds = demo.run(data)
        height, width = image.shape[:2]
        fitted = {name: resize_to(mask, width, height) for name, mask in masks.items()}
        small = resize_to(photo, width, height)
        if case == "sky_and_town":
            values = {f"{region}_to_{style}": _gram_distance(_guided(image, fitted[region]), targets[style])
                      for region in ("sky", "town") for style in styles}
            values.update({f"photo_{region}_to_{style}": _gram_distance(_guided(small, fitted[region]), targets[style])
                           for region in ("sky", "town") for style in styles})
            pictures = [small, np.repeat(fitted["sky"][..., None], 3, axis=-1), image]
        else:
            change = np.abs(image - small).mean(axis=-1)
            values = {"change_inside_circle": float(change[fitted["circle"] > 0.99].mean()),
                      "change_outside": float(change[fitted["circle"] < 0.01].mean())}
            pictures = [small, np.repeat(fitted["circle"][..., None], 3, axis=-1), image]
        demo.record(f"regions/{case}", seconds, **values)
        demo.panel(f"regions_{case}", pictures)


def demo_scale_control(demo: Demo) -> None:
    from styled.plugins.builtin.scale_control import split_layers

    styles = {name: f"style/{name}.jpg" for name in ("starry_night", "the_scream")}
    targets = {name: _guided(resize_long_side(load_image(demo.images / path).pixels, demo.args.size))
               for name, path in styles.items()}
    fine_layers, coarse_layers = split_layers(list(REGION_LAYERS), "relu3_1")
    pictures = [load_image(demo.images / path).pixels for path in styles.values()]
    for fine, coarse in (("starry_night", "the_scream"), ("the_scream", "starry_night")):
        data = {"content": "content/tubingen.jpg", "plugins": {"scale_control": {
            "fine": styles[fine], "coarse": styles[coarse]}}}
        _, image, seconds = demo.run(data)
        grams = _guided(image)
        demo.record(f"scale_control/fine_{fine}", seconds,
                    **{f"fine_layers_to_{name}": _gram_distance(grams, targets[name], fine_layers) for name in styles},
                    **{f"coarse_layers_to_{name}": _gram_distance(grams, targets[name], coarse_layers)
                       for name in styles})
        pictures.append(image)
    demo.panel("scale_control", pictures)


_EXTRACTOR = []


def _extractor():
    if not _EXTRACTOR:
        from styled.nets.vgg import FeatureExtractor
        from styled.nets.weights import load_backbone

        _EXTRACTOR.append(FeatureExtractor(load_backbone("vgg19")))
    return _EXTRACTOR[0]


DEMOS: dict[str, Callable[[Demo], None]] = {
    "long_range": demo_long_range,
    "symmetry": demo_symmetry,
    "inpainting": demo_inpainting,
    "season_transfer": demo_season_transfer,
    "regions": demo_regions,
    "scale_control": demo_scale_control,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demos", nargs="*", metavar="DEMO", help=f"any of {', '.join(DEMOS)} (default: all)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--out", default=str(REPO / "docs" / "images" / "plugins"))
    parser.add_argument("--images", default=str(REPO.parent / "shared" / "images"))
    args = parser.parse_args()
    unknown = set(args.demos) - set(DEMOS)
    if unknown:
        parser.error(f"unknown demo {', '.join(sorted(unknown))}; choose from {', '.join(DEMOS)}")
    demo = Demo(args)
    for name in args.demos or DEMOS:
        DEMOS[name](demo)
        demo.save()


if __name__ == "__main__":
    main()
