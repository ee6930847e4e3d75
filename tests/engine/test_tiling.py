"""Exact tiling: the tiled objective and gradient equal the untiled ones, and a budget too small is
refused before any work (docs/print-size.md)."""

from __future__ import annotations

import numpy as np
import pytest
from engine_support import scale_terms

from styled import render
from styled.engine import memory, objective
from styled.engine.job import load_job, relative_to
from styled.engine.spec import build_job_spec
from styled.engine.types import LossTerm, RenderOptions, Tiling, Window
from styled.errors import MemoryBudgetError
from styled.nets.vgg import FeatureExtractor
from styled.nets.weights import load_backbone

#: Layers no deeper than relu3_1 need a 12-pixel halo, so 96 px images hold interior tiles.
SHALLOW = {"content_layers": ["relu3_1"], "style_layers": ["relu1_1", "relu2_1", "relu3_1"]}


def test_window_cores_partition_the_image_and_start_on_the_alignment():
    shape, core, halo = (100, 70), 32, 12
    covered = np.zeros(shape, int)
    for window in Window.grid(shape, core, halo):
        top, left, height, width = window.core
        assert (window.top + top) % core == 0 and (window.left + left) % core == 0
        assert top <= halo and left <= halo  # context only where the image has it
        covered[window.top + top:window.top + top + height, window.left + left:window.left + left + width] += 1
    assert (covered == 1).all()
    assert Window.grid(shape, 128, halo) == (Window.whole(shape),)


def test_the_largest_tile_goes_last_where_its_forward_pass_is_made_once():
    windows = Window.grid((2048, 2048), 912, 80)  # cores of 912, 912 and 224 px a side
    ordered = objective._largest_last(windows)
    assert len(ordered) == len(set(ordered)) == 9 and set(ordered) == set(windows)
    assert ordered[-1] == windows[4]  # the middle tile: 1072 x 1072 px
    assert ordered[-1].shape == (1072, 1072) and ordered[:4] == windows[:4]


def test_the_halo_is_the_deepest_layers_receptive_radius_rounded_to_its_stride():
    assert memory.halo_and_alignment(["relu4_2", "relu5_1"]) == (80, 16)  # 70 px rounded up to 16
    assert memory.halo_and_alignment(["relu1_1", "relu3_1"]) == (12, 4)  # 10 px rounded up to 4
    assert memory.halo_and_alignment([]) == (1, 1)


@pytest.mark.parametrize("keep", [False, True], ids=["second forward pass", "kept activations"])
@pytest.mark.parametrize(("size", "tile", "spec"), [(96, 32, SHALLOW), (176, 48, {})],
                         ids=["relu3_1 deepest, 3x3 tiles", "defaults to relu5_1, 80 px halo"])
def test_tiled_loss_and_gradient_equal_the_untiled_ones(tiny_images, tmp_path, size, tile, spec, keep):
    extractor, whole_terms, scale_job = scale_terms(tiny_images, tmp_path, size, None, 0, tv_weight=5.0, **spec)
    halo, _ = memory.halo_and_alignment(objective.layers_of(whole_terms))
    _, tiled_terms, tiled_job = scale_terms(tiny_images, tmp_path, size, tile, halo, tv_weight=5.0, **spec)
    windows = tiled_job.windows(scale_job.shape)
    assert len(windows) >= 4
    image = np.random.default_rng(1).uniform(0, 1, (*scale_job.shape, 3)).astype(np.float32)
    seen = []
    whole = objective.compile_loss(extractor, whole_terms, scale_job.shape, xla_min_pixels=10**9)(image)
    tiled_loss = objective.TiledLoss(extractor, tiled_terms, windows, on_tile=lambda done, total: seen.append(done),
                                     keep=keep)
    assert tiled_loss.keeps == keep
    tiled = tiled_loss(image)
    assert seen == list(range(1, 2 * len(windows)))
    assert tiled[0] == pytest.approx(whole[0], rel=1e-5)
    assert tiled[1] == pytest.approx(whole[1], rel=1e-4)
    # float32 sums in another order: within 1e-4 of the gradient's largest component
    np.testing.assert_allclose(tiled[2], whole[2], rtol=0, atol=1e-4 * np.abs(whole[2]).max())


