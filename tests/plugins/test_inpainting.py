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
    assert not np.array_equal(after[~outside], before[~outside])  # the hole was filled anew


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


def wall_of_windows(period: int = 24, size: tuple[int, int] = (96, 120)) -> np.ndarray:
    """A generated facade: plaster with a dark window (and a lighter frame) every ``period`` pixels."""
    height, width = size
    rng = np.random.default_rng(0)
    wall = np.full((height, width, 3), (0.78, 0.74, 0.68), np.float32) + rng.normal(0, 0.02, (height, width, 1))
    for top in range(4, height - 12, period):
        for left in range(6, width - 10, period):
            wall[top:top + 14, left:left + 10] = (0.9, 0.9, 0.88)  # frame
            wall[top + 2:top + 12, left + 2:left + 8] = (0.15, 0.22, 0.35)  # glass
            wall[top + 2:top + 12, left + 4:left + 6] = (0.9, 0.9, 0.88)  # mullion
    return np.clip(wall, 0, 1).astype(np.float32)


def test_the_first_fill_lands_on_the_period_of_a_generated_grid():
    wall = wall_of_windows()
    hole = np.zeros(wall.shape[:2], bool)
    hole[26:44, 28:42] = True  # over the window at (28, 30)
    dy, dx = inpainting.best_offset(wall, hole, ring=9)  # half the hole: it sees the neighbouring windows
    assert dy % 24 == 0 and dx % 24 == 0 and (dy, dx) != (0, 0), (dy, dx)
    filled = inpainting.first_fill(wall, hole)
    assert np.array_equal(filled[~hole], wall[~hole])
    grey = lambda image: image[hole].mean(-1) - image[hole].mean()  # noqa: E731
    ncc = float(grey(filled) @ grey(wall) / np.linalg.norm(grey(filled)) / np.linalg.norm(grey(wall)))
    assert ncc > 0.9, ncc


def test_each_part_of_a_hole_gets_its_own_offset_and_one_too_large_to_copy_is_said():
    wall = wall_of_windows()
    hole = np.zeros(wall.shape[:2], bool)
    hole[26:44, 28:42] = True
    hole[50:68, 76:90] = True  # a second window, a period down and two across
    assert len(inpainting.components(hole)) == 2
    filled = inpainting.first_fill(wall, hole)
    assert np.abs(filled[hole] - wall[hole]).mean() < 0.05, "both parts copied in phase"
    everything = np.ones(wall.shape[:2], bool)
    everything[:4, :4] = False
    with pytest.raises(inpainting.NoOffset):
        inpainting.best_offset(wall, everything, ring=4)


@pytest.mark.slow
def test_a_generated_wall_of_windows_is_filled_in_phase_at_its_own_resolution(tmp_path):
    from styled.io.images import save_image

    wall = wall_of_windows()
    save_image(tmp_path / "wall.png", wall)
    x, y, w, h = 28, 26, 14, 18
    spec = build_job_spec({"content": "wall.png", "iterations": 20, "size": 48, "seed": 1,
                           "plugins": {"inpainting": {"region": [x, y, w, h]}}})
    plugins = make_plugin_manager()
    job = validate_job(plugins, load_job(spec, relative_to(tmp_path)), relative_to(tmp_path))
    result = render(job, plugins)
    assert result.image.shape == wall.shape
    # the window: the hole grown by its own size on each side (18 + 2 x 18 rows), at its own resolution
    assert result.settings["size"] == 3 * h, "rendered at the photo's own resolution, not at size 48"
    filled, truth = result.image[y:y + h, x:x + w].mean(-1), wall[y:y + h, x:x + w].mean(-1)
    filled, truth = filled - filled.mean(), truth - truth.mean()
    ncc = float((filled * truth).sum() / np.linalg.norm(filled) / np.linalg.norm(truth))
    assert ncc >= 0.85, ncc


def test_a_window_that_must_be_tiled_is_refused_with_the_terms_names(photo):
    """The hole's statistics are weighted over the whole window: its terms do not tile (docs/plugins.md)."""
    from styled.errors import MemoryBudgetError

    spec = build_job_spec({"content": str(photo), "iterations": 2, "tile_size": 32,
                           "plugins": {"inpainting": {"region": [30, 30, 24, 24]}}})
    plugins = make_plugin_manager()
    job = validate_job(plugins, load_job(spec, relative_to(Path.cwd())), relative_to(Path.cwd()))
    with pytest.raises(MemoryBudgetError, match="inpainting_style.*need the whole image at once"):
        render(job, plugins)
