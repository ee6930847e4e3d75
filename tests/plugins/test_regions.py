"""regions and scale_control (Gatys et al. 2017): each region's statistics move to its own style,
a region without style keeps the photo, the coarse and fine layers follow their own paintings."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from conftest import shared_image, tiny_copy
from styled import render
from styled.engine.job import load_job, relative_to
from styled.engine.spec import build_job_spec
from styled.errors import JobSpecError, PluginError
from styled.io.images import load_image, save_image
from styled.nets.vgg import FeatureExtractor
from styled.nets.weights import load_backbone
from styled.plugins import make_plugin_manager, validate_job
from styled.plugins.builtin import regions
from styled.plugins.builtin.regions import guided_gram, pooled_guides
from styled.plugins.builtin.scale_control import split_layers
from styled.nets.layers import stride_of

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
SPEC = {"size": 64, "scales": 1, "iterations": 40, "seed": 1, "style_layers": list(LAYERS)}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("regions")
    content = tiny_copy(shared_image("content/tubingen.jpg"), folder / "content.png", 64)
    height, width = load_image(content).pixels.shape[:2]
    top = np.zeros((height, width), np.float32)
    top[: height // 2] = 1.0
    masks = {"top": top, "bottom": 1.0 - top, "empty": np.zeros_like(top)}
    for name, mask in masks.items():
        save_image(folder / f"{name}.png", np.repeat(mask[..., None], 3, axis=-1))
    coloured = np.zeros((height, width, 3), np.float32)
    coloured[: height // 2] = (1.0, 0.0, 0.0)
    coloured[height // 2:] = (0.0, 0.0, 1.0)
    save_image(folder / "map.png", coloured)
    files = {name: folder / f"{name}.png" for name in masks}
    files.update(content=content, map=folder / "map.png",
                 starry=tiny_copy(shared_image("style/starry_night.jpg"), folder / "starry.png", 64),
                 scream=tiny_copy(shared_image("style/the_scream.jpg"), folder / "scream.png", 64))
    return {key: str(path) for key, path in files.items()}, masks


def run(files: dict, plugins: dict, **spec):
    data = {"content": files["content"], **SPEC, **spec, "plugins": plugins}
    plugins = make_plugin_manager()
    job = validate_job(plugins, load_job(build_job_spec(data), relative_to(Path("/"))), relative_to(Path("/")))
    return render(job, plugins)


@pytest.fixture(scope="module")
def extractor():
    return FeatureExtractor(load_backbone("vgg19"), "avg", tf.float32)


def grams(extractor, image: np.ndarray, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    features = extractor(tf.constant(image[None], tf.float32), LAYERS)
    guides = pooled_guides(np.ones(image.shape[:2], np.float32) if mask is None else mask,
                           [stride_of(name) for name in LAYERS])
    found = {}
    for name in LAYERS:
        product, count = guided_gram(features[name], tf.constant(guides[stride_of(name)][None, ..., None]))
        found[name] = (product / count).numpy()
    return found


def distance(a: dict, b: dict, layers=LAYERS) -> float:
    return float(sum(np.square(a[name] - b[name]).sum() for name in layers))


def test_each_region_moves_to_its_own_style_and_away_from_the_other(pictures, extractor):
    files, masks = pictures
    result = run(files, {"regions": {"regions": [{"mask": files["top"], "style": files["starry"]},
                                                 {"mask": files["bottom"], "style": files["scream"]}]}},)
    starry, scream = (grams(extractor, load_image(Path(files[name])).pixels) for name in ("starry", "scream"))
    top, bottom = grams(extractor, result.image, masks["top"]), grams(extractor, result.image, masks["bottom"])
    assert distance(top, starry) < distance(top, scream)
    assert distance(bottom, scream) < distance(bottom, starry)
    photo = load_image(Path(files["content"])).pixels
    assert distance(top, starry) < 0.5 * distance(grams(extractor, photo, masks["top"]), starry)
    assert {"regions_1", "regions_2"} <= set(result.losses) and "regions_rest" not in result.losses
    assert result.settings["style_weight"] == 0.0


def test_a_mask_of_another_size_is_resized_with_a_note_in_the_report(pictures, tmp_path):
    files, masks = pictures
    small = tmp_path / "small_top.png"
    save_image(small, np.repeat(masks["top"][::2, ::2, None], 3, axis=-1))
    result = run(files, {"regions": {"regions": [{"mask": str(small), "style": files["starry"]},
                                                 {"mask": files["bottom"], "style": files["scream"]}]}},
                 iterations=2, style=files["scream"])  # the resized edge leaves a sliver for the job's style
    [note] = result.report()["warnings"]
    assert "mask small_top.png is 32 x 24, the content 64 x 48: resized to fit" in note


def test_a_colour_map_names_the_same_regions_as_masks(pictures):
    files, _ = pictures
    by_map = run(files, {"regions": {"map": files["map"], "regions": [
        {"color": "#ff0000", "style": files["starry"]}, {"color": [0, 0, 255], "style": files["scream"]}]}},
        iterations=3)
    by_mask = run(files, {"regions": {"regions": [{"mask": files["top"], "style": files["starry"]},
                                                  {"mask": files["bottom"], "style": files["scream"]}]}},
                  iterations=3)
    assert np.abs(by_map.image - by_mask.image).max() < 1e-3


def test_a_region_without_style_keeps_the_photo(pictures):
    files, masks = pictures
    result = run(files, {"regions": {"regions": [{"mask": files["top"], "style": files["starry"]},
                                                 {"mask": files["bottom"]}]}})
    photo = load_image(Path(files["content"])).pixels
    change = np.abs(result.image - photo).mean(axis=-1)
    height = change.shape[0]
    kept, styled = change[height // 2 + 4:].mean(), change[: height // 2 - 4].mean()
    assert kept < 0.2 * styled and kept < 0.02
    assert "regions_keep_2" in result.losses


def test_the_jobs_own_style_takes_the_rest_of_the_photo(pictures, extractor):
    files, masks = pictures
    result = run(files, {"regions": {"regions": [{"mask": files["top"], "style": files["starry"]}]}},
                 style=files["scream"])
    assert "regions_rest" in result.losses
    bottom = grams(extractor, result.image, masks["bottom"])
    starry, scream = (grams(extractor, load_image(Path(files[name])).pixels) for name in ("starry", "scream"))
    assert distance(bottom, scream) < distance(bottom, starry)


def test_a_tiled_regions_render_gives_the_untiled_picture(pictures):
    files, _ = pictures
    plugins = {"regions": {"regions": [{"mask": files["top"], "style": files["starry"]},
                                       {"mask": files["bottom"], "style": files["scream"]}]}}
    shallow = {"style_layers": ["relu1_1", "relu2_1", "relu3_1"], "content_layers": ["relu3_1"], "size": 96,
               "iterations": 4, "precision": "float32"}
    whole = run(files, plugins, **shallow)
    tiled = run(files, plugins, tile_size=32, **shallow)
    assert tiled.memory[0]["tiles"] > 1
    assert np.abs(tiled.image - whole.image).max() < 1 / 255
    assert tiled.losses["regions_1"] == pytest.approx(whole.losses["regions_1"], rel=1e-3)


@pytest.mark.parametrize(("entry", "message"), [
    ({"mask": "empty", "style": "starry"}, "region 1 (empty.png) covers nothing"),
    ({"mask": "top", "style": "starry", "colour": "#ff0000"}, "did you mean 'color'?"),
    ({"mask": "top", "color": "#ff0000", "style": "starry"}, "either 'mask'"),
    ({"mask": "top", "style": ["starry", "scream"], "style_blend": [1]}, "has 1 values for 2 style images"),
    ({"mask": "top", "style": "starry"}, "leave 50 % of the photo without a style"),
])
def test_bad_regions_are_refused_with_the_key_and_a_fix(pictures, entry, message):
    files, _ = pictures
    named = {key: ([files[v] for v in value] if isinstance(value, list) and key != "style_blend" else
                   files.get(value, value) if isinstance(value, str) and key in ("mask", "style") else value)
             for key, value in entry.items()}
    with pytest.raises((PluginError, JobSpecError), match=re.escape(message)) as caught:
        run(files, {"regions": {"regions": [named]}}, iterations=1)
    assert caught.value.key.startswith("plugins.regions")


def test_colours_need_a_map_and_a_colour_missing_from_it_covers_nothing(pictures):
    files, _ = pictures
    with pytest.raises(PluginError, match="need 'map'"):
        run(files, {"regions": {"regions": [{"color": "#ff0000", "style": files["starry"]}]}}, iterations=1)
    with pytest.raises(PluginError, match="covers nothing"):
        run(files, {"regions": {"map": files["map"], "regions": [{"color": "#00ff00", "style": files["starry"]}]}},
            iterations=1)


def test_a_job_with_regions_needs_no_style_but_one_without_still_does(pictures):
    files, _ = pictures
    with pytest.raises(JobSpecError, match="at least one style image"):
        validate_job(make_plugin_manager(), load_job(build_job_spec(
            {"content": files["content"], "plugins": {"symmetry": {}}}), relative_to(Path("/"))))


def test_files_inside_regions_are_found_and_resolved_through_the_jobs_resolver(tmp_path):
    given = {"map": "map.png", "regions": [{"mask": "sky.png", "style": ["a.jpg", "b.jpg"], "guide": ["g.png", "h.png"]},
                                           {"color": "#ff0000"}]}
    assert sorted(regions.SCHEMA.files(given)) == sorted([
        ("plugins.regions.regions[0].mask", "sky.png"), ("plugins.regions.regions[0].style", "a.jpg"),
        ("plugins.regions.regions[0].style", "b.jpg"), ("plugins.regions.regions[0].guide", "g.png"),
        ("plugins.regions.regions[0].guide", "h.png"), ("plugins.regions.map", "map.png")])
    asked = []

    def refuse(key, value):
        asked.append((key, value))
        raise PluginError(f"{value!r} reaches outside the job with '..'", key=key)

    with pytest.raises(PluginError, match="reaches outside") as caught:
        regions.SCHEMA.apply({"regions": [{"mask": "../../etc/passwd", "style": "a.jpg"}]}, refuse)
    assert asked == [("plugins.regions.regions[0].mask", "../../etc/passwd")]
    assert caught.value.key == "plugins.regions.regions[0].mask"


def test_scale_control_takes_fine_layers_from_one_painting_and_coarse_from_the_other(pictures, extractor):
    files, _ = pictures
    result = run(files, {"scale_control": {"fine": files["starry"], "coarse": files["scream"]}}, iterations=60)
    image, starry, scream = (grams(extractor, picture) for picture in (
        result.image, load_image(Path(files["starry"])).pixels, load_image(Path(files["scream"])).pixels))
    fine, coarse = split_layers(list(LAYERS), "relu3_1")
    assert fine == ("relu1_1", "relu2_1") and coarse == ("relu3_1", "relu4_1")
    assert distance(image, starry, fine) < distance(image, scream, fine)
    assert distance(image, scream, coarse) < distance(image, starry, coarse)
    assert "scale_control" in result.losses


def test_scale_control_refuses_a_split_that_leaves_one_side_empty(pictures):
    files, _ = pictures
    with pytest.raises(PluginError, match="leaves no fine style layers"):
        run(files, {"scale_control": {"fine": files["starry"], "coarse": files["scream"], "split": "relu1_1"}},
            iterations=1)
