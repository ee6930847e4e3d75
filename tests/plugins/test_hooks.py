"""Every hook, exercised by a plugin registered inline (and unregistered after), plus the meta-tests
that fail when a hook has no heading in docs/plugins.md or no ``test_hook_<name>`` test."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from styled import LossTerm, hookimpl, render
from styled.engine.job import load_job, relative_to
from styled.engine.spec import build_job_spec
from styled.errors import PluginError
from styled.plugins import (
    Option,
    PluginSchema,
    make_plugin_manager,
    number,
    validate_job_plugins,
)
from styled.plugins.manager import hook_names

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
TESTS = Path(__file__).resolve().parent


# --- meta-tests (datasette's test_plugin_hooks_are_documented) ------------------------------------


def documented_hooks() -> dict[str, str]:
    """``name -> arguments`` of every ``## name(args)`` heading in docs/plugins.md."""
    headings = re.findall(r"^#+ `?(\w+)\(([^)]*)\)`?\s*$", DOCS.read_text(), flags=re.MULTILINE)
    return dict(headings)


@pytest.mark.parametrize("hook", hook_names())
def test_plugin_hooks_are_documented(hook):
    import inspect

    from styled.plugins import hookspecs

    documented = documented_hooks()
    assert hook in documented, f"docs/plugins.md has no heading '## {hook}(...)'"
    arguments = list(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert [a.strip() for a in documented[hook].split(",") if a.strip()] == arguments


@pytest.mark.parametrize("hook", hook_names())
def test_plugin_hooks_have_tests(hook):
    names = set()
    for path in TESTS.glob("test_*.py"):
        names |= {node.name for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, ast.FunctionDef)}
    assert any(name == f"test_hook_{hook}" or name.startswith(f"test_hook_{hook}_") for name in names), (
        f"no test_hook_{hook} test")


# --- the hooks --------------------------------------------------------------------------------


@pytest.fixture
def pm():
    return make_plugin_manager()


@pytest.fixture
def registered(pm):
    """``registered(plugin)`` registers an inline plugin for this test only."""
    added = []

    def register(plugin, name=None):
        added.append(pm.register(plugin, name=name))
        return plugin

    yield register
    for name in added:
        pm.unregister(name=name)
    assert all(pm.get_plugin(name) is None for name in added)


@pytest.fixture
def job(tiny_images):
    def make(**changes):
        data = {"content": str(tiny_images["content"]), "style": str(tiny_images["style"]), "size": 32,
                "iterations": 4, "scales": 1, "seed": 1, **changes}
        return load_job(build_job_spec(data), relative_to(Path.cwd()))

    return make


def test_hook_plugin_schema(pm, registered):
    class Sparkle:
        @hookimpl
        def plugin_schema(self):
            return PluginSchema("sparkle", (Option("amount", 0.5, "how much", number(0.0, 1.0)),))

    registered(Sparkle(), "sparkle_plugin")
    spec = build_job_spec({"style": "a.jpg", "plugins": {"sparkle": {}}})
    assert validate_job_plugins(pm, spec).plugins == {"sparkle": {"amount": 0.5}}
    with pytest.raises(PluginError, match="must be at least 0.0 and at most 1.0, got 3"):
        validate_job_plugins(pm, build_job_spec({"style": "a.jpg", "plugins": {"sparkle": {"amount": 3}}}))


def test_hook_prepare_job(pm, registered, job):
    seen = {}

    class Halve:
        @hookimpl
        def prepare_job(self, job):
            return dataclasses.replace(job, spec=dataclasses.replace(job.spec, iterations=2),
                                       extras={**job.extras, "halve": "prepared"})

        @hookimpl
        def register_losses(self, job):
            seen["extras"] = job.job.extras.get("halve")
            return []

    registered(Halve())
    result = render(job(), pm)
    assert seen["extras"] == "prepared"
    assert result.iterations == 2 and result.settings["iterations"] == 2


def test_hook_prepare_job_can_refuse_the_job(pm, registered, job):
    failures = []

    class Refuse:
        @hookimpl
        def prepare_job(self, job):
            raise PluginError("no, thank you", key="plugins.refuse")

        @hookimpl
        def job_failed(self, job_name, error):
            failures.append(error)

    registered(Refuse())
    with pytest.raises(PluginError, match="no, thank you"):
        render(job(), pm)
    assert len(failures) == 1