def test_one_window_is_one_pass_that_takes_the_sums_and_the_gradient_at_once(tiny_images, tmp_path):
    extractor, terms, scale_job = scale_terms(tiny_images, tmp_path, 64, 32, 12, **SHALLOW)
    image = np.random.default_rng(1).uniform(0, 1, (*scale_job.shape, 3)).astype(np.float32)
    whole = objective.compile_loss(extractor, terms, scale_job.shape, xla_min_pixels=10**9)(image)
    seen = []
    tiled = objective.TiledLoss(extractor, terms, (Window.whole(scale_job.shape),),
                                on_tile=lambda done, total: seen.append((done, total)))(image)
    assert seen == [(1, 1)]
    assert tiled[0] == pytest.approx(whole[0], rel=1e-5)
    np.testing.assert_allclose(tiled[2], whole[2], rtol=0, atol=1e-4 * np.abs(whole[2]).max())


def test_long_range_tiles_exactly_with_a_halo_widened_by_its_reach(tiny_images, tmp_path):
    spec = {**SHALLOW, "plugins": {"long_range": {"layers": {"relu2_1": [3], "relu3_1": [2, 5]}}}}
    extractor, whole_terms, scale_job = scale_terms(tiny_images, tmp_path, 96, None, 0, **spec)
    layers, reach = objective.layers_of(whole_terms), objective.reach_of(whole_terms)
    assert reach == 5 * 4  # five relu3_1 positions of 4 pixels
    halo, _ = memory.halo_and_alignment(layers, reach)
    assert halo == 32  # relu3_1's 10-pixel radius + 20, rounded up to its stride
    _, tiled_terms, tiled_job = scale_terms(tiny_images, tmp_path, 96, 32, halo, **spec)
    windows = tiled_job.windows(scale_job.shape)
    assert len(windows) == 9 and "long_range" in [term.name for term in tiled_terms]
    image = np.random.default_rng(4).uniform(0, 1, (*scale_job.shape, 3)).astype(np.float32)
    whole = objective.compile_loss(extractor, whole_terms, scale_job.shape, xla_min_pixels=10**9)(image)
    for keep in (False, True):
        tiled = objective.TiledLoss(extractor, tiled_terms, windows, keep=keep)(image)
        assert tiled[1]["long_range"] == pytest.approx(whole[1]["long_range"], rel=1e-5)
        assert tiled[0] == pytest.approx(whole[0], rel=1e-5)
        np.testing.assert_allclose(tiled[2], whole[2], rtol=0, atol=1e-4 * np.abs(whole[2]).max())


def test_a_tiled_render_with_long_range_is_planned_with_its_reach(tiny_images, tmp_path):
    result = _render(tiny_images, tmp_path, tile_size=32, iterations=2,
                     plugins={"long_range": {"layers": {"relu3_1": [2, 5]}}})
    assert result.memory[0]["tiles"] == 9 and result.memory[0]["halo"] == 32
    assert result.losses["long_range"] > 0


def test_every_scale_is_planned_with_the_reach_plugins_announce_before_the_first_iteration(tiny_images, tmp_path):
    """The plans made before the first iteration (which refuse a job that cannot fit) already count
    long_range's reach at every scale: a render stopped in its first iteration still reports the
    second scale's plan as first made, with the reach of the shifts at that scale."""
    from styled.engine.types import RenderOptions

    data = {"content": str(tiny_images["content"]), "style": str(tiny_images["style"]), "size": 96, "scales": 2,
            "scale_start": 48, "iterations": 4, "seed": 3, "precision": "float32", "tile_size": 32, **SHALLOW,
            "plugins": {"long_range": {"layers": {"relu3_1": [2, 5]}}}}
    stopped = render(load_job(build_job_spec(data), relative_to(tmp_path)),
                     options=RenderOptions(should_stop=lambda: True))
    assert stopped.interrupted
    coarse, final = stopped.memory
    assert final["halo"] == memory.halo_and_alignment(["relu3_1"], 5 * 4)[0] == 32, \
        "the final scale's shifts (5 positions of 4 pixels) widen its first plan's halo"
    assert coarse["halo"] == memory.halo_and_alignment(["relu3_1"], 2 * 4)[0] < final["halo"], \
        "at 48 px the shifts shrink to 1 and 2 positions"
    plain = render(load_job(build_job_spec({**data, "plugins": {}}), relative_to(tmp_path)),
                   options=RenderOptions(should_stop=lambda: True))
    assert plain.memory[1]["halo"] == memory.halo_and_alignment(["relu3_1"])[0] < final["halo"]


