"""``precision: auto`` is measured once per device and versions, cached, and measured again when
the cache does not hold for this machine; the measurement itself runs for real."""

from __future__ import annotations

import json

import pytest

from styled.nets import precision
from styled.nets.devices import Device

CPU = Device("cpu", "/CPU:0")


class FakeMeasure:
    """A fault injected on purpose: timings chosen by the test, and a count of measurements."""

    def __init__(self, seconds, xla=None):
        self.seconds, self.xla, self.calls = seconds, xla or {}, 0

    def __call__(self, device):
        self.calls += 1
        return dict(self.seconds), {name: 0.0 for name in self.seconds}, dict(self.xla)


def test_the_fastest_accurate_precision_wins():
    assert precision.choose({"float32": 1.0, "bfloat16": 0.3}, {"float32": 0.0, "bfloat16": 0.001}) == "bfloat16"
    assert precision.choose({"float32": 1.0, "bfloat16": 7.5}, {"float32": 0.0, "bfloat16": 0.001}) == "float32"
    assert precision.choose({"float32": 1.0, "float16": 0.2}, {"float32": 0.0, "float16": 0.5}) == "float32", \
        "a precision whose loss is off is not used however fast"


def test_the_cache_is_used_and_invalidated_by_a_new_version(tmp_path, monkeypatch):
    cache = tmp_path / "precision.json"
    slow_bf16 = FakeMeasure({"float32": 0.1, "bfloat16": 0.7})
    first = precision.calibration_for(CPU, measure=slow_bf16, cache=cache)
    again = precision.calibration_for(CPU, measure=slow_bf16, cache=cache)
    assert slow_bf16.calls == 1 and first == again and first.chosen == "float32"
    assert "float32 0.100 s" in first.reason()
    monkeypatch.setattr(precision, "device_key", lambda device: "cpu | another CPU | tensorflow 9 | styled 9")
    fast_bf16 = FakeMeasure({"float32": 0.1, "bfloat16": 0.03})
    assert precision.calibration_for(CPU, measure=fast_bf16, cache=cache).chosen == "bfloat16"
    assert fast_bf16.calls == 1, "a cache entry for other versions or another CPU does not hold here"
    assert len(json.loads(cache.read_text())) == 2, "each machine and version keeps its own entry"


def test_remeasure_and_a_damaged_cache_measure_again(tmp_path):
    cache = tmp_path / "precision.json"
    measure = FakeMeasure({"float32": 0.1})
    precision.calibration_for(CPU, measure=measure, cache=cache)
    precision.calibration_for(CPU, measure=measure, cache=cache, remeasure=True)
    cache.write_text("{not json")
    precision.calibration_for(CPU, measure=measure, cache=cache)
    assert measure.calls == 3


def test_an_explicit_precision_is_not_measured(tmp_path):
    assert precision.resolve_compute("bfloat16", CPU, cache=tmp_path / "none.json") == \
        precision.Compute("bfloat16", False, "asked for in the job")


def test_xla_is_used_only_where_it_was_measured_faster(tmp_path):
    cache = tmp_path / "precision.json"
    measure = FakeMeasure({"float32": 0.1, "bfloat16": 0.05},
                          xla={"float32": (0.8, 1.0), "bfloat16": (1.0, 0.45)})
    auto = precision.resolve_compute("auto", CPU, measure=measure, cache=cache)
    assert (auto.precision, auto.xla) == ("bfloat16", False), "XLA slower in bfloat16 here"
    assert "XLA off" in auto.reason
    explicit = precision.resolve_compute("float32", CPU, cache=cache)
    assert explicit.xla, "an explicit precision uses the cached XLA measurement"
    again = precision.calibration_for(CPU, measure=measure, cache=cache)
    assert again.xla == {"float32": (0.8, 1.0), "bfloat16": (1.0, 0.45)} and measure.calls == 1


@pytest.mark.slow
def test_the_real_measurement_times_every_cpu_candidate_and_float32_is_exact():
    seconds, errors, xla = precision.measure_device(CPU)
    assert set(seconds) == {"float32", "bfloat16"} and all(value > 0 for value in seconds.values())
    assert set(xla) == set(seconds) and all(a > 0 and b > 0 for a, b in xla.values())
    assert errors["float32"] == 0.0 and errors["bfloat16"] < precision.ACCURACY_TOLERANCE


CPUINFO = """processor\t: 0
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512_bf16 sha_ni
processor\t: 1
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512_bf16 sha_ni
"""


def test_the_cpu_key_holds_the_matrix_features_not_only_the_model_name():
    with_bf16 = precision.describe_cpu(CPUINFO)
    assert with_bf16 == "AMD EPYC [avx2 avx512_bf16 avx512f fma]"
    without = precision.describe_cpu(CPUINFO.replace(" avx512f avx512_bf16", ""))
    assert without == "AMD EPYC [avx2 fma]", "two machines sold under one model name get two cache entries"
    arm = precision.describe_cpu("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\nCPU part\t: 0xd40\n")
    assert arm.endswith("[asimd bf16 i8mm sve]")
