"""The plugin manager: load order, plugins folder, entry points, option checks, `styled plugins`, and
the custom-loss example of docs/plugins.md end to end through `styled render`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_image, tiny_copy
from PIL import Image as PILImage

from styled import cli
from styled.engine.job import relative_to
from styled.engine.spec import build_job_spec
from styled.errors import PluginError
from styled.plugins import (
    Option,
    PluginSchema,
    make_plugin_manager,
    one_of,
    validate_job_plugins,
)
from styled.plugins.manager import (
    BUILT_IN,
    DEFAULT_PLUGINS,
    FIRST_PARTY_PLUGINS,
    describe_plugins,
)
from styled.settings.sources import parse_yaml

FIXTURES = Path(__file__).resolve().parents[1] / "plugin_fixtures"


@pytest.fixture(scope="module")
def pm():
    return make_plugin_manager()


def spec_from(text: str):
    data, lines = parse_yaml(text, "job.yaml")
    return build_job_spec(data, source="job.yaml", lines=lines), lines


def check(pm, text: str, base: Path | None = None):
    spec, lines = spec_from(text)
    return validate_job_plugins(pm, spec, relative_to(base or Path.cwd()), lines=lines, source="job.yaml")


# --- loading ------------------------------------------------------------------------------------


def test_load_order_is_built_ins_first_party_plugins_dir_then_entry_points(tmp_path, monkeypatch):
    site = make_distribution(tmp_path / "site", "styled-shout", "shout")
    monkeypatch.syspath_prepend(str(site))
    try:
        pm = make_plugin_manager(FIXTURES / "good")
        names = [name for name, _ in pm.list_name_plugin()]
        assert names == [*DEFAULT_PLUGINS, *FIRST_PARTY_PLUGINS, "brighten", "shout"]
        origins = {info.name: info.origin for info in describe_plugins(pm)}
        assert origins["gatys"] == f"{BUILT_IN}: styled.plugins.builtin.gatys"
        assert origins["symmetry"] == "first-party: styled.plugins.builtin.symmetry"
        assert origins["brighten"].startswith("plugins dir: ") and origins["brighten"].endswith("brighten.py")
        assert origins["shout"] == "entry point: styled-shout 0.1"
    finally:
        sys.modules.pop("styled_shout", None)


def make_distribution(site: Path, dist: str, name: str) -> Path:
    """An installed distribution on ``site``: a module and a .dist-info with an entry point in group styled."""
    module = dist.replace("-", "_")
    info = site / f"{module}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[styled]\n{name} = {module}\n")
    (site / f"{module}.py").write_text(
        "from styled import hookimpl\n"
        "from styled.plugins import Option, PluginSchema, one_of\n\n"
        "@hookimpl\n"
        "def plugin_schema():\n"
        f"    return PluginSchema('{name}', (Option('volume', 'loud', 'how loud', one_of('loud', 'quiet')),))\n\n"
        "@hookimpl\n"
        "def finalize_image(job, image):\n"
        f"    if job.plugin_options('{name}') is not None:\n"
        "        return image * 0.0 + 1.0\n"
    )
    return site


def test_an_entry_point_plugin_is_loaded_validated_and_runs(tmp_path, monkeypatch, tiny_images):
    from styled import render
    from styled.engine.job import load_job

    monkeypatch.syspath_prepend(str(make_distribution(tmp_path / "site", "styled-shout", "shout")))
    try:
        pm = make_plugin_manager()
        with pytest.raises(PluginError, match="must be one of loud, quiet, got 'mute'"):
            check(pm, "style: a.jpg\nplugins:\n  shout: {volume: mute}\n")
        spec = build_job_spec({"content": str(tiny_images["content"]), "style": str(tiny_images["style"]),
                               "size": 32, "iterations": 1, "scales": 1, "plugins": {"shout": {}}})
        result = render(load_job(spec, relative_to(Path.cwd())), pm)
        assert np.all(result.image == 1.0)  # its finalize_image ran
    finally:
        sys.modules.pop("styled_shout", None)


def test_a_plugin_with_a_misspelt_hook_fails_loudly():
    with pytest.raises(PluginError, match="register_loses") as caught:
        make_plugin_manager(FIXTURES / "misspelt")
    assert caught.value.where.endswith("misspelt.py")
    assert "register_losses" in caught.value.hint


def test_a_hook_with_an_argument_the_spec_lacks_names_the_file(tmp_path):
    (tmp_path / "odd.py").write_text("from styled import hookimpl\n\n@hookimpl\ndef register_losses(jobb):\n"
                                     "    return []\n")
    with pytest.raises(PluginError, match="jobb") as caught:
        make_plugin_manager(tmp_path)
    assert caught.value.where.endswith("odd.py")


def test_a_plugin_file_that_fails_to_import_names_the_file():
    with pytest.raises(PluginError, match="failed to load: ModuleNotFoundError") as caught:
        make_plugin_manager(FIXTURES / "broken")
    assert caught.value.where.endswith("broken.py")


def test_two_plugins_with_one_name_are_refused(tmp_path):
    (tmp_path / "symmetry.py").write_text("")
    with pytest.raises(PluginError, match="two plugins are called 'symmetry'") as caught:
        make_plugin_manager(tmp_path)
    assert "styled.plugins.builtin.symmetry" in caught.value.hint


def test_a_missing_plugins_dir_is_an_error(tmp_path):
    with pytest.raises(PluginError, match="does not exist"):
        make_plugin_manager(tmp_path / "nowhere")


@pytest.mark.slow
def test_first_party_plugins_import_from_any_working_directory(tmp_path):
    code = "import styled.plugins.builtin.long_range, styled.plugins.builtin.inpainting; print(styled.plugins.builtin.long_range.NAME)"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "long_range"


# --- options ------------------------------------------------------------------------------------


def test_an_unknown_plugin_names_the_key_and_lists_the_available_ones(pm):
    with pytest.raises(PluginError) as caught:
        check(pm, "style: a.jpg\nplugins:\n  symetry: {mirror: both}\n")
    error = caught.value
    assert (error.key, error.line) == ("plugins.symetry", 3)
    assert "did you mean 'symmetry'?" in error.hint
    for name in FIRST_PARTY_PLUGINS:
        assert name in error.hint
    assert "gatys" not in error.hint  # the built-ins are always on, not selectable


def test_a_bad_option_value_names_key_value_allowed_values_and_line(pm):
    with pytest.raises(PluginError) as caught:
        check(pm, "style: a.jpg\nsize: 64\nplugins:\n  symmetry:\n    mode: exact\n    mirror: diagonal\n")
    error = caught.value
    assert (error.key, error.line) == ("plugins.symmetry.mirror", 6)
    assert "left-right, top-bottom, both" in str(error) and "'diagonal'" in str(error)
    assert str(error).startswith("job.yaml, line 6, key 'plugins.symmetry.mirror'")


def test_an_unknown_option_suggests_the_nearest(pm):
    with pytest.raises(PluginError) as caught:
        check(pm, "style: a.jpg\nplugins:\n  symmetry:\n    mirorr: both\n")
    assert caught.value.key == "plugins.symmetry.mirorr"
    assert "did you mean 'mirror'?" in caught.value.hint


def test_options_get_their_defaults_and_keep_what_the_job_said(pm):
    spec = check(pm, "style: a.jpg\nplugins:\n  symmetry: {mode: statistics}\n  long_range:\n")
    assert spec.plugins["symmetry"]["mode"] == "statistics"
    assert spec.plugins["symmetry"]["mirror"] == "left-right"
    assert spec.plugins["long_range"]["layers"]["relu3_1"] == [4, 8, 16]


def test_path_options_resolve_relative_to_the_job_and_must_exist(pm, tmp_path):
    (tmp_path / "hole.png").write_bytes(b"")
    spec = check(pm, "style: a.jpg\nplugins:\n  inpainting: {mask: hole.png}\n", base=tmp_path)
    assert spec.plugins["inpainting"]["mask"] == str(tmp_path / "hole.png")
    with pytest.raises(PluginError, match="'gone.png' does not exist") as caught:
        check(pm, "style: a.jpg\nplugins:\n  inpainting: {mask: gone.png}\n", base=tmp_path)
    assert caught.value.key == "plugins.inpainting.mask"


def test_a_plugin_without_a_schema_is_known_by_name_and_gets_its_options_unchecked():
    pm = make_plugin_manager(FIXTURES / "good")
    spec = check(pm, "style: a.jpg\nplugins:\n  brighten: {target: 0.9, anything: [1, 2]}\n")
    assert spec.plugins["brighten"] == {"target": 0.9, "anything": [1, 2]}


def test_a_schema_name_is_what_the_job_uses():
    class Renamed:
        @staticmethod
        def plugin_schema():
            return PluginSchema("sparkle", (Option("level", "high", "how much", one_of("high", "low")),))

    from styled import hookimpl

    Renamed.plugin_schema = hookimpl(Renamed.plugin_schema)
    pm = make_plugin_manager()
    pm.register(Renamed, name="some_module")
    spec = check(pm, "style: a.jpg\nplugins:\n  sparkle: {}\n")
    assert spec.plugins["sparkle"] == {"level": "high"}


def test_render_refuses_a_bad_option_with_one_clear_line(tiny_images, tmp_path, capsys):
    job = tmp_path / "job.yaml"
    job.write_text(f"content: {tiny_images['content']}\nstyle: {tiny_images['style']}\n"
                   "plugins:\n  symmetry:\n    mirror: sideways\n")
    code = cli.main(["render", "--job", str(job), "-o", str(tmp_path / "out.png"), "--quiet"])
    assert code == cli.EXIT_BAD_INPUT
    message = capsys.readouterr().err.strip()
    assert message == (f"styled: error: {job}, line 5, key 'plugins.symmetry.mirror': must be one of "
                       "left-right, top-bottom, both, got 'sideways'")
    assert not (tmp_path / "out.png").exists()


# --- styled plugins -----------------------------------------------------------------------------


def test_styled_plugins_lists_name_origin_hooks_and_options(capsys):
    assert cli.main(["plugins", "--plugins-dir", str(FIXTURES / "good")]) == cli.EXIT_OK
    text = capsys.readouterr().out
    assert "symmetry  (first-party: styled.plugins.builtin.symmetry)" in text
    assert "hooks: constrain_image, finalize_image, plugin_schema, prepare_job, register_losses" in text
    assert "mirror  which mirror: left-right, top-bottom or both (default: left-right)" in text
    assert "brighten  (plugins dir: " in text
    assert "options: not declared" in text


def test_styled_plugins_json(capsys):
    assert cli.main(["plugins", "--json"]) == cli.EXIT_OK
    listing = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert listing["gatys"]["selectable"] is False
    inpainting = listing["inpainting"]
    assert "prepare_job" in inpainting["hooks"]
    assert [o["name"] for o in inpainting["options"]][:3] == ["mask", "region", "source"]
    assert inpainting["options"][0]["path"] is True


# --- the custom-loss contract, end to end ---------------------------------------------------------


@pytest.mark.slow
def test_the_brighten_example_makes_a_brighter_image_through_styled_render(tmp_path):
    """docs/plugins.md's walk-through plugin, loaded with --plugins-dir, in two real `styled render` runs."""
    content = tiny_copy(shared_image("content/tubingen.jpg"), tmp_path / "content.png", 96)
    style = tiny_copy(shared_image("style/starry_night.jpg"), tmp_path / "style.png", 96)
    common = [sys.executable, "-m", "styled.cli", "render", str(content), str(style),
              "--size", "96", "--iterations", "50", "--set", "scales=1", "--quiet",
              "--plugins-dir", str(FIXTURES / "good")]
    runs = {
        "plain": common + ["-o", str(tmp_path / "plain.png")],
        "bright": common + ["-o", str(tmp_path / "bright.png"), "--set", "plugins.brighten.target=0.9"],
    }
    processes = {name: subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name, args in runs.items()}
    for name, process in processes.items():
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    plain = np.asarray(PILImage.open(tmp_path / "plain.png"), np.float64) / 255
    bright = np.asarray(PILImage.open(tmp_path / "bright.png"), np.float64) / 255
    assert bright.mean() > plain.mean() + 0.02, (plain.mean(), bright.mean())
    report = json.loads((tmp_path / "bright.json").read_text())
    assert "brightness" in report["history"][-1] and "brightness" in report["losses"]
    assert report["history"][-1]["brightness"] < report["history"][0]["brightness"]


def test_styled_plugins_reads_the_daemons_plugins_dir(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(f"inbox: in\noutbox: out\nfailed: failed\nwork: work\nplugins_dir: {FIXTURES / 'good'}\n")
    assert cli.main(["plugins", "--config", str(config), "--json"]) == cli.EXIT_OK
    names = {entry["name"] for entry in json.loads(capsys.readouterr().out)}
    assert "brighten" in names