def test_a_term_that_cannot_tile_is_refused_by_name_in_a_tiled_job():
    whole_only = LossTerm("mirror", 1.0, lambda image, features: image[0, 0, 0, 0])
    tiled = LossTerm.tiled("fine", 1.0, Tiling(lambda image, features, window, goal: (image[0, 0, 0, 0],),
                                                 lambda sums: sums[0]))
    with pytest.raises(MemoryBudgetError, match="mirror"):
        objective.TiledLoss(None, [tiled, whole_only], Window.grid((64, 64), 32, 1))


def _render(tiny_images, tmp_path, options=None, **spec):
    data = {"content": str(tiny_images["content"]), "style": str(tiny_images["style"]), "size": 96, "scales": 1,
            "iterations": 6, "seed": 3, "precision": "float32", **SHALLOW, **spec}
    return render(load_job(build_job_spec(data), relative_to(tmp_path)), options=options)


def test_a_tiled_render_gives_the_untiled_picture(tiny_images, tmp_path):
    whole = _render(tiny_images, tmp_path)
    tiled = _render(tiny_images, tmp_path, tile_size=32)
    assert whole.memory[0]["tiles"] == 1 and tiled.memory[0]["tiles"] == 9 and tiled.memory[0]["keep"]
    assert np.abs(tiled.image - whole.image).max() < 1 / 255
    assert tiled.losses["total"] == pytest.approx(whole.losses["total"], rel=1e-3)


def test_a_budget_too_small_is_refused_before_any_work(tiny_images, tmp_path):
    with pytest.raises(MemoryBudgetError) as caught:
        _render(tiny_images, tmp_path, size=8192, max_memory="2GB")
    message = str(caught.value) + " " + caught.value.hint
    assert "needs about" in message and "max_memory allows 2.0 GB" in message and "raise max_memory to" in message


GB = 10**9


def _plan(budget, size=4096, history=20, tile_size=None):
    return memory.plan_scale(size=size, shape=(size, size), layers=("relu1_1", "relu4_2", "relu5_1"),
                             content_layers=("relu4_2",), style_pixels=size * size, precision="float32",
                             optimizer="lbfgs", history=history, budget=budget, tile_size=tile_size)


def test_the_plan_weighs_pairs_down_to_ten_against_tiles_then_drops_more_then_takes_adam(monkeypatch):
    roomy, tiled, fewer, adam = _plan(200 * GB), _plan(32 * GB), _plan(8 * GB), _plan(4 * GB)
    assert (roomy.tile, roomy.history) == (None, 20)
    assert tiled.tiles == 2 and tiled.history == 20 and tiled.estimate <= 32 * GB  # 10 pairs would save no tile
    traded = _plan(16 * GB)  # 10 pairs cost less time than the tiles that 20 would need
    assert traded.history == memory.PAIRS_BEFORE_TILES == 10 and "10 L-BFGS pairs to fit" in traded.reason
    monkeypatch.setattr(memory, "PAIRS_BEFORE_TILES", 20)
    assert _plan(16 * GB).history == 20 and _plan(16 * GB).tiles > traded.tiles
    assert fewer.optimizer == "lbfgs" and fewer.history < 10 and "pairs to fit" in fewer.reason
    assert adam.optimizer == "adam" and "Adam" in adam.reason
    for plan in (tiled, traded, fewer, adam):  # cores on the 16-pixel grid, and no tiny tiles
        assert all(side % 16 == 0 and side >= 4 * 80 for side in plan.tile)
    widest = _plan(10 * GB, size=8192)  # the content targets wait in files; Adam holds two image copies
    assert widest.optimizer == "adam" and widest.estimate <= 10 * GB and widest.tiles <= 144
    forced = _plan(200 * GB, size=512, tile_size=100)
    assert forced.tile == (112, 112) and forced.tiles == 25  # rounded up to the 16-pixel alignment


