"""``precision: auto``, by measurement: the fastest accurate compute dtype of each device, timed
once and cached.

CPU flags do not predict speed: a CPU that reports AVX-512 BF16 without AMX ran bfloat16 about
1.4 times slower than float32 on one machine and 1.6 times faster on another, an AVX2-only one 7.7
times slower, and one with AMX 3 to 4 times faster. So on first use on a device, each candidate
runs a VGG-19 forward and backward pass at a small size; the fastest whose loss stays within
ACCURACY_TOLERANCE of float32's wins. XLA is measured the same way: on an AVX2 CPU it made a 512
px iteration 20 % faster, on an AVX-512 BF16 one (where plain TensorFlow runs its convolutions
through oneDNN) 2.2 times slower in bfloat16, so each precision is also timed compiled with XLA at
XLA_SHAPE, and a render compiles only where that was faster. The answer is cached per device, CPU
or GPU model (with the CPU's matrix features), TensorFlow version and styled version in the user's
cache folder, so the measurement (a few seconds) is paid once per machine and upgrade.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from styled.io.files import atomic_write_json
from styled.nets.devices import Device
from styled.nets.weights import cache_root

log = logging.getLogger(__name__)

CACHE_FILE = "precision.json"
#: The candidates; float16 only on GPUs (CPUs emulate it).
CPU_CANDIDATES = ("float32", "bfloat16")
GPU_CANDIDATES = ("float32", "bfloat16", "float16")
#: Small enough to be quick everywhere, large enough that every layer does real work.
CALIBRATION_SHAPE = (96, 128)
TIMED_PASSES = 3
#: A candidate slower than this many times float32 after its first timed pass is not timed again.
GIVE_UP_FACTOR = 2.0
#: A candidate whose loss differs from float32's by more than this fraction is not used.
ACCURACY_TOLERANCE = 0.02
#: CPU features that change the speed of matrix products in some precision (x86 and Arm).
PRECISION_FEATURES = frozenset({"avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni",
                                "amx_tile", "amx_bf16", "amx_fp16", "asimd", "sve", "sve2", "bf16", "i8mm"})
CALIBRATION_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")
#: XLA is timed where a render would first use it (styled.engine.objective.XLA_MIN_PIXELS): below
#: it, compiling costs more than any speed-up saves.
XLA_SHAPE = (256, 256)
#: XLA is used only if it made a pass at least this much faster: compiling costs seconds per scale.
XLA_MIN_SPEEDUP = 1.1


@dataclass(frozen=True)
class Calibration:
    """What was measured on one device, and what ``auto`` therefore uses."""

    key: str
    seconds: dict[str, float]  # per forward and backward pass, median
    errors: dict[str, float]  # relative difference of the loss from float32's
    chosen: str
    measured_at: str
    #: Per precision, a pass at XLA_SHAPE compiled with XLA and plain: (xla seconds, plain seconds).
    xla: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)

    def reason(self) -> str:
        timings = ", ".join(f"{name} {seconds:.3f} s" for name, seconds in self.seconds.items())
        return (f"fastest accurate precision measured on this device ({timings} per VGG pass at "
                f"{CALIBRATION_SHAPE[1]}x{CALIBRATION_SHAPE[0]}, {self.measured_at}); "
                f"XLA {'on' if self.xla_pays(self.chosen) else 'off'}")

    def xla_pays(self, precision: str) -> bool:
        return xla_pays(self.xla.get(precision))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def xla_pays(timing: tuple[float, float] | None) -> bool:
    """Whether a measured (XLA, plain) pair of seconds made XLA at least XLA_MIN_SPEEDUP times faster."""
    return timing is not None and timing[1] >= XLA_MIN_SPEEDUP * timing[0]


#: seconds and errors per precision, and (xla, plain) seconds at XLA_SHAPE per precision.
Measure = Callable[[Device], tuple[dict[str, float], dict[str, float], dict[str, tuple[float, float]]]]


def device_key(device: Device) -> str:
    """What a measurement holds for: the device, its model, and the TensorFlow and styled versions."""
    import importlib.metadata

    import tensorflow as tf

    return (f"{device.name} | {_model(device)} | tensorflow {tf.__version__} | "
            f"styled {importlib.metadata.version('styled')}")


def _model(device: Device) -> str:
    if device.is_gpu:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        index = int(device.name.split(":")[1])
        details = tf.config.experimental.get_device_details(gpus[index]) if index < len(gpus) else {}
        return str(details.get("device_name", "unknown GPU"))
    return _cpu_model()


def _cpu_model() -> str:
    """The CPU's model and matrix features from /proc/cpuinfo; what ``platform`` knows where
    there is no /proc."""
    with contextlib.suppress(OSError):
        return describe_cpu(Path("/proc/cpuinfo").read_text())
    return platform.processor() or platform.machine()


def describe_cpu(cpuinfo: str) -> str:
    """The model name and the features that decide matrix speed in each precision. Virtual
    machines of different hardware can share a model name ("AMD EPYC"), and a home folder (and so
    the cache) can follow a user from one to another, so the features are part of the key."""
    model, features = "", set()
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        name = name.strip()
        if name == "model name" and not model:
            model = value.strip()
        elif name in ("flags", "Features") and not features:
            features = set(value.split()) & PRECISION_FEATURES
    model = model or platform.processor() or platform.machine()
    return f"{model} [{' '.join(sorted(features))}]" if features else model


def calibration_for(device: Device, *, remeasure: bool = False, measure: Measure | None = None,
                    cache: Path | None = None) -> Calibration:
    """The device's calibration, from the cache when it holds one for this device and these
    versions, else measured now (``measure``, for tests) and cached."""
    cache = cache or cache_root() / CACHE_FILE
    key = device_key(device)
    known = _read_cache(cache)
    if not remeasure and key in known:
        try:
            return _cached(known[key])
        except (TypeError, AttributeError, KeyError, ValueError):
            log.info("the cached precision measurement of %s is from another version; measuring again", device.name)
    seconds, errors, xla = (measure or measure_device)(device)
    calibration = Calibration(key, seconds, errors, choose(seconds, errors),
                              time.strftime("%Y-%m-%d %H:%M", time.localtime()), xla)
    log.info("precision: %s on %s (%s)", calibration.chosen, device.name, calibration.reason())
    _write_cache(cache, {**known, key: calibration.to_dict()})
    return calibration


def _cached(entry: dict) -> Calibration:
    """A cached calibration; KeyError for one measured before XLA was (it must be measured again)."""
    return Calibration(**{**entry, "xla": {name: tuple(pair) for name, pair in entry["xla"].items()}})


def choose(seconds: dict[str, float], errors: dict[str, float]) -> str:
    """The fastest candidate within ACCURACY_TOLERANCE of float32 (float32 itself always is)."""
    accurate = [name for name in seconds if errors.get(name, 0.0) <= ACCURACY_TOLERANCE]
    return min(accurate, key=lambda name: seconds[name])


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, data)
    except OSError as error:  # a read-only home: measure again next time, but do not fail
        log.warning("cannot cache the precision measurement in %s: %s", path, error)


def measure_device(device: Device) -> tuple[dict[str, float], dict[str, float], dict[str, tuple[float, float]]]:
    """Median seconds of a VGG-19 forward and backward pass per candidate dtype, the relative
    difference of its loss from float32's, and per dtype that runs, (XLA, plain) seconds at XLA_SHAPE."""
    import tensorflow as tf

    from styled.nets.vgg import FeatureExtractor
    from styled.nets.weights import load_backbone

    backbone = load_backbone("vgg19")
    image = tf.random.stateless_uniform((1, *CALIBRATION_SHAPE, 3), seed=(1, 2))
    large = tf.random.stateless_uniform((1, *XLA_SHAPE, 3), seed=(1, 2))
    seconds: dict[str, float] = {}
    losses: dict[str, float] = {}
    xla: dict[str, tuple[float, float]] = {}
    with tf.device(device.tf_name):
        for dtype in GPU_CANDIDATES if device.is_gpu else CPU_CANDIDATES:
            extractor = FeatureExtractor(backbone, "avg", tf.as_dtype(dtype))
            timing = _time_passes(extractor, image, seconds.get("float32"))
            if timing is not None:
                seconds[dtype], losses[dtype] = timing
                xla[dtype] = _time_xla(extractor, large)
    reference = losses["float32"]
    errors = {name: abs(loss - reference) / max(abs(reference), 1e-12) for name, loss in losses.items()}
    return seconds, errors, xla


