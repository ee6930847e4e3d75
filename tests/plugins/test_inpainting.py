"""inpainting: only the hole changes, and the saved file equals the input outside it, at its size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import shared_image, tiny_copy
from PIL import Image as PILImage

from styled import cli, render
from styled.engine.job import load_job, relative_to
from styled.engine.spec import build_job_spec
from styled.errors import PluginError
from styled.nets.layers import block_of
from styled.plugins import make_plugin_manager, validate_job
from styled.plugins.builtin import inpainting, long_range


def pixels(path: Path) -> np.ndarray:
    return np.asarray(PILImage.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """The building photo, 96 x 93: windows on a grid."""
    folder = tmp_path_factory.mktemp("inpainting")
    return tiny_copy(shared_image("inpainting/building.jpg"), folder / "building.png", 96)


@pytest.mark.slow
def test_a_region_changes_only_its_pixels_and_the_output_keeps_the_input_size(photo, tmp_path):
    out = tmp_path / "filled.png"
    x, y, w, h = 40, 30, 20, 20
    code = cli.main(["render", str(photo), str(photo), "-o", str(out), "--size", "64", "--iterations", "10",
                     "--set", "scales=1", "--quiet", "--set", f"plugins.inpainting.region=[{x}, {y}, {w}, {h}]"])
    assert code == cli.EXIT_OK
    before, after = pixels(photo), pixels(out)
    assert after.shape == before.shape  # the content's size, although the render ran smaller
    outside = np.ones(before.shape[:2], bool)
    outside[y:y + h, x:x + w] = False
    assert np.array_equal(after[outside], before[outside])  # bit-identical
    assert np.abs(after[~outside].astype(int) - before[~outside]).mean() > 5  # the hole was refilled


@pytest.mark.slow
def test_a_mask_file_is_found_relative_to_the_job_file(photo, tmp_path):
    before = pixels(photo)
    mask = np.zeros(before.shape[:2], np.uint8)
    mask[50:70, 10:25] = 255
    mask[20:30, 60:80] = 255  # two holes
    PILImage.fromarray(mask).save(tmp_path / "holes.png")
    (tmp_path / "photo.png").write_bytes(photo.read_bytes())
    (tmp_path / "job.yaml").write_text("content: photo.png\nstyle: photo.png\nsize: 96\niterations: 6\nscales: 1\n"
                                       "plugins:\n  inpainting:\n    mask: holes.png\n    long_range: false\n")
    out = tmp_path / "out" / "filled.png"
    assert cli.main(["render", "--job", str(tmp_path / "job.yaml"), "-o", str(out), "--quiet"]) == cli.EXIT_OK
    after = pixels(out)
    outside = mask == 0
    assert np.array_equal(after[outside], before[outside])
    assert not np.array_equal(after[~outside], before[~outside])


def render_job(photo: Path, **inpainting_options):
    pm = make_plugin_manager()
    spec = build_job_spec({"content": str(photo), "style": str(photo), "size": 48, "iterations": 1, "scales": 1,
                           "plugins": {"inpainting": inpainting_options}})
    resolve = relative_to(Path.cwd())
    return render(validate_job(pm, load_job(spec, resolve), resolve), pm)


def test_a_region_outside_the_content_is_refused(photo):
    with pytest.raises(PluginError, match=r"reaches outside the 96 x 93 content") as caught:
        render_job(photo, region=[90, 10, 20, 20])
    assert caught.value.key == "plugins.inpainting.region"


def test_a_mask_of_another_shape_is_refused(photo, tmp_path):
    PILImage.fromarray(np.full((10, 40), 255, np.uint8)).save(tmp_path / "wide.png")
    with pytest.raises(PluginError, match="the mask is 40 x 10, the content 96 x 93"):
        render_job(photo, mask=str(tmp_path / "wide.png"))


def test_an_all_black_mask_is_refused(photo, tmp_path):
    PILImage.fromarray(np.zeros((93, 96), np.uint8)).save(tmp_path / "black.png")
    with pytest.raises(PluginError, match="nothing to fill"):
        render_job(photo, mask=str(tmp_path / "black.png"))


def test_inpainting_needs_a_content_image(photo):
    pm = make_plugin_manager()
    spec = build_job_spec({"style": str(photo), "size": 32, "iterations": 1, "scales": 1,
                           "plugins": {"inpainting": {"region": [1, 1, 4, 4]}}})
    with pytest.raises(PluginError, match="needs a content image"):
        render(load_job(spec, relative_to(Path.cwd())), pm)


def test_the_window_around_the_hole_stays_inside_the_image():
    mask = np.zeros((50, 80), bool)
    mask[5:15, 60:75] = True
    assert inpainting.window_around(mask, 1.0) == (0, 45, 25, 80)
    assert inpainting.window_around(mask, 0.5) == (0, 52, 20, 80)


@pytest.mark.parametrize("layer", ["relu1_1", "relu2_1", "relu3_1", "relu4_1"])
def test_the_feature_mask_matches_the_feature_map(layer):
    mask = np.zeros((37, 50), bool)
    mask[10:20, 30:40] = True
    cells = inpainting.feature_mask(mask, layer)
    assert cells.shape == (long_range.feature_length(37, layer), long_range.feature_length(50, layer))
    stride = 2 ** (block_of(layer) - 1)
    assert cells[15 // stride, 35 // stride]  # the hole
    assert not cells[0, 0]  # far from it


def test_a_huge_bad_region_is_quoted_short():
    """Found by tests/settings/test_spec_fuzz.py: the region's error quoted a 400-digit value whole."""
    from styled.plugins.builtin.inpainting import _region
    from styled.plugins.schema import OptionError

    with pytest.raises(OptionError) as caught:
        _region({"content": 10**400})
    assert len(str(caught.value)) < 200
