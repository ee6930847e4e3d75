"""The studio's example plugins in plugins/, loaded the way a studio loads them (``plugins_dir``), each
measured doing what its docstring says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from styled import render
from styled.engine.job import load_job, relative_to
from styled.engine.spec import build_job_spec
from styled.errors import PluginError
from styled.io.images import resize_to
from styled.plugins import make_plugin_manager, validate_job

PLUGINS_DIR = REPO / "plugins"
SPEC = {"size": 48, "scales": 1, "iterations": 25, "seed": 1, "precision": "float32", "style_weight": 1000}
PALETTE = ["#1b2a49", "#e9c46a", "#f4f1de"]


def rendered(tiny_images, plugins: dict):
    manager = make_plugin_manager(PLUGINS_DIR)
    data = {"content": str(tiny_images["content"]), "style": [str(tiny_images["style"])], **SPEC, "plugins": plugins}
    job = validate_job(manager, load_job(build_job_spec(data), relative_to(Path("/"))), relative_to(Path("/")))
    return job, render(job, manager)


def sobel_magnitude(image: np.ndarray) -> np.ndarray:
    luma = image @ np.array([0.299, 0.587, 0.114], np.float32)
    padded = np.pad(luma, 1, mode="reflect")
    gx = (padded[1:-1, 2:] - padded[1:-1, :-2]) * 2 + padded[:-2, 2:] - padded[:-2, :-2] + padded[2:, 2:] - padded[2:, :-2]
    gy = (padded[2:, 1:-1] - padded[:-2, 1:-1]) * 2 + padded[2:, :-2] - padded[:-2, :-2] + padded[2:, 2:] - padded[:-2, 2:]
    return np.hypot(gx, gy)


def edge_agreement(result: np.ndarray, photo: np.ndarray) -> float:
    return float(np.corrcoef(sobel_magnitude(result).ravel(), sobel_magnitude(photo).ravel())[0, 1])


def palette_distance(image: np.ndarray) -> float:
    colours = np.array([[int(c[i:i + 2], 16) / 255 for i in (1, 3, 5)] for c in PALETTE], np.float32)
    return float(np.min(((image[..., None, :] - colours) ** 2).sum(-1), axis=-1).mean())


def test_both_example_plugins_load_from_the_plugins_folder():
    names = {name for name, _ in make_plugin_manager(PLUGINS_DIR).list_name_plugin()}
    assert any(name.endswith("edges") for name in names) and any(name.endswith("palette") for name in names), names


@pytest.mark.slow
def test_edges_keeps_the_photos_edges_under_a_heavy_style(tiny_images):
    job, plain = rendered(tiny_images, {})
    _, kept = rendered(tiny_images, {"edges": {"weight": 2000}})
    photo = resize_to(job.content.pixels, 48, 36)
    assert "edges" in kept.losses
    assert edge_agreement(kept.image, photo) > edge_agreement(plain.image, photo) + 0.1


@pytest.mark.slow
def test_palette_pulls_the_colours_toward_the_palette(tiny_images):
    _, plain = rendered(tiny_images, {})
    _, painted = rendered(tiny_images, {"palette": {"colors": PALETTE, "weight": 500}})
    assert palette_distance(painted.image) < 0.7 * palette_distance(plain.image)


def test_a_bad_palette_is_refused_naming_the_option(tiny_images):
    for colors, message in ((None, "needs its colours"), (["teal"], "is not a colour")):
        with pytest.raises(PluginError) as refused:
            rendered(tiny_images, {"palette": {"colors": colors} if colors else {}})
        assert refused.value.key.startswith("plugins.palette") and message in str(refused.value)


@pytest.mark.slow
def test_the_edge_term_tiles_exactly(tiny_images):
    manager = make_plugin_manager(PLUGINS_DIR)
    data = {"content": str(tiny_images["content"]), "style": [str(tiny_images["style"])], **SPEC, "iterations": 3,
            "tile_size": 16, "plugins": {"edges": {"weight": 500}}}
    job = validate_job(manager, load_job(build_job_spec(data), relative_to(Path("/"))), relative_to(Path("/")))
    tiled = render(job, manager)
    untiled = render(validate_job(manager, load_job(build_job_spec({**data, "tile_size": "auto"}),
                                                    relative_to(Path("/"))), relative_to(Path("/"))), manager)
    assert tiled.memory[-1]["tiles"] > 1
    assert tiled.history[0]["edges"] == pytest.approx(untiled.history[0]["edges"], rel=1e-4)
    assert tiled.history[-1]["total"] == pytest.approx(untiled.history[-1]["total"], rel=1e-3)