def _time_xla(extractor, image) -> tuple[float, float]:
    """(XLA, plain) median seconds of a pass over ``image``; XLA infinitely slow if it cannot compile."""
    import tensorflow as tf

    plain = _time_passes(extractor, image, None)
    try:
        compiled = _time_passes(extractor, image, None, jit_compile=True)
    except tf.errors.OpError as error:  # pragma: no cover - a device XLA does not support
        log.info("XLA cannot compile the VGG pass here: %s", str(error).splitlines()[0])
        compiled = None
    if plain is None or compiled is None:
        return math.inf, plain[0] if plain else math.inf
    return compiled[0], plain[0]


def _time_passes(extractor, image, float32_seconds: float | None, jit_compile: bool = False) -> tuple[float, float] | None:
    import tensorflow as tf

    @tf.function(autograph=False, jit_compile=jit_compile)
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            features = extractor(x, CALIBRATION_LAYERS)
            loss = tf.add_n([tf.reduce_mean(tf.square(f)) for f in features.values()])
        return loss, tape.gradient(loss, x)

    try:
        loss, _ = forward_backward(image)  # trace and warm up
    except (tf.errors.OpError, ValueError, TypeError) as error:  # a dtype the device lacks
        log.info("precision %s cannot run here: %s", extractor.dtype.name, error)
        return None
    timings = []
    for _ in range(TIMED_PASSES):
        started = time.perf_counter()
        forward_backward(image)[1].numpy()
        timings.append(time.perf_counter() - started)
        if float32_seconds is not None and timings[-1] > GIVE_UP_FACTOR * float32_seconds:
            break
    value = float(loss)
    return (statistics.median(timings), value) if math.isfinite(value) else None


@dataclass(frozen=True)
class Compute:
    """How a render runs its VGG passes on a device: the dtype, whether to compile with XLA, and why."""

    precision: str
    xla: bool
    reason: str


def resolve_compute(requested: str, device: Device, *, measure: Measure | None = None,
                    cache: Path | None = None) -> Compute:
    """The compute dtype for a spec's ``precision`` on ``device`` and whether XLA pays for it. An
    explicit precision is not measured, but uses the device's cached XLA measurement if there is one
    (else no XLA: plain TensorFlow is never far behind, and compiling costs seconds per scale)."""
    if requested != "auto":
        known = _read_cache(cache or cache_root() / CACHE_FILE).get(device_key(device))
        timing = known.get("xla", {}).get(requested) if isinstance(known, dict) else None
        return Compute(requested, xla_pays(tuple(timing) if timing else None), "asked for in the job")
    calibration = calibration_for(device, measure=measure, cache=cache)
    return Compute(calibration.chosen, calibration.xla_pays(calibration.chosen), calibration.reason())
