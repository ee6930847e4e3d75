"""One TensorFlow: the base install and the GPU extra name the same distribution, so installing
``styled[cuda]`` adds CUDA libraries to it instead of a second package providing ``tensorflow``."""

from __future__ import annotations

import importlib.metadata
import re

#: Distributions that each install the ``tensorflow`` module; two of them in one environment
#: overwrite each other's files.
TENSORFLOW_DISTRIBUTIONS = {"tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos", "tf-nightly"}


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_base_install_and_the_cuda_extra_name_one_tensorflow_distribution():
    requirements = importlib.metadata.requires("styled") or []
    base = {requirement_name(r) for r in requirements if "extra ==" not in r} & TENSORFLOW_DISTRIBUTIONS
    cuda = [r for r in requirements if re.search(r"extra\s*==\s*['\"]cuda['\"]", r)]
    assert base == {"tensorflow"}, f"the base install should need exactly the 'tensorflow' distribution: {base}"
    assert {requirement_name(r) for r in cuda} == {"tensorflow"} and all("[and-cuda]" in r for r in cuda)


def test_the_installed_tensorflow_is_one_distribution():
    installed = {dist.metadata["Name"].lower().replace("_", "-") for dist in importlib.metadata.distributions()}
    assert len(installed & TENSORFLOW_DISTRIBUTIONS) == 1, installed & TENSORFLOW_DISTRIBUTIONS
