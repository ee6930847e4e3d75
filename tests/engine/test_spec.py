"""Job spec validation: defaults, every rule, YAML lines, nearest-key suggestions, overrides."""

from __future__ import annotations

import pytest

from styled.engine.spec import JobSpec, auto_scale_count, build_job_spec, load_job_file
from styled.errors import JobSpecError
from styled.nets.layers import STYLE_LAYERS as DEFAULT_STYLE_LAYERS
from styled.settings.sources import apply_overrides, merge_defaults, parse_yaml


def spec(**keys) -> JobSpec:
    return build_job_spec({"content": "photo.jpg", "style": "painting.jpg", **keys})


def test_defaults_and_single_style_string():
    job = spec()
    assert job.style == ("painting.jpg",)
    assert job.style_layers == DEFAULT_STYLE_LAYERS
    assert job.content_layers == ("relu4_2",)
    assert job.optimizer == "lbfgs" and job.pooling == "avg"


def test_unknown_key_suggests_the_nearest():
    with pytest.raises(JobSpecError) as caught:
        spec(style_wieght=10)
    assert caught.value.key == "style_wieght"
    assert "did you mean 'style_weight'" in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("size", 0, "at least 16"),
        ("size", "big", "whole number"),
        ("iterations", -1, "at least 0"),
        ("style_weight", -5, "at least 0"),
        ("optimizer", "sgd", "lbfgs, adam"),
        ("pooling", "mean", "avg, max"),
        ("init", "photo", "content, noise, style, adain"),
        ("precision", "fp8", "float32"),
        ("device", "tpu", "auto, cpu, gpu or gpu:N"),
        ("style_layers", ["relu9_9"], "not a VGG layer"),
        ("content_layers", ["relu4_20"], "did you mean 'relu4_2'"),
        ("preserve_colors", "yes", "true or false"),
        ("alpha", 1.5, "at most 1.0"),
        ("time_limit", 0, "greater than 0"),
        ("bit_depth", 12, "8 or 16"),
        ("plugins", ["symmetry"], "map plugin names"),
    ],
)
def test_bad_values_name_key_and_allowed_values(key, value, expected):
    with pytest.raises(JobSpecError) as caught:
        spec(**{key: value})
    assert caught.value.key == key
    assert expected in str(caught.value)


def test_style_blend_must_match_styles():
    with pytest.raises(JobSpecError, match="2 weights for 1 style images"):
        spec(style_blend=[1, 2])
    blended = spec(style=["a.jpg", "b.jpg"], style_blend=[3, 1])
    assert blended.blend_weights() == (0.75, 0.25)


def test_a_job_needs_a_style_and_adain_needs_content():
    with pytest.raises(JobSpecError, match="at least one style"):
        build_job_spec({"content": "photo.jpg"})
    with pytest.raises(JobSpecError, match="needs a content image"):
        build_job_spec({"style": "painting.jpg", "method": "adain"})


def test_weighted_style_layers_mapping():
    job = spec(style_layers={"relu1_1": 2.0, "relu3_1": 0.5})
    assert job.style_layers == (("relu1_1", 2.0), ("relu3_1", 0.5))


def test_scale_sizes_run_coarse_to_fine():
    assert spec(size=512).scale_sizes() == (128, 256, 512)
    assert spec(size=512, scales=1).scale_sizes() == (512,)
    assert spec(size=100).scale_sizes() == (100,)
    assert auto_scale_count(1024, 128) == 4


def test_yaml_errors_carry_line_and_column(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("content: a.jpg\nstyle: [b.jpg\nsize: 3\n")
    with pytest.raises(JobSpecError) as caught:
        load_job_file(path)
    assert caught.value.line is not None and "column" in caught.value.message
    assert str(path) in str(caught.value)


def test_bad_key_reports_its_yaml_line(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("content: a.jpg\nstyle: b.jpg\n\nsize: -3\n")
    data, lines = load_job_file(path)
    with pytest.raises(JobSpecError) as caught:
        build_job_spec(data, source=str(path), lines=lines)
    assert caught.value.line == 4
    assert "line 4" in str(caught.value) and "key 'size'" in str(caught.value)


def test_nested_keys_get_lines():
    _, lines = parse_yaml("style: a.jpg\nplugins:\n  symmetry:\n    mirror: both\n")
    assert lines["plugins.symmetry.mirror"] == 4


def test_spec_over_size_limit_is_refused(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("style: a.jpg\n" + "# padding\n" * 100)
    with pytest.raises(JobSpecError, match="over the limit of 50"):
        load_job_file(path, max_bytes=50)


def test_overrides_parse_yaml_scalars_and_dotted_keys():
    data = apply_overrides({"style": "a.jpg"}, ["size=64", "preserve_colors=true",
                                                 "plugins.symmetry.mirror=left-right", "seed=7"])
    assert data["size"] == 64 and data["preserve_colors"] is True and data["seed"] == 7
    assert data["plugins"] == {"symmetry": {"mirror": "left-right"}}
    with pytest.raises(JobSpecError, match="not KEY=VALUE"):
        apply_overrides({}, ["size"])


def test_defaults_merge_under_the_job_and_plugins_merge_deeper():
    merged = merge_defaults({"size": 256, "plugins": {"a": {"x": 1}}}, {"size": 64, "plugins": {"b": {}}})
    assert merged == {"size": 64, "plugins": {"a": {"x": 1}, "b": {}}}


def test_to_dict_round_trips_through_build():
    job = spec(style_layers={"relu1_1": 2.0}, plugins={"symmetry": {"mirror": "both"}})
    again = build_job_spec(job.to_dict())
    assert again == job


@pytest.mark.parametrize("convergence", [0, 0.01])
def test_scales_above_1024_px_plan_iterations_in_proportion_to_their_pixels(convergence):
    def schedule(**keys):
        spec = build_job_spec({"style": ["s.jpg"], "convergence": convergence, **keys})
        return dict(zip(spec.scale_sizes(), spec.scale_iterations()))

    assert schedule(size=1024) == {128: 300, 256: 300, 512: 300, 1024: 300}
    assert schedule(size=4096) == {128: 300, 256: 300, 512: 300, 1024: 300, 2048: 75, 4096: 19}
    assert schedule(size=8192, iterations=100, coarse_iterations=40)[8192] == 10  # never below 10
    assert schedule(size=2048, iterations=8)[2048] == 8  # nor above what the job asked for
    assert schedule(size=4096, coarse_iterations=50)[1024] == 50