def test_hook_tiling_reach(pm, registered, job):
    """Every scale is asked before the first iteration, untiled as yet and the top scale first (its
    plan bounds the others'), and the widest answer widens that scale's first memory plan: a render
    stopped at once reports the final scale's plan as made then."""
    from styled.engine import memory
    from styled.engine.gatys import spec_layers
    from styled.engine.types import RenderOptions

    asked = []

    class Pairs:
        @hookimpl
        def tiling_reach(self, job):
            asked.append((job.scale_index, job.shape, job.tile))
            return 40 if job.scale_index == job.scale_count - 1 else None

    registered(Pairs())
    spec = {"size": 48, "scales": 2, "scale_start": 32, "tile_size": 32}
    stopped = render(job(**spec), pm, options=RenderOptions(should_stop=lambda: True))
    assert asked[:2] == [(1, (36, 48), None), (0, (24, 32), None)]
    layers = spec_layers(job(**spec).spec)
    assert stopped.memory[1]["halo"] == memory.halo_and_alignment(layers, 40)[0] > memory.halo_and_alignment(layers)[0]


def test_hook_register_losses(pm, registered, job):
    calls = []

    class Darken:
        @hookimpl
        def register_losses(self, job):
            if job.plugin_options("darken") is None:
                return []
            calls.append((job.scale_index, job.shape, job.content.shape, len(job.styles)))
            targets = job.features(job.content, ["relu1_1"])  # the helper for targets
            assert targets["relu1_1"].shape[-1] == 64
            return [LossTerm("darkness", 1000.0, lambda image, features: tf.reduce_mean(image)
                             + 0.0 * tf.reduce_mean(features["relu1_1"]), layers=("relu1_1",))]

    registered(Darken())
    plain = render(job(iterations=10), pm)
    dark = render(job(iterations=10, scales=2, size=48, scale_start=32, coarse_iterations=5,
                      plugins={"darken": {}}), pm)
    assert [call[0] for call in calls] == [0, 1]  # once at the start of every scale, only when asked for
    assert calls[-1][1] == (36, 48) and calls[-1][2] == (1, 36, 48, 3)
    assert "darkness" in dark.history[-1] and "darkness" in dark.losses
    assert dark.image.mean() < plain.image.mean() - 0.05


def test_hook_initial_image(pm, registered, job):
    class Grey:
        @hookimpl
        def initial_image(self, job, image):
            return np.full(image.shape, 0.5, np.float32)

    class Never:
        @hookimpl
        def initial_image(self, job, image):
            return None

    registered(Grey())
    registered(Never())  # registered last, asked first: None passes the question on
    result = render(job(iterations=0), pm)
    assert np.allclose(result.image, 0.5)


def test_hook_constrain_image(pm, registered, job):
    steps = []

    class NoRed:
        @hookimpl
        def constrain_image(self, job, image):
            steps.append(1)
            image = np.array(image)
            image[..., 0] = 0.0
            return image

    registered(NoRed())
    result = render(job(iterations=5), pm)
    assert len(steps) >= 1 + 4  # the starting image, then after every step (the 5th iteration takes none)
    assert np.all(result.image[..., 0] == 0.0)


def test_hook_finalize_image(pm, registered, job):
    class Frame:
        @hookimpl
        def finalize_image(self, job, image):
            framed = np.array(image)
            framed[0, :] = framed[-1, :] = framed[:, 0] = framed[:, -1] = 1.0
            return framed

    class Bigger:
        @hookimpl
        def finalize_image(self, image):  # an implementation may take fewer arguments
            return np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)

    registered(Frame())
    registered(Bigger())  # registered last, applied first: Frame sees the bigger image
    result = render(job(iterations=2), pm)
    assert result.image.shape == (48, 64, 3)
    assert np.all(result.image[0] == 1.0) and np.all(result.image[:, -1] == 1.0)


def test_hook_job_started(pm, registered, job):
    started = []

    class Watch:
        @hookimpl
        def job_started(self, job):
            started.append(job.name)

    registered(Watch())
    render(dataclasses.replace(job(iterations=1), name="hello"), pm)
    assert started == ["hello"]


def test_hook_job_finished(pm, registered, job):
    finished = []

    class Webhook:
        @hookimpl
        def job_finished(self, job, result):
            finished.append(result.report()["iterations"])

    class Broken:
        @hookimpl
        def job_finished(self, job, result):
            raise RuntimeError("the webhook is down")

    registered(Webhook())
    registered(Broken())  # called first; its failure is logged and does not stop the others
    result = render(job(iterations=3), pm)
    assert finished == [3] and result.iterations == 3


def test_hook_job_failed(pm, registered, job):
    failed = []

    class Watch:
        @hookimpl
        def job_failed(self, job_name, error):
            failed.append((job_name, type(error).__name__))

    class Explode:
        @hookimpl
        def register_losses(self, job):
            raise ZeroDivisionError("bad term")

    registered(Watch())
    registered(Explode())
    with pytest.raises(ZeroDivisionError):
        render(dataclasses.replace(job(), name="doomed"), pm)
    assert failed == [("doomed", "ZeroDivisionError")]
