"""`styled render` end to end in a real subprocess: the image, the JSON report, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

QUICK = ["--size", "48", "--iterations", "4", "--set", "scales=1", "--quiet"]
REPORT_KEYS = {"iterations", "seconds", "seconds_per_iteration", "losses", "settings", "device", "precision", "versions"}


def styled(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "styled.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.mark.slow
def test_render_writes_the_image_and_a_json_report(tiny_images, tmp_path):
    out = tmp_path / "result.png"
    done = styled("render", str(tiny_images["content"]), str(tiny_images["style"]), "-o", str(out), *QUICK,
                  "--set", "style_weight=80")
    assert done.returncode == 0, done.stderr
    with PILImage.open(out) as picture:
        assert picture.size == (48, 36)
    report = json.loads(out.with_suffix(".json").read_text())
    assert REPORT_KEYS <= set(report)
    assert report["iterations"] == 4
    assert set(report["losses"]) >= {"content", "style", "tv", "total"}
    assert report["settings"]["style_weight"] == 80
    assert report["device"] == "cpu"
    assert report["versions"]["tensorflow"]
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_a_print_size_render_is_tiled_and_a_budget_too_small_is_refused_at_once(tiny_images, tmp_path):
    """The command users run at print size, with tiles forced small: the report shows the tiled plan;
    and a budget no plan fits fails before any work, saying what the job would need."""
    out = tmp_path / "print.png"
    done = styled("render", str(tiny_images["content"]), str(tiny_images["style"]), "-o", str(out), "--size", "96",
                  "--iterations", "2", "--set", "scales=1", "--set", "tile_size=32", "--quiet")
    assert done.returncode == 0, done.stderr
    plan = json.loads(out.with_suffix(".json").read_text())["memory"][-1]
    assert plan["tiles"] == 9 and plan["tile"] == [32, 32] and plan["halo"] == 80
    with PILImage.open(out) as picture:
        assert picture.size == (96, 72)
    refused = tmp_path / "refused.png"
    done = styled("render", str(tiny_images["content"]), str(tiny_images["style"]), "-o", str(refused),
                  "--size", "96", "--set", "scales=1", "--set", "max_memory=100MB", "--quiet")
    assert done.returncode == 2 and "needs about" in done.stderr and "raise max_memory" in done.stderr, done.stderr
    assert not refused.exists()


@pytest.mark.slow
def test_a_job_file_gives_the_same_keys_with_paths_relative_to_it(tiny_images, tmp_path):
    job = tmp_path / "jobs" / "job.yaml"
    job.parent.mkdir()
    (job.parent / "photo.png").write_bytes(tiny_images["content"].read_bytes())
    (job.parent / "paint.png").write_bytes(tiny_images["style"].read_bytes())
    job.write_text("content: photo.png\nstyle: [paint.png]\nsize: 40\niterations: 3\nscales: 1\nbit_depth: 16\n")
    out = tmp_path / "out.png"
    done = styled("render", "--job", str(job), "-o", str(out), "--quiet", "--set", "iterations=2")
    assert done.returncode == 0, done.stderr
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["iterations"] == 2 and report["settings"]["size"] == 40
    with PILImage.open(out) as picture:
        assert picture.size == (40, 30)
        assert picture.mode in ("I;16", "RGB") or "16" in picture.mode or picture.info is not None


@pytest.mark.slow
def test_several_styles_and_jpeg_output(tiny_images, tmp_path):
    out = tmp_path / "out.jpg"
    done = styled("render", str(tiny_images["content"]), str(tiny_images["style"]), str(tiny_images["style2"]),
                  "-o", str(out), *QUICK, "--set", "style_blend=[1, 3]")
    assert done.returncode == 0, done.stderr
    assert json.loads(out.with_suffix(".json").read_text())["settings"]["style"][1].endswith("style2.png")
    assert np.asarray(PILImage.open(out)).shape == (36, 48, 3)


def bad_inputs(tiny_images, tmp_path):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("these are my notes, not a photo")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(tiny_images["content"].read_bytes()[:200])
    content, style = str(tiny_images["content"]), str(tiny_images["style"])
    return {
        "missing file": ([str(tmp_path / "nope.jpg"), style], "does not exist"),
        "not an image": ([str(not_an_image), style], "not an image"),
        "truncated": ([str(truncated), style], "truncated"),
        "unknown key": ([content, style, "--set", "style_wieght=3"], "did you mean 'style_weight'"),
        "out of range": ([content, style, "--size", "-4"], "key 'size'"),
        "bad choice": ([content, style, "--set", "optimizer=sgd"], "lbfgs, adam"),
        "bad output suffix": ([content, style, "-o", str(tmp_path / "out.gif")], "cannot write '.gif'"),
        "only one image": ([content], "give a content image and at least one style image"),
        "missing gpu": ([content, style, "--set", "device=gpu:3"], "not available"),
    }


@pytest.mark.parametrize("case", ["missing file", "not an image", "truncated", "unknown key", "out of range",
                                  "bad choice", "bad output suffix", "only one image",
                                  pytest.param("missing gpu", marks=pytest.mark.slow)])
def test_bad_input_is_one_clear_line_and_a_non_zero_exit(tiny_images, tmp_path, case):
    args, expected = bad_inputs(tiny_images, tmp_path)[case]
    if "-o" not in args:
        args = [*args, "-o", str(tmp_path / "out.png")]
    done = styled("render", *args, "--quiet")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    message = [line for line in done.stderr.splitlines() if line.startswith("styled: error:")]
    assert len(message) == 1 and expected in message[0], done.stderr
    assert not (tmp_path / "out.png").exists()


@pytest.mark.slow
def test_a_job_file_whose_styles_come_only_from_regions_renders(tiny_images, tmp_path):
    height, width = 48, 64
    mask = np.zeros((height, width, 3), np.uint8)
    mask[: height // 2] = 255
    PILImage.fromarray(mask).save(tmp_path / "sky.png")
    PILImage.fromarray(255 - mask).save(tmp_path / "town.png")
    (tmp_path / "job.yaml").write_text(
        f"content: {tiny_images['content']}\nsize: 48\niterations: 3\nscales: 1\n"
        f"plugins:\n  regions:\n    regions:\n      - {{mask: sky.png, style: {tiny_images['style']}}}\n"
        f"      - {{mask: town.png, style: {tiny_images['style2']}}}\n")
    done = styled("render", "--job", str(tmp_path / "job.yaml"), "-o", str(tmp_path / "out.png"), "--quiet")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out.json").read_text())["settings"]["style"] == []
    nothing = tmp_path / "nothing.yaml"
    nothing.write_text(f"content: {tiny_images['content']}\nsize: 48\n")
    refused = styled("render", "--job", str(nothing), "-o", str(tmp_path / "no.png"), "--quiet")
    assert refused.returncode == 2 and "no images given" in refused.stderr, "no style anywhere is still refused"


@pytest.mark.slow
def test_an_inpainting_job_needs_no_style_image(tiny_images, tmp_path):
    out = tmp_path / "filled.png"
    done = styled("render", "--job", str(_inpainting_job(tiny_images, tmp_path)), "-o", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    before = np.asarray(PILImage.open(tiny_images["content"]).convert("RGB"), np.int16)
    after = np.asarray(PILImage.open(out).convert("RGB"), np.int16)
    outside = np.ones(before.shape[:2], bool)
    outside[16:32, 24:40] = False
    assert after.shape == before.shape and np.abs(after - before)[outside].max() <= 1, "only the hole changes"
    assert np.abs(after - before)[~outside].mean() > 1, "the hole is filled"


def _inpainting_job(tiny_images, folder: Path) -> Path:
    job = folder / "fill.yaml"
    job.write_text(f"content: {tiny_images['content']}\nsize: 64\niterations: 5\n"
                   "plugins:\n  inpainting: {region: [24, 16, 16, 16]}\n")
    return job