def test_the_plan_takes_the_grid_that_computes_least_not_the_widest_square():
    # 5 GB at 2048 x 2048 with 10 pairs: squares of 688 px (3 x 3 tiles) fit, but 3 rows of 2 tiles
    # (cores 688 x 1024) fit too, compute 7 % fewer pixels and make fewer passes
    plan = _plan(5 * GB, size=2048, history=10)
    assert plan.tile == (688, 1024) and plan.tiles == 6 and plan.estimate <= 5 * GB
    windows = Window.grid((2048, 2048), plan.tile, plan.halo)
    assert len(windows) == 6 and max(window.shape for window in windows) == (848, 1104)


def test_the_plan_keeps_activations_between_passes_where_they_fit_and_counts_them():
    def plan(budget, precision="bfloat16", can_keep=True):
        return memory.plan_scale(size=2048, shape=(2048, 2048), layers=("relu1_1", "relu4_2", "relu5_1"),
                                 content_layers=("relu4_2",), style_pixels=2048 * 2048, precision=precision,
                                 optimizer="lbfgs", history=20, budget=budget, tile_size=None, can_keep=can_keep)

    tight, roomy = plan(6 * GB), plan(9 * GB)
    assert tight.tiles > 1 and not tight.keep
    assert roomy.keep and "kept" in roomy.reason and roomy.estimate <= 9 * GB
    kept = memory.kept_bytes((2048, 2048), roomy.tile, roomy.halo, ("relu1_1", "relu4_2", "relu5_1"), "bfloat16")
    assert kept > 1.5 * GB  # every tile's ReLU outputs up to relu5_1: 290 bfloat16 values a pixel, halos included
    assert roomy.estimate >= kept + memory.BASELINE_BYTES
    assert not plan(9 * GB, can_keep=False).keep  # max pooling cannot go back through kept outputs
    # the planner weighs the second forward pass: keeping with more tiles beats fewer tiles without
    assert plan(12 * GB, precision="float32").keep


