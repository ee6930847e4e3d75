"""The real engine on tiny images: losses fall, seeds repeat, scales, colours, budgets, resume."""

from __future__ import annotations

import time

import numpy as np
import pytest

from styled import render
from styled.engine.job import load_job, relative_to
from styled.engine.spec import build_job_spec
from styled.engine.types import Checkpoint, RenderOptions
from styled.errors import DeviceError
from styled.io.colour import rgb_to_yiq
from styled.io.images import resize_to

QUICK = {"size": 48, "scales": 1, "iterations": 12, "precision": "float32"}


def make_job(tiny_images, **keys):
    data = {"content": str(tiny_images["content"]), "style": [str(tiny_images["style"])], **QUICK, **keys}
    return load_job(build_job_spec(data), relative_to(tiny_images["content"].parent))


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_total_loss_falls(tiny_images, optimizer):
    result = render(make_job(tiny_images, optimizer=optimizer, learning_rate=0.05))
    totals = [entry["total"] for entry in result.history]
    assert len(totals) == QUICK["iterations"]
    assert totals[-1] < 0.7 * totals[0], totals
    assert result.losses["total"] == pytest.approx(totals[-1])
    assert set(result.losses) >= {"content", "style", "tv", "total"}


def test_the_output_is_the_best_image_seen(tiny_images):
    result = render(make_job(tiny_images, iterations=8))
    assert result.image.shape == (36, 48, 3)
    assert result.image.dtype == np.float32
    assert 0.0 <= result.image.min() and result.image.max() <= 1.0


@pytest.mark.slow
def test_a_seed_makes_runs_reproducible(tiny_images):
    first = render(make_job(tiny_images, init="noise", seed=3, iterations=5))
    second = render(make_job(tiny_images, init="noise", seed=3, iterations=5))
    other = render(make_job(tiny_images, init="noise", seed=4, iterations=5))
    np.testing.assert_array_equal(first.image, second.image)
    assert not np.array_equal(first.image, other.image)


def test_coarse_to_fine_runs_every_scale_and_ends_at_full_size(tiny_images):
    result = render(make_job(tiny_images, size=64, scales=2, scale_start=32, iterations=4, coarse_iterations=3))
    scales = [entry["scale"] for entry in result.history]
    assert scales == [1, 1, 1, 2, 2, 2, 2]
    assert result.image.shape == (48, 64, 3)
    assert result.iterations == 7


def test_preserve_colors_keeps_the_contents_chroma(tiny_images):
    job = make_job(tiny_images, preserve_colors=True, iterations=6)
    result = render(job)
    content = resize_to(job.content.pixels, 48, 36)
    chroma = rgb_to_yiq(result.image)[..., 1:]
    assert np.abs(chroma - rgb_to_yiq(content)[..., 1:]).mean() < 0.01
    plain = render(make_job(tiny_images, iterations=6))
    assert np.abs(rgb_to_yiq(plain.image)[..., 1:] - rgb_to_yiq(content)[..., 1:]).mean() > 0.01


@pytest.mark.slow
def test_time_limit_ends_the_optimisation(tiny_images):
    started = time.monotonic()
    result = render(make_job(tiny_images, iterations=100_000, time_limit=3))
    assert result.iterations < 100_000
    assert time.monotonic() - started < 30


def test_zero_iterations_returns_the_initial_image(tiny_images):
    job = make_job(tiny_images, iterations=0)
    result = render(job)
    np.testing.assert_allclose(result.image, resize_to(job.content.pixels, 48, 36), atol=1e-6)


def test_several_styles_and_custom_layers(tiny_images):
    job = make_job(tiny_images, style=[str(tiny_images["style"]), str(tiny_images["style2"])],
                   style_blend=[3, 1], content_layers=["relu3_1"], style_layers={"relu1_1": 1, "relu2_1": 2},
                   iterations=4)
    result = render(job)
    assert result.settings["style_layers"] == {"relu1_1": 1.0, "relu2_1": 2.0}
    assert result.settings["content_layers"] == ["relu3_1"]
    assert result.history[-1]["total"] < result.history[0]["total"]


def test_texture_synthesis_starts_from_noise_and_takes_the_styles_aspect(tiny_images):
    data = {"style": [str(tiny_images["style"])], **QUICK, "seed": 1}
    result = render(load_job(build_job_spec(data), relative_to(tiny_images["style"].parent)))
    assert result.image.shape[1] == 48
    assert "content" not in result.history[0]
    assert result.history[-1]["style"] < result.history[0]["style"]


def test_progress_events_report_scale_iteration_loss_and_eta(tiny_images):
    events = []
    render(make_job(tiny_images, iterations=5), options=RenderOptions(on_progress=events.append))
    assert [e.iteration for e in events] == [1, 2, 3, 4, 5]
    assert all(e.scale == 1 and e.scales == 1 and e.iterations == 5 for e in events)
    assert events[-1].eta is not None and events[-1].eta >= 0
    assert events[0].loss > events[-1].loss


@pytest.mark.slow
def test_interrupted_render_checkpoints_and_resumes(tiny_images, tmp_path):
    job = make_job(tiny_images, iterations=10)
    saved: list[Checkpoint] = []
    steps = iter(range(1, 1000))
    stop_after = 4
    first = render(job, options=RenderOptions(
        on_checkpoint=saved.append, should_stop=lambda: next(steps) >= stop_after,
    ))
    assert first.interrupted and first.checkpoint is not None
    assert first.checkpoint.state.iteration == stop_after
    assert len(saved) == 1  # the stop request forces a checkpoint
    path = tmp_path / "checkpoint.npz"
    first.checkpoint.save(path)
    restored = Checkpoint.load(path)
    np.testing.assert_array_equal(restored.state.image, first.checkpoint.state.image)
    resumed = render(job, options=RenderOptions(resume=restored))
    assert not resumed.interrupted
    assert resumed.iterations == 10
    assert [e["iteration"] for e in resumed.history] == list(range(10))


def test_checkpoints_come_every_checkpoint_seconds(tiny_images):
    saved: list[Checkpoint] = []
    render(make_job(tiny_images, iterations=6),
           options=RenderOptions(on_checkpoint=saved.append, checkpoint_seconds=0.0))
    assert [c.state.iteration for c in saved] == [1, 2, 3, 4, 5, 6]


def test_content_alpha_is_kept(tiny_images, tmp_path):
    from PIL import Image as PILImage

    with PILImage.open(tiny_images["content"]) as picture:
        rgba = picture.convert("RGBA")
    rgba.putalpha(PILImage.linear_gradient("L").resize(rgba.size))
    path = tmp_path / "transparent.png"
    rgba.save(path)
    job = load_job(build_job_spec({"content": str(path), "style": str(tiny_images["style"]), **QUICK,
                                   "iterations": 2}), relative_to(tmp_path))
    result = render(job)
    assert result.alpha is not None and result.alpha.shape == result.image.shape[:2]
    assert result.alpha.min() < 0.1 and result.alpha.max() > 0.9


def test_a_missing_gpu_is_a_clear_error(tiny_images):
    with pytest.raises(DeviceError, match="not available"):
        render(make_job(tiny_images, device="gpu:7"))
