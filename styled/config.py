"""Frozen, typed job specs: every default in one place, and validation that names key, value and fix.

A job spec is the same whether it comes from ``styled render --job``, ``--set KEY=VALUE`` or a
``job.yaml`` dropped into the daemon's inbox.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from styled.errors import ConfigError, JobSpecError

# --- defaults -----------------------------------------------------------------------------------

#: Gatys et al. (2015) take the content from relu4_2 ("conv4_2" in the paper).
DEFAULT_CONTENT_LAYERS = ("relu4_2",)
#: Gatys et al. (2015) match Gram matrices at the first ReLU of every block, equally weighted.
DEFAULT_STYLE_LAYERS = (
    ("relu1_1", 1.0),
    ("relu2_1", 1.0),
    ("relu3_1", 1.0),
    ("relu4_1", 1.0),
    ("relu5_1", 1.0),
)
#: Chosen against jcjohnson/neural-style's tubingen_starry.png at 512 px (docs/tuning.md).
DEFAULT_STYLE_WEIGHT = 100.0
#: Mean squared neighbour difference; takes a third off the output's high-frequency VGG noise
#: and keeps the brush strokes (docs/tuning.md compares 0, 2 and 20).
DEFAULT_TV_WEIGHT = 20.0
DEFAULT_SIZE = 512
DEFAULT_ITERATIONS = 300
#: The first of the coarse-to-fine scales starts near this long side (crowsonkb uses 128 too).
DEFAULT_SCALE_START = 128
#: Adam's step in [0, 1] pixel units (jcjohnson's 10 on the 0..255 scale is about 0.04).
DEFAULT_LEARNING_RATE = 0.02
#: L-BFGS memory. jcjohnson/neural-style keeps 100 pairs; at 256 px, 20 reached a lower loss than
#: 10 or 50 after 100 and 150 iterations, for less work per step (docs/performance.md).
DEFAULT_LBFGS_HISTORY = 20
MAX_SIZE = 8192

CHOICES: dict[str, tuple[str, ...]] = {
    "method": ("gatys", "adain"),
    "optimizer": ("lbfgs", "adam"),
    "init": ("content", "noise", "style", "adain"),
    "pooling": ("avg", "max"),
    "backbone": ("vgg19", "vgg16", "keras-vgg19"),
    "precision": ("auto", "float32", "bfloat16", "float16"),
}
VGG_LAYER_NAMES = tuple(
    f"relu{block}_{index}"
    for block, count in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
    for index in range(1, count + 1)
)


@dataclass(frozen=True)
class JobSpec:
    """Everything a render needs besides the pixels. Paths are as written in the spec."""

    content: str | None = None
    style: tuple[str, ...] = ()
    style_blend: tuple[float, ...] = ()
    output: str = "result.png"
    method: str = "gatys"
    size: int = DEFAULT_SIZE
    iterations: int = DEFAULT_ITERATIONS
    coarse_iterations: int | None = None
    time_limit: float | None = None
    scales: int | None = None
    scale_start: int = DEFAULT_SCALE_START
    content_weight: float = 1.0
    style_weight: float = DEFAULT_STYLE_WEIGHT
    tv_weight: float = DEFAULT_TV_WEIGHT
    content_layers: tuple[str, ...] = DEFAULT_CONTENT_LAYERS
    style_layers: tuple[tuple[str, float], ...] = DEFAULT_STYLE_LAYERS
    optimizer: str = "lbfgs"
    learning_rate: float = DEFAULT_LEARNING_RATE
    lbfgs_history: int = DEFAULT_LBFGS_HISTORY
    init: str = "content"
    seed: int | None = None
    pooling: str = "avg"
    style_scale: float = 1.0
    preserve_colors: bool = False
    backbone: str = "vgg19"
    weights: str | None = None
    device: str = "auto"
    precision: str = "auto"
    alpha: float = 1.0
    bit_depth: int = 8
    plugins: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def plugin_options(self, name: str) -> dict[str, Any] | None:
        """The options the job gave plugin ``name``, or None when the job did not ask for it."""
        options = self.plugins.get(name)
        return None if options is None else dict(options)

    def scale_sizes(self) -> tuple[int, ...]:
        """Long sides of the coarse-to-fine scales, ending at ``size``."""
        count = self.scales if self.scales is not None else auto_scale_count(self.size, self.scale_start)
        if count <= 1:
            return (self.size,)
        ratio = (self.size / min(self.scale_start, self.size)) ** (1 / (count - 1))
        return tuple(round(self.size / ratio ** (count - 1 - i)) for i in range(count))

    def blend_weights(self) -> tuple[float, ...]:
        """Normalised weights of the style images (equal unless ``style_blend`` says otherwise)."""
        raw = self.style_blend or (1.0,) * len(self.style)
        total = sum(raw)
        return tuple(w / total for w in raw)

    def to_dict(self) -> dict[str, Any]:
        """Every effective setting, in plain YAML/JSON types."""
        data = dataclasses.asdict(self)
        data["style"] = list(self.style)
        data["style_blend"] = list(self.style_blend)
        data["content_layers"] = list(self.content_layers)
        data["style_layers"] = {name: weight for name, weight in self.style_layers}
        data["plugins"] = {name: dict(opts) for name, opts in self.plugins.items()}
        return data


def auto_scale_count(size: int, start: int) -> int:
    """One scale per doubling from ``start`` up to ``size`` (512 from 128: 128, 256, 512)."""
    if size <= start:
        return 1
    return 1 + max(1, round(math.log2(size / start)))


# --- validation ---------------------------------------------------------------------------------


class _Invalid(ValueError):
    """Raised by a field rule; carries the message and an optional hint."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def _integer(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    def rule(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"must be a whole number, got {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise _Invalid(f"must be at least {minimum}{upper}, got {value}")
        return value

    return rule


def _number(minimum: float, maximum: float | None = None, *, exclusive_min: bool = False) -> Callable[[Any], float]:
    def rule(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _Invalid(f"must be a number, got {value!r}")
        too_small = value <= minimum if exclusive_min else value < minimum
        if too_small or (maximum is not None and value > maximum):
            low = f"greater than {minimum}" if exclusive_min else f"at least {minimum}"
            high = f" and at most {maximum}" if maximum is not None else ""
            raise _Invalid(f"must be {low}{high}, got {value}")
        return float(value)

    return rule


def _optional(rule: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def optional_rule(value: Any) -> Any:
        return None if value is None else rule(value)

    return optional_rule


def _choice(key: str) -> Callable[[Any], str]:
    allowed = CHOICES[key]

    def rule(value: Any) -> str:
        if value not in allowed:
            raise _Invalid(f"must be one of {', '.join(allowed)}, got {value!r}", _did_you_mean(value, allowed))
        return value

    return rule


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"must be a non-empty text, got {value!r}")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, got {value!r}")
    return value


def _path_list(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) and item for item in items):
        raise _Invalid(f"must be a file name or a list of file names, got {value!r}")
    return tuple(items)


def _positive_list(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list):
        raise _Invalid(f"must be a list of positive numbers (one per style image), got {value!r}")
    return tuple(_number(0.0, exclusive_min=True)(item) for item in value)


def _layer(value: Any) -> str:
    if value not in VGG_LAYER_NAMES:
        raise _Invalid(f"{value!r} is not a VGG layer", _did_you_mean(value, VGG_LAYER_NAMES))
    return value


def _layer_list(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _Invalid(f"must be a layer name or a list of them, such as [relu4_2], got {value!r}")
    return tuple(_layer(item) for item in items)


def _weighted_layers(value: Any) -> tuple[tuple[str, float], ...]:
    """``[relu1_1, relu2_1]`` (equal weights) or ``{relu1_1: 1.0, relu2_1: 0.5}``."""
    if isinstance(value, Mapping) and value:
        return tuple((_layer(name), _number(0.0)(weight)) for name, weight in value.items())
    return tuple((name, 1.0) for name in _layer_list(value))


def _device(value: Any) -> str:
    if value in ("auto", "cpu", "gpu") or (
        isinstance(value, str) and value.startswith("gpu:") and value[4:].isdigit()
    ):
        return value
    raise _Invalid(f"must be auto, cpu, gpu or gpu:N, got {value!r}")


def _bit_depth(value: Any) -> int:
    if value not in (8, 16):
        raise _Invalid(f"must be 8 or 16, got {value!r}")
    return value


def _plugin_table(value: Any) -> dict[str, dict[str, Any]]:
    """``{name: {option: value}}``; ``{name: true}`` or ``{name: null}`` turn a plugin on with its defaults."""
    if not isinstance(value, Mapping):
        raise _Invalid(f"must map plugin names to their options, got {value!r}")
    table = {}
    for name, options in value.items():
        if options is None or options is True:
            options = {}
        if not isinstance(options, Mapping):
            raise _Invalid(f"options of plugin {name!r} must be a mapping, got {options!r}")
        table[str(name)] = dict(options)
    return table


RULES: dict[str, Callable[[Any], Any]] = {
    "content": _optional(_text),
    "style": _path_list,
    "style_blend": _positive_list,
    "output": _text,
    "method": _choice("method"),
    "size": _integer(16, MAX_SIZE),
    "iterations": _integer(0),
    "coarse_iterations": _optional(_integer(0)),
    "time_limit": _optional(_number(0.0, exclusive_min=True)),
    "scales": _optional(_integer(1, 8)),
    "scale_start": _integer(16, MAX_SIZE),
    "content_weight": _number(0.0),
    "style_weight": _number(0.0),
    "tv_weight": _number(0.0),
    "content_layers": _layer_list,
    "style_layers": _weighted_layers,
    "optimizer": _choice("optimizer"),
    "learning_rate": _number(0.0, exclusive_min=True),
    "lbfgs_history": _integer(1, 1000),
    "init": _choice("init"),
    "seed": _optional(_integer(0)),
    "pooling": _choice("pooling"),
    "style_scale": _number(0.0, 8.0, exclusive_min=True),
    "preserve_colors": _boolean,
    "backbone": _choice("backbone"),
    "weights": _optional(_text),
    "device": _device,
    "precision": _choice("precision"),
    "alpha": _number(0.0, 1.0),
    "bit_depth": _bit_depth,
    "plugins": _plugin_table,
}
assert set(RULES) == {f.name for f in dataclasses.fields(JobSpec)}, "every JobSpec field needs a rule"


def _did_you_mean(value: Any, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(str(value), list(candidates), n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else None


def build_job_spec(
    data: Mapping[str, Any],
    *,
    source: str | None = None,
    lines: Mapping[str, int] | None = None,
) -> JobSpec:
    """Validate a mapping of spec keys into a JobSpec.

    Raises JobSpecError naming the file, YAML line and key, the bad value and the allowed values.
    """
    lines = lines or {}
    if not isinstance(data, Mapping):
        raise JobSpecError(f"a job spec must be a mapping of keys to values, got {type(data).__name__}", where=source)
    values = {}
    for key, raw in data.items():
        if key not in RULES:
            raise JobSpecError(
                f"unknown key '{key}'", where=source, key=str(key), line=lines.get(str(key)),
                hint=_did_you_mean(key, RULES) or f"valid keys: {', '.join(sorted(RULES))}",
            )
        try:
            values[key] = RULES[key](raw)
        except _Invalid as invalid:
            raise JobSpecError(str(invalid), where=source, key=key, line=lines.get(key), hint=invalid.hint) from None
    spec = JobSpec(**values)
    _check_consistency(spec, source, lines)
    return spec


def _check_consistency(spec: JobSpec, source: str | None, lines: Mapping[str, int]) -> None:
    if not spec.style:
        raise JobSpecError("a job needs at least one style image", where=source, key="style",
                           hint="add 'style: painting.jpg'")
    if spec.style_blend and len(spec.style_blend) != len(spec.style):
        raise JobSpecError(
            f"has {len(spec.style_blend)} weights for {len(spec.style)} style images",
            where=source, key="style_blend", line=lines.get("style_blend"),
            hint="give one weight per style image",
        )
    if spec.method == "adain" and spec.content is None:
        raise JobSpecError("method 'adain' needs a content image", where=source, key="content",
                           hint="add 'content: photo.jpg' or use method: gatys for textures")
    if spec.init == "adain" and spec.content is None:
        raise JobSpecError("init 'adain' needs a content image", where=source, key="init",
                           line=lines.get("init"), hint="use init: noise for textures")
    if spec.backbone == "vgg16" and spec.weights is None:
        raise JobSpecError("backbone 'vgg16' needs 'weights: PATH' to vgg16_weights.npz", where=source,
                           key="weights", line=lines.get("backbone"))


# --- YAML, overrides ----------------------------------------------------------------------------


def parse_yaml(text: str, source: str | None = None) -> tuple[Any, dict[str, int]]:
    """``yaml.safe_load`` the text; also return the 1-based line of every (dotted) key."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        column = f", column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise JobSpecError(f"YAML syntax error{column}: {problem}", where=source, line=line,
                           hint="check the indentation and quoting on that line") from None
    return ({} if data is None else data), _key_lines(root)


def _key_lines(node: yaml.Node | None, prefix: str = "") -> dict[str, int]:
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, key + "."))
    return lines


def load_job_file(path: Path, max_bytes: int | None = None) -> tuple[dict[str, Any], dict[str, int]]:
    """Read a YAML job file into its raw mapping and key lines (not yet validated)."""
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise JobSpecError(f"the spec is {size} bytes, over the limit of {max_bytes}", where=str(path),
                               hint="a job spec is a few lines of YAML; raise max_spec_bytes if you must")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JobSpecError("the job file does not exist", where=str(path)) from None
    except UnicodeDecodeError:
        raise JobSpecError("the job file is not UTF-8 text", where=str(path)) from None
    data, lines = parse_yaml(text, str(path))
    if not isinstance(data, dict):
        raise JobSpecError(f"a job spec must be a mapping of keys to values, got {type(data).__name__}",
                           where=str(path), line=1)
    return data, lines


def apply_overrides(data: Mapping[str, Any], assignments: Iterable[str]) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` strings (values parse as YAML scalars; dotted keys reach nested options)."""
    merged = {key: (dict(value) if isinstance(value, Mapping) else value) for key, value in data.items()}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise JobSpecError(f"'{assignment}' is not KEY=VALUE", where="--set",
                               hint="for example --set style_weight=100")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        _set_dotted(merged, key.strip().split("."), value)
    return merged


def _set_dotted(target: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = dict(child) if isinstance(child, Mapping) else {}
            target[part] = child
        target = child
    target[parts[-1]] = value


def merge_defaults(defaults: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """Job keys over configured defaults; the ``plugins`` tables merge one level deeper."""
    merged = dict(defaults)
    for key, value in data.items():
        if key == "plugins" and isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


# --- the daemon's config ------------------------------------------------------------------------
# ``config.yaml`` for ``styled serve``, ``styled submit`` and ``styled status``. The rules reuse the
# job spec's: each key has one rule, and an unknown key suggests the nearest valid one.

DEFAULT_CONFIG_FILE = "config.yaml"
#: A file must keep its size and mtime this long before it is taken: long enough for a copy over a
#: LAN share to show progress, short enough that a dropped job starts promptly.
DEFAULT_SETTLE_SECONDS = 2.0
#: watchdog drops events when inotify overflows, so the inbox is rescanned this often regardless.
DEFAULT_RESCAN_SECONDS = 30.0
#: A kill -9 loses at most this much rendering; a checkpoint at 512 px takes a few milliseconds.
DEFAULT_CHECKPOINT_SECONDS = 30.0
#: A job that took the process down this many times is a poison job and goes to failed/.
DEFAULT_MAX_ATTEMPTS = 3
#: Same default as the image loader's (styled.images.DEFAULT_MAX_PIXELS): a 100-megapixel photo.
DEFAULT_MAX_IMAGE_PIXELS = 120_000_000
#: A job spec is a few lines of YAML; anything far bigger is a mistake or an attack on the parser.
DEFAULT_MAX_SPEC_BYTES = 65_536
#: How often progress.json and the systemd STATUS= line are refreshed.
DEFAULT_PROGRESS_SECONDS = 2.0
#: The log gets one progress line each time a job passes another multiple of this percentage.
DEFAULT_LOG_PROGRESS_PERCENT = 25
#: How long a job may name a file that is not there yet before it fails (its writer may be slow).
DEFAULT_MISSING_FILE_SECONDS = 60.0
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SPOOL_FOLDERS = ("inbox", "outbox", "failed", "work")


@dataclass(frozen=True)
class DaemonConfig:
    """Where the spool lives, which devices render, and how patient the daemon is.

    Folder paths are absolute: relative ones in the file resolve against the file's folder.
    """

    inbox: Path
    outbox: Path
    failed: Path
    work: Path
    devices: tuple[str, ...] = ("cpu",)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    library: tuple[Path, ...] = ()
    settle_seconds: float = DEFAULT_SETTLE_SECONDS
    rescan_seconds: float = DEFAULT_RESCAN_SECONDS
    checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_spec_bytes: int = DEFAULT_MAX_SPEC_BYTES
    missing_file_seconds: float = DEFAULT_MISSING_FILE_SECONDS
    progress_seconds: float = DEFAULT_PROGRESS_SECONDS
    log_progress_percent: int = DEFAULT_LOG_PROGRESS_PERCENT
    plugins_dir: Path | None = None
    log_level: str = "INFO"
    source: Path | None = None  # the file it was read from, for messages and reloads

    def folders(self) -> dict[str, Path]:
        """The spool folders by key: inbox, outbox, failed, work."""
        return {key: getattr(self, key) for key in SPOOL_FOLDERS}

    def to_dict(self) -> dict[str, Any]:
        """Every effective setting in plain types (paths as text), for logs and diffs."""
        data = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, tuple):
                value = [str(v) if isinstance(v, Path) else v for v in value]
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            data[item.name] = value
        return data


def _folder(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"must be a folder path, got {value!r}", "for example 'spool/inbox'")
    return value


def _folder_list(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if items is None:
        return ()
    if not isinstance(items, list):
        raise _Invalid(f"must be a folder or a list of folders, got {value!r}")
    return tuple(_folder(item) for item in items)


def _device_list(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _Invalid(f"must be a list of devices such as [cpu] or [gpu:0, gpu:1], got {value!r}")
    return tuple(_device(item) for item in items)


def _log_level(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in LOG_LEVELS:
        raise _Invalid(f"must be one of {', '.join(LOG_LEVELS)}, got {value!r}",
                       _did_you_mean(str(value).upper(), LOG_LEVELS))
    return value.upper()


def _raw_mapping(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _Invalid(f"must be a mapping of job-spec keys to values, got {value!r}", "for example {size: 512}")
    return dict(value)


DAEMON_RULES: dict[str, Callable[[Any], Any]] = {
    "inbox": _folder,
    "outbox": _folder,
    "failed": _folder,
    "work": _folder,
    "devices": _device_list,
    "defaults": _raw_mapping,
    "library": _folder_list,
    "settle_seconds": _number(0.0),
    "rescan_seconds": _number(0.0, exclusive_min=True),
    "checkpoint_seconds": _number(0.0, exclusive_min=True),
    "max_attempts": _integer(1, 100),
    "max_image_pixels": _integer(1),
    "max_spec_bytes": _integer(64),
    "missing_file_seconds": _number(0.0),
    "progress_seconds": _number(0.0, exclusive_min=True),
    "log_progress_percent": _integer(1, 100),
    "plugins_dir": _optional(_folder),
    "log_level": _log_level,
}
_DAEMON_PATH_KEYS = ("inbox", "outbox", "failed", "work", "plugins_dir")
assert set(DAEMON_RULES) | {"source"} == {f.name for f in dataclasses.fields(DaemonConfig)}, \
    "every DaemonConfig field needs a rule"


def load_daemon_config(path: Path) -> DaemonConfig:
    """Read and validate ``config.yaml``; raise ConfigError naming the key, its line and a fix."""
    path = Path(path)
    text = _read_config_text(path)
    try:
        data, lines = parse_yaml(text, str(path))
    except JobSpecError as error:
        raise ConfigError(error.message, where=str(path), line=error.line, hint=error.hint) from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"the config must be a mapping of keys to values, got {type(data).__name__}",
                          where=str(path), line=1)
    return build_daemon_config(data, base=path.resolve().parent, source=path, lines=lines)


def _read_config_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("the config file does not exist", where=str(path),
                          hint="pass --config FILE, or copy the config.yaml shipped with styled") from None
    except IsADirectoryError:
        raise ConfigError("is a folder, not a config file", where=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("the config file is not UTF-8 text", where=str(path)) from None
    except OSError as error:
        raise ConfigError(f"cannot read the config file: {error.strerror}", where=str(path)) from None


def build_daemon_config(
    data: Mapping[str, Any],
    *,
    base: Path,
    source: Path | None = None,
    lines: Mapping[str, int] | None = None,
) -> DaemonConfig:
    """Validate a mapping of config keys; relative folders resolve against ``base``."""
    lines = lines or {}
    where = str(source) if source is not None else None
    values = {}
    for key, raw in data.items():
        if key not in DAEMON_RULES:
            raise ConfigError(f"unknown key '{key}'", where=where, key=str(key), line=lines.get(str(key)),
                              hint=_did_you_mean(key, DAEMON_RULES) or f"valid keys: {', '.join(DAEMON_RULES)}")
        try:
            values[key] = DAEMON_RULES[key](raw)
        except _Invalid as invalid:
            raise ConfigError(str(invalid), where=where, key=key, line=lines.get(key), hint=invalid.hint) from None
    _require_folders(values, where)
    _check_defaults(values.get("defaults", {}), where, lines)
    _resolve_paths(values, base)
    config = DaemonConfig(**values, source=source)
    _check_distinct_folders(config, where, lines)
    return config


def _require_folders(values: Mapping[str, Any], where: str | None) -> None:
    missing = [key for key in SPOOL_FOLDERS if key not in values]
    if missing:
        raise ConfigError(f"missing {', '.join(missing)}", where=where, key=missing[0],
                          hint=f"add '{missing[0]}: spool/{missing[0]}' (relative to the config file)")


def _check_defaults(defaults: Mapping[str, Any], where: str | None, lines: Mapping[str, int]) -> None:
    """Each default must be a valid job-spec key and value (a job then overrides it)."""
    for key, raw in defaults.items():
        dotted = f"defaults.{key}"
        if key not in RULES:
            raise ConfigError(f"unknown job-spec key '{key}'", where=where, key=dotted, line=lines.get(dotted),
                              hint=_did_you_mean(key, RULES) or f"valid keys: {', '.join(sorted(RULES))}")
        try:
            RULES[key](raw)
        except _Invalid as invalid:
            raise ConfigError(str(invalid), where=where, key=dotted, line=lines.get(dotted),
                              hint=invalid.hint) from None


def _resolve_paths(values: dict[str, Any], base: Path) -> None:
    def resolve(text: str) -> Path:
        return (base / Path(text).expanduser()).resolve()

    for key in _DAEMON_PATH_KEYS:
        if values.get(key) is not None:
            values[key] = resolve(values[key])
    values["library"] = tuple(resolve(folder) for folder in values.get("library", ()))


def _check_distinct_folders(config: DaemonConfig, where: str | None, lines: Mapping[str, int]) -> None:
    """No spool folder may be, or sit inside, another: a claim would then watch its own output."""
    folders = config.folders()
    for key, folder in folders.items():
        for other_key, other in folders.items():
            if key != other_key and (folder == other or other in folder.parents):
                raise ConfigError(f"'{key}' ({folder}) is inside '{other_key}' ({other})" if folder != other
                                  else f"'{key}' and '{other_key}' are the same folder ({folder})",
                                  where=where, key=key, line=lines.get(key),
                                  hint="give inbox, outbox, failed and work folders of their own")
