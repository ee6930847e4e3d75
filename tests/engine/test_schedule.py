"""The schedule by convergence: a stalled scale hands its iterations on, a print's top scale stops once
converged, and a new scale starts from an enlarged result with the detail enlarging loses."""

from __future__ import annotations

import numpy as np
import pytest

from styled import render
from styled.engine import schedule, upsample
from styled.engine.job import load_job, relative_to
from styled.engine.spec import build_job_spec
from styled.io.images import resize_to


def entries(*totals: float) -> list[dict[str, float]]:
    return [{"total": total} for total in totals]


def test_a_scale_has_converged_when_its_best_loss_fell_less_than_the_tolerance_over_the_window():
    falling = entries(*(100.0 * 0.9 ** step for step in range(12)))
    assert not schedule.converged(falling, 0.01), "10 % per iteration is progress"
    flat = entries(*([10.0] * 5 + [5.0] * 7))
    assert schedule.converged(flat, 0.01), "no better loss in the last 5 iterations"
    assert not schedule.converged(flat[:9], 0.01), "never before twice the window"
    assert not schedule.converged(flat, 0.0), "0 turns it off"
    spike = entries(*([5.0] * 7 + [50.0] * 5))
    assert schedule.converged(spike, 0.01), "a rejected step is no progress"


def test_unused_iterations_pass_to_the_next_scale_at_their_cost():
    spec = build_job_spec({"style": ["s.jpg"], "size": 512, "iterations": 100, "coarse_iterations": 60})
    assert spec.scale_sizes() == (128, 256, 512)
    assert schedule.budget(spec, 0, []) == 60
    assert schedule.budget(spec, 1, [20]) == 60 + 10, "40 iterations at 128 px are worth 10 at 256 px"
    assert schedule.budget(spec, 2, [20, 30]) == 100 + 10, "(70 - 30) at 256 px are worth 10 at 512 px"
    assert schedule.budget(spec, 1, [60]) == 60, "a scale that used its budget passes nothing on"


def test_a_prints_top_scale_runs_its_pixel_share_or_until_the_time_limit():
    top = len(build_job_spec({"style": ["s.jpg"], "size": 4096}).scale_sizes()) - 1
    unlimited = build_job_spec({"style": ["s.jpg"], "size": 4096})
    assert schedule.budget(unlimited, top, [300, 300, 300, 300, 75]) == 19, "never more than the fixed counts"
    assert schedule.budget(unlimited, top, [300, 300, 300, 300, 15]) == 19 + 15, "60 left at 2048 px are 15 at 4096"
    limited = build_job_spec({"style": ["s.jpg"], "size": 4096, "time_limit": 3600})
    assert schedule.budget(limited, top, [300, 300, 300, 300, 75]) == 300, "until converged or out of time"
    assert schedule.budget(limited, top - 1, [300, 300, 300, 300]) == 75, "only the top scale"


def test_only_the_coarse_scales_and_a_prints_top_scale_stop_when_converged():
    photo = build_job_spec({"style": ["s.jpg"], "size": 512})
    assert [schedule.stops_when_converged(photo, index) for index in range(3)] == [True, True, False]
    plain = build_job_spec({"style": ["s.jpg"], "size": 512, "convergence": 0})
    assert not any(schedule.stops_when_converged(plain, index) for index in range(3))
    print_job = build_job_spec({"style": ["s.jpg"], "size": 2048})
    assert schedule.stops_when_converged(print_job, len(print_job.scale_sizes()) - 1)


def make_job(tiny_images, **keys):
    data = {"content": str(tiny_images["content"]), "style": [str(tiny_images["style"])], "size": 64,
            "scales": 2, "scale_start": 32, "precision": "float32", "seed": 1, **keys}
    return load_job(build_job_spec(data), relative_to(tiny_images["content"].parent))


def counts(result) -> list[int]:
    return [sum(1 for entry in result.history if entry["scale"] == scale) for scale in (1, 2)]