def test_what_earlier_scales_left_with_tensorflow_counts_and_later_scales_cap_a_scales_passes():
    # TensorFlow keeps what a scale's passes took; the step's arrays cannot use it
    plain = _plan(200 * GB, size=1024)
    assert plain.tile is None and plain.held == 0 and plain.rest == plain.estimate - plain.network
    held = plain.network + GB
    carrying = memory.plan_scale(size=1024, shape=(1024, 1024), layers=("relu1_1", "relu4_2", "relu5_1"),
                                 content_layers=("relu4_2",), style_pixels=1024 * 1024, precision="float32",
                                 optimizer="lbfgs", history=20, budget=200 * GB, tile_size=None, held=held)
    assert carrying.held == held and carrying.estimate == plain.estimate + GB and carrying.rest == plain.rest
    # a budget the scale fits alone, but not beside what an earlier scale left: fewer pairs or tiles
    tight = memory.plan_scale(size=1024, shape=(1024, 1024), layers=("relu1_1", "relu4_2", "relu5_1"),
                              content_layers=("relu4_2",), style_pixels=1024 * 1024, precision="float32",
                              optimizer="lbfgs", history=20, budget=plain.estimate, tile_size=None,
                              held=plain.network + 200 * 10**6)
    assert tight.history < 20 and tight.estimate <= plain.estimate
    # a later scale that needs most of the budget makes this one tile although it would fit whole
    capped = memory.plan_scale(size=1024, shape=(1024, 1024), layers=("relu1_1", "relu4_2", "relu5_1"),
                               content_layers=("relu4_2",), style_pixels=1024 * 1024, precision="float32",
                               optimizer="lbfgs", history=20, budget=200 * GB, tile_size=None,
                               network_cap=plain.network // 2)
    assert capped.tile is not None and capped.network <= plain.network // 2 and capped.history == 20


def test_a_renders_scales_plan_with_what_the_earlier_ones_left_and_leave_room_for_the_later(tiny_images, tmp_path):
    result = _render(tiny_images, tmp_path, scales=3, iterations=2)
    plans = result.memory
    for index, plan in enumerate(plans):
        assert plan["held"] == max((earlier["network"] for earlier in plans[:index]), default=0)
        assert plan["estimate"] <= plan["budget"]
        for later in plans[index + 1:]:
            assert plan["network"] + later["estimate"] - max(later["network"], later["held"]) <= plan["budget"]


def test_what_earlier_renders_in_the_process_left_is_planned_for_and_never_refuses_a_job(tiny_images, tmp_path,
                                                                                         caplog):
    alone = _render(tiny_images, tmp_path, scales=2, iterations=2)
    held = memory.largest_network(alone.memory) + GB
    assert held - GB == max(plan["network"] for plan in alone.memory) > 0
    after = _render(tiny_images, tmp_path, scales=2, iterations=2, options=RenderOptions(held_memory=held))
    for plan, fresh in zip(after.memory, alone.memory):
        assert plan["held"] == held and plan["estimate"] == fresh["estimate"] - fresh["network"] + held
    # a budget the job fits in a fresh process, but not beside that: planned as if fresh, with a warning
    budget = max(plan["estimate"] for plan in alone.memory)
    after = _render(tiny_images, tmp_path, scales=2, iterations=2, max_memory=budget,
                    options=RenderOptions(held_memory=held))
    assert [plan["held"] for plan in after.memory] == [plan["held"] for plan in alone.memory]
    assert "earlier renders left with TensorFlow" in caplog.text and "restart the daemon" in caplog.text


def _brightness_term(target: float) -> LossTerm:
    """docs/plugins.md's example of a term that tiles: (mean pixel - target)², the mean a sum over positions."""
    import tensorflow as tf

    def partial(image, features, window, goal):
        core = window.core_of(image)
        return tf.reduce_sum(core), tf.cast(tf.size(core), tf.float32)

    return LossTerm.tiled("brightness", 10.0, Tiling(partial, lambda sums: tf.square(sums[0] / sums[1] - target)))


def test_a_plugin_term_that_says_how_it_tiles_gives_the_untiled_value_and_gradient():
    import tensorflow as tf

    extractor = FeatureExtractor(load_backbone("vgg19"), "avg", tf.float32)
    image = np.random.default_rng(2).uniform(0, 1, (40, 56, 3)).astype(np.float32)
    terms = [_brightness_term(0.8)]
    whole = objective.compile_loss(extractor, terms, image.shape[:2], xla_min_pixels=10**9)(image)
    tiled = objective.TiledLoss(extractor, terms, Window.grid(image.shape[:2], 16, 1))(image)
    assert whole[0] == pytest.approx((image.mean() - 0.8) ** 2 * 10.0, rel=1e-5)
    assert tiled[0] == pytest.approx(whole[0], rel=1e-6)
    np.testing.assert_allclose(tiled[2], whole[2], rtol=1e-5, atol=1e-9)


def test_a_first_party_term_without_tiling_refuses_a_tiled_render_by_name(tiny_images, tmp_path):
    with pytest.raises(MemoryBudgetError, match="symmetry") as caught:
        _render(tiny_images, tmp_path, tile_size=32, plugins={"symmetry": {"mode": "statistics"}})
    assert "raise max_memory" in caught.value.hint


def test_adain_tiled_gives_the_untiled_pixels():
    from styled.engine import adain

    network = adain.load_network("float32")
    rng = np.random.default_rng(4)
    content = rng.uniform(0, 1, (120, 104, 3)).astype(np.float32)  # not a multiple of the 32 px tiles
    style = rng.uniform(0, 1, (72, 88, 3)).astype(np.float32)
    whole = network.stylize(content, [style], [1.0], 0.8)
    tiled = network.stylize(content, [style], [1.0], 0.8, tile=32)
    assert tiled.shape == whole.shape == content.shape
    assert np.abs(tiled - whole).max() < 1e-4


def test_adain_tiles_only_when_the_budget_needs_it():
    from styled.engine import adain

    assert adain.adain_tile((512, 512), 16 * GB) is None
    tile = adain.adain_tile((4096, 4096), 6 * GB)
    assert tile is not None and tile % 8 == 0 and tile >= 1024
    assert adain.adain_tile((512, 512), 16 * GB, tile_size=100) == 104
    with pytest.raises(MemoryBudgetError, match="AdaIN at 8192x8192"):
        adain.adain_tile((8192, 8192), 2 * GB)


def test_a_tiled_render_reports_progress_by_tile_with_a_growing_fraction(tiny_images, tmp_path):
    from styled.engine.types import RenderOptions

    events = []
    data = {"content": str(tiny_images["content"]), "style": str(tiny_images["style"]), "size": 96, "scales": 1,
            "iterations": 3, "precision": "float32", "tile_size": 32, **SHALLOW}
    render(load_job(build_job_spec(data), relative_to(tmp_path)), options=RenderOptions(on_progress=events.append))
    tiled = [event for event in events if event.tiles]
    assert {event.tiles for event in tiled} == {17}  # two passes over 3 x 3 tiles, the last tile's at once
    fractions = [event.fraction for event in events]
    assert fractions == sorted(fractions) and fractions[-1] == 3
    assert any(event.eta is not None for event in tiled if event.iteration == 0)  # an ETA before the first iteration ends


class _Cut(Exception):
    """Raised from on_tile to cut an evaluation short, as a stop or a kill would."""


def _record_cut_after(passes, extractor, terms, windows, image):
    """The record of an evaluation of ``image`` cut after ``passes`` tile passes."""

    def cut(done, total):
        if done == passes:
            raise _Cut

    interrupted = objective.TiledLoss(extractor, terms, windows, on_tile=cut)
    with pytest.raises(_Cut):
        interrupted(image)
    return interrupted.progress()


@pytest.mark.parametrize("keep", [False, True], ids=["second forward pass", "kept activations"])
@pytest.mark.parametrize("stop_after", [4, 13], ids=["within the first pass", "within the second pass"])
def test_an_evaluation_resumed_from_its_record_gives_the_same_loss_and_gradient(tiny_images, tmp_path, stop_after,
                                                                                keep):
    extractor, terms, scale_job = scale_terms(tiny_images, tmp_path, 96, 32, 12, **SHALLOW)
    windows = scale_job.windows(scale_job.shape)
    image = np.random.default_rng(2).uniform(0, 1, (*scale_job.shape, 3)).astype(np.float32)
    whole = objective.TiledLoss(extractor, terms, windows)(image)
    record = _record_cut_after(stop_after, extractor, terms, windows, image)
    assert record.done == stop_after and (record.gradient is None) == (stop_after < len(windows))
    seen = []
    resumed = objective.TiledLoss(extractor, terms, windows, on_tile=lambda done, total: seen.append(done),
                                  resume=record, keep=keep)(image)
    assert seen == list(range(stop_after + 1, 2 * len(windows)))  # only the tile passes not done before
    assert resumed[0] == whole[0] and resumed[1] == whole[1]
    if keep:  # tiles whose first pass was before the record go back by a second forward pass, the others not
        np.testing.assert_allclose(resumed[2], whole[2], rtol=0, atol=1e-5 * np.abs(whole[2]).max())
    else:
        np.testing.assert_array_equal(resumed[2], whole[2])


def test_a_record_of_another_image_or_other_tiles_is_ignored(tiny_images, tmp_path):
    extractor, terms, scale_job = scale_terms(tiny_images, tmp_path, 96, 32, 12, **SHALLOW)
    windows = scale_job.windows(scale_job.shape)
    image = np.random.default_rng(2).uniform(0, 1, (*scale_job.shape, 3)).astype(np.float32)
    other_image = np.random.default_rng(3).uniform(0, 1, (*scale_job.shape, 3)).astype(np.float32)
    record = _record_cut_after(5, extractor, terms, windows, image)
    fresh = objective.TiledLoss(extractor, terms, windows)(other_image)
    assert objective.TiledLoss(extractor, terms, windows, resume=record)(other_image)[0] == fresh[0]
    other_tiles = Window.grid(scale_job.shape, 48, 12)
    assert objective.evaluation_key(image, other_tiles) != record.key
    passes = []
    objective.TiledLoss(extractor, terms, other_tiles, on_tile=lambda done, total: passes.append(done),
                        resume=record)(image)
    assert passes[0] == 1  # started from the first tile


def test_tile_targets_wait_in_files_that_go_when_the_scale_ends(tiny_images, tmp_path):
    extractor, terms, scale_job = scale_terms(tiny_images, tmp_path, 96, 32, 12, **SHALLOW)
    windows = scale_job.windows(scale_job.shape)
    loss = objective.TiledLoss(extractor, terms, windows, scratch=tmp_path)
    [folder] = tmp_path.glob("styled-targets-*")
    assert len(list(folder.iterdir())) == len(windows)  # the content term's targets, one file per tile
    content = terms[[term.name for term in terms].index("content")]
    expected = content.tiling.targets(loss._windows[4])
    for saved, computed in zip(loss._targets[4][[term.name for term in terms].index("content")], expected):
        np.testing.assert_array_equal(saved.numpy(), computed.numpy())
    loss.close()
    assert not folder.exists()


def test_a_render_stopped_between_tiles_resumes_from_its_checkpoint_file_to_the_same_picture(tiny_images, tmp_path):
    from styled.engine.types import Checkpoint, RenderOptions

    data = {"content": str(tiny_images["content"]), "style": str(tiny_images["style"]), "size": 96, "scales": 1,
            "iterations": 4, "seed": 3, "precision": "float32", "tile_size": 32, **SHALLOW}
    job = load_job(build_job_spec(data), relative_to(tmp_path))
    straight = render(job)
    tiles_seen = []

    def stop_in_the_third_iteration() -> bool:
        return len(tiles_seen) >= 2 * 17 + 11  # two iterations of 17 tile passes (9 tiles), then 11 more

    stopped = render(job, options=RenderOptions(on_progress=lambda p: p.tiles and tiles_seen.append(p.tile),
                                                should_stop=stop_in_the_third_iteration))
    assert stopped.interrupted and stopped.checkpoint.evaluation.done == 11
    path = tmp_path / "checkpoint.npz"
    stopped.checkpoint.save(path)
    saved = Checkpoint.load(path)
    assert saved.evaluation.done == 11 and saved.evaluation.gradient is not None
    resumed_tiles = []
    resumed = render(job, options=RenderOptions(resume=saved, on_progress=lambda p: p.tiles and resumed_tiles.append(
        (p.iteration, p.tile))))
    assert resumed_tiles[0] == (2, 12)  # the third iteration picks up at its twelfth tile pass
    # ... and finishes the evaluation the stop cut short with the value it would have had; the
    # optimiser then starts afresh (its curvature pairs are not checkpointed), as after any resume
    assert [entry["iteration"] for entry in resumed.history] == [0, 1, 2, 3]
    def losses(entry):
        return {key: value for key, value in entry.items() if key != "seconds"}

    assert losses(resumed.history[2]) == losses(straight.history[2])


def test_auto_takes_a_share_of_the_free_host_memory():
    import os

    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    budget = memory.auto_budget()
    assert 0 < budget <= memory.AUTO_SHARE * total
    assert memory.auto_budget(share=0.5) == pytest.approx(budget / 2, rel=0.1)  # a daemon worker's part


FAKE_NVIDIA_SMI = """#!/bin/sh
# answers like nvidia-smi --query-gpu=memory.free --format=csv,noheader,nounits -i N
case "$*" in
  *"--query-gpu=memory.free --format=csv,noheader,nounits -i 1") echo 8000 ;;
  *) echo "unexpected arguments: $*" >&2; exit 6 ;;
esac
"""


def test_auto_on_a_gpu_takes_a_share_of_what_nvidia_smi_says_is_free(tmp_path, monkeypatch, caplog):
    from styled.nets.devices import Device

    tool = tmp_path / "nvidia-smi"
    tool.write_text(FAKE_NVIDIA_SMI)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")  # TensorFlow's gpu:1 is the card nvidia-smi calls 1
    assert Device("gpu:1", "/GPU:1").gpu_index == 1 and Device("cpu", "/CPU:0").gpu_index is None
    assert memory.gpu_free_bytes(1) == 8000 * 2**20
    assert memory.auto_budget(gpu=1) == int(memory.AUTO_SHARE * 8000 * 2**20)
    assert memory.gpu_free_bytes(0) is None  # nvidia-smi failed for card 3
    assert memory.gpu_free_bytes(2) is None  # not a visible device
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with caplog.at_level("WARNING"):
        assert memory.auto_budget(gpu=1) == pytest.approx(memory.auto_budget(), rel=0.1)  # the host's
    assert "set max_memory" in caplog.text