def test_a_stalled_coarse_scale_hands_its_iterations_to_the_next(tiny_images):
    # With a tolerance of 99 %, the coarse scale has "stalled" as soon as the rule may judge it.
    result = render(make_job(tiny_images, iterations=6, coarse_iterations=60, convergence=0.99))
    coarse, fine = counts(result)
    assert coarse == 2 * schedule.CONVERGENCE_WINDOW
    assert fine == 6 + (60 - coarse) // 4, "the unused coarse iterations, at a quarter of the cost each"
    fixed = render(make_job(tiny_images, iterations=6, coarse_iterations=12, convergence=0))
    assert counts(fixed) == [12, 6], "convergence 0: fixed counts"


def test_a_prints_top_scale_stops_on_convergence(tiny_images, monkeypatch):
    # 64 px stands in for a print size: the rule is the same above PRINT_SIDE.
    monkeypatch.setattr(schedule, "PRINT_SIDE", 48)
    result = render(make_job(tiny_images, iterations=200, coarse_iterations=10, convergence=0.5))
    coarse, fine = counts(result)
    assert fine < 200, "the top scale stopped once converged"
    top = [entry["total"] for entry in result.history if entry["scale"] == 2]
    assert schedule.converged(entries(*top), 0.5) and not schedule.converged(entries(*top[:-1]), 0.5)
    monkeypatch.setattr(schedule, "PRINT_SIDE", 1024)
    photo = render(make_job(tiny_images, iterations=30, coarse_iterations=10, convergence=0.5))
    assert counts(photo)[1] == 30, "below print sizes the last scale runs all its iterations"


def test_history_entries_carry_the_renders_seconds(tiny_images):
    result = render(make_job(tiny_images, iterations=3, coarse_iterations=3))
    seconds = [entry["seconds"] for entry in result.history]
    assert seconds == sorted(seconds) and seconds[0] > 0
    assert "seconds" not in result.losses


def test_the_missing_band_is_what_a_round_trip_through_the_coarse_size_loses():
    rng = np.random.default_rng(0)
    flat = np.full((32, 48, 3), 0.4, np.float32)
    assert np.abs(upsample.missing_band(flat, (16, 24))).max() < 1e-5, "a flat image loses nothing"
    noisy = rng.uniform(0, 1, (32, 48, 3)).astype(np.float32)
    band = upsample.missing_band(noisy, (16, 24))
    restored = resize_to(resize_to(noisy, 24, 16), 48, 32) + band
    np.testing.assert_allclose(restored, noisy, atol=1e-5)


def test_an_enlarged_result_gets_the_photos_and_the_styles_fine_detail_back():
    rng = np.random.default_rng(0)
    photo = rng.uniform(0, 1, (64, 96, 3)).astype(np.float32)
    style = rng.uniform(0, 1, (40, 40, 3)).astype(np.float32)
    previous = resize_to(photo, 48, 32)
    plain = upsample.enlarge(previous, (64, 96), photo, [style], [1.0], rng, upsample.Detail(0, 0))
    np.testing.assert_allclose(plain, resize_to(previous, 96, 64), atol=1e-6)

    def fine_energy(image):
        return float(np.mean(upsample.missing_band(image, (32, 48)) ** 2))

    with_photo = upsample.enlarge(previous, (64, 96), photo, [style], [1.0], rng, upsample.Detail(1, 0))
    assert fine_energy(with_photo) == pytest.approx(fine_energy(photo), rel=0.25)
    assert fine_energy(plain) < 0.1 * fine_energy(photo)
    with_style = upsample.enlarge(previous, (64, 96), None, [style], [1.0], rng, upsample.Detail(0, 1))
    assert fine_energy(with_style) > 5 * fine_energy(plain), "a texture gets the style's band"
    assert with_style.min() >= 0 and with_style.max() <= 1
