"""``config.yaml`` for ``styled serve``, ``styled submit`` and ``styled status``.

Each key is declared once below, with its default, rule and help; docs/daemon.md's table is made
from it and config.yaml is checked against it by a test. Job-spec ``defaults`` are checked with
the job spec's own fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from styled.engine.spec import JOB_FIELDS, MAX_SIZE, MIN_SIZE
from styled.errors import ConfigError
from styled.nets.devices import device_name
from styled.settings import Field, Invalid, check_table, located, setting, table
from styled.settings.rules import integer, listed, mapping, memory_size, number, one_of, optional, short, text
from styled.settings.sources import load_mapping
from styled.video import DEFAULT_MAX_VIDEO_FRAMES

#: A file must keep its size and mtime this long before it is taken: long enough for a copy over a
#: LAN share to show progress, short enough that a dropped job starts promptly.
DEFAULT_SETTLE_SECONDS = 2.0
#: watchdog drops events when inotify overflows, so the inbox is rescanned this often regardless.
DEFAULT_RESCAN_SECONDS = 30.0
#: A kill -9 loses at most this much rendering; a checkpoint at 512 px takes a few milliseconds.
DEFAULT_CHECKPOINT_SECONDS = 30.0
#: A job that took the process down this many times is a poison job and goes to failed/.
DEFAULT_MAX_ATTEMPTS = 3
MAX_MAX_ATTEMPTS = 100
#: Same default as the image loader's (styled.io.images.DEFAULT_MAX_PIXELS): a 100-megapixel photo.
DEFAULT_MAX_IMAGE_PIXELS = 120_000_000
#: A job spec is a few lines of YAML; anything far bigger is a mistake or an attack on the parser.
DEFAULT_MAX_SPEC_BYTES = 65_536
MIN_SPEC_BYTES = 64
#: How often progress.json and the systemd STATUS= line are refreshed.
DEFAULT_PROGRESS_SECONDS = 2.0
#: The log gets one progress line each time a job passes another multiple of this percentage.
DEFAULT_LOG_PROGRESS_PERCENT = 25
#: How long a job may name a file that is not there yet before it fails (its writer may be slow).
DEFAULT_MISSING_FILE_SECONDS = 60.0
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: What the daemon does with a job over an operator limit (``max_size``, ...).
OVER_LIMIT = ("refuse", "clamp")
SPOOL_FOLDERS = ("inbox", "outbox", "failed", "work")
#: Keys whose change needs a restart: the spool moving under running jobs, or new worker threads.
RESTART_KEYS = (*SPOOL_FOLDERS, "devices", "cluster")
#: Dask's own default port for the dashboard; ``null`` turns it off.
DEFAULT_DASHBOARD = ":8787"
#: A connection attempt to the scheduler gives up after this long (the daemon then retries, backing off).
DEFAULT_CONNECT_SECONDS = 10.0
MAX_LOCAL_WORKERS = 256
#: The cluster's status for ``styled status``, in the work folder (a dot name: scans skip it).
CLUSTER_FILE = ".cluster.json"
CONFIG_WHAT = "config file"
CONFIG_MISSING_HINT = "pass --config FILE, or copy the config.yaml shipped with styled"


def _folder(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"must be a folder path, got {short(value)}", "for example 'spool/inbox'")
    return value


def _log_level(value: Any) -> str:
    return one_of(*LOG_LEVELS)(value.upper() if isinstance(value, str) else value)


def _required(what: str) -> Any:
    return setting(None, _folder, what, shown="(required)")


_folders = listed(_folder, "a folder or a list of folders")


def _scheduler_address(value: Any) -> str:
    if not isinstance(value, str) or "://" not in value or not value.split("://", 1)[1]:
        raise Invalid(f"must be a scheduler address such as 'tcp://render-1:8786', got {short(value)}",
                      "the address `dask scheduler` prints at its start")
    return value


def _dashboard(value: Any) -> str:
    if not isinstance(value, str) or ":" not in value:
        raise Invalid(f"must be an address such as ':8787' or '127.0.0.1:8787', got {short(value)}",
                      "or null for no dashboard")
    return value


@dataclass(frozen=True)
class LocalClusterConfig:
    """``cluster: {local: ...}``: a Dask LocalCluster of worker processes started by the daemon."""

    workers: int = setting(1, integer(1, MAX_LOCAL_WORKERS), "worker processes started on this machine, each "
                                                             "rendering one job at a time")


def _subtable(cls: type, what: str, example: str) -> Any:
    """A rule reading a mapping into the frozen dataclass ``cls``; a bad inner key is named in full
    (``cluster.local.workers``) by the caller's prefix."""
    fields = table(cls)
    as_mapping = mapping(what, example)

    def subtable_rule(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        return cls(**check_table(fields, as_mapping(value)))

    return subtable_rule


@dataclass(frozen=True)
class ClusterConfig:
    """``cluster:``: render on Dask workers instead of the daemon's own threads (docs/cluster.md)."""

    scheduler: str | None = setting(None, _scheduler_address, "address of a running Dask scheduler "
                                                              "(`tcp://host:8786`); its workers must see the "
                                                              "spool at the same path", shown="null")
    local: LocalClusterConfig | None = setting(None, _subtable(LocalClusterConfig, "a mapping such as {workers: 2}",
                                                               "for example {workers: 2}"),
                                               "start a Dask LocalCluster on this machine instead: "
                                               "`{workers: N}` worker processes", shown="null")
    threads: int | None = setting(None, integer(1, 1024), "cores each worker's TensorFlow uses; null: its "
                                                          "machine's cores divided by the worker processes on it",
                                  shown="null")
    dashboard: str | None = setting(DEFAULT_DASHBOARD, optional(_dashboard), "where a local cluster serves Dask's dashboard "
                                                                   "(null: none)")
    connect_seconds: float = setting(DEFAULT_CONNECT_SECONDS, number(0.0, exclusive_min=True),
                                     "a connection attempt to the scheduler gives up after this long; the daemon "
                                     "keeps retrying, backing off")


_CLUSTER_READER = _subtable(ClusterConfig, "a mapping with 'scheduler' or 'local'",
                            "for example {local: {workers: 2}} or {scheduler: 'tcp://render-1:8786'}")


def _cluster(value: Any) -> ClusterConfig:
    cluster = _CLUSTER_READER(value)
    if (cluster.scheduler is None) == (cluster.local is None):
        raise Invalid("needs exactly one of 'scheduler' (a running Dask scheduler) and 'local' (workers started "
                      "here)", "for example {local: {workers: 2}} or {scheduler: 'tcp://render-1:8786'}")
    return cluster


#: The web page's defaults (docs/web.md): loopback only, so that nothing is exposed by accident.
DEFAULT_WEB_HOST = "127.0.0.1"
DEFAULT_WEB_PORT = 8765
#: An upload (a photo and its styles, together) larger than this is refused before it is read in full.
DEFAULT_MAX_UPLOAD = "200MB"


def _upload_size(value: Any) -> int:
    size = memory_size(value)
    if size is None:
        raise Invalid("must be a size such as 200MB", "for example 200MB or 1GB")
    return size


@dataclass(frozen=True)
class WebConfig:
    """``web:``: the studio's page, ``styled web`` (docs/web.md)."""

    host: str = setting(DEFAULT_WEB_HOST, text, "address the page listens on; anything but loopback needs "
                                                "`token` or `token_file`")
    port: int = setting(DEFAULT_WEB_PORT, integer(0, 65535), "TCP port of the page (0: any free port)")
    token: str | None = setting(None, text, "a secret every request must carry (`?token=` once, then a "
                                            "cookie; or `Authorization: Bearer`)", shown="null")
    token_file: str | None = setting(None, _folder, "a file holding the token (its first line), instead of "
                                                    "`token` in the config", shown="null")
    max_upload: int = setting(_upload_size(DEFAULT_MAX_UPLOAD), _upload_size,
                              "the largest upload (photo and styles together) the submit form takes",
                              shown=DEFAULT_MAX_UPLOAD)
    thumbnails: str | None = setting(None, _folder, "where the gallery's thumbnails are cached; null: "
                                                    "styled's folder in the user cache", shown="null")


_WEB_READER = _subtable(WebConfig, "a mapping such as {host: 127.0.0.1, port: 8765}",
                        "for example {host: 0.0.0.0, port: 8765, token_file: /etc/styled/token}")


def _web(value: Any) -> WebConfig:
    web = _WEB_READER(value if value is not None else {})
    if web.token is not None and web.token_file is not None:
        raise Invalid("gives both 'token' and 'token_file'", "keep one of them")
    if web.token is not None and len(web.token) < MIN_TOKEN_CHARS:
        raise Invalid(f"'token' is shorter than {MIN_TOKEN_CHARS} characters", "use a long random string, "
                      "for example the output of: python -c 'import secrets; print(secrets.token_urlsafe())'")
    return web


MIN_TOKEN_CHARS = 16
_devices = listed(device_name, "a list of devices such as [cpu] or [gpu:0, gpu:1]", allow_empty=False)


@dataclass(frozen=True)
class DaemonConfig:
    """Where the spool lives, which devices render, and how patient the daemon is.

    Folder paths are absolute: relative ones in the file resolve against the file's folder.
    """

    inbox: Path = _required("where people and programs drop jobs: a folder NAME/ with job.yaml and its images, or a "
                                "loose NAME.yaml naming images that lie in the inbox")
    outbox: Path = _required("finished jobs: outbox/NAME/ holds the result, report.json, sheet.png, loss.png and "
                                 "inputs/")
    failed: Path = _required("jobs that could not be rendered: failed/NAME/ holds error.txt, error.json and inputs/")
    work: Path = _required("private spool: claimed jobs, their progress and checkpoints; must be on the inbox's "
                              "filesystem")
    devices: tuple[str, ...] = setting(("cpu",), _devices,
                                       "one worker per entry: `cpu`, `gpu`, `gpu:N` or `auto`; `[cpu, cpu]` runs "
                                       "two CPU workers")
    defaults: Mapping[str, Any] = setting(None, mapping("a mapping of job-spec keys to values", "for example {size: 512}"),
                                          "job-spec keys applied to every job, overridden by the job's own spec; "
                                          "checked when the config loads", factory=dict)
    library: tuple[Path, ...] = setting((), _folders, "read-only folders where a job may also name images "
                                                      "(a studio's shared styles)")
    settle_seconds: float = setting(DEFAULT_SETTLE_SECONDS, number(0.0),
                                    "how long every file of a job must keep its size and mtime before the job is "
                                    "taken")
    rescan_seconds: float = setting(DEFAULT_RESCAN_SECONDS, number(0.0, exclusive_min=True),
                                    "seconds between full scans of the inbox (file events can be lost; the scan "
                                    "catches them)")
    checkpoint_seconds: float = setting(DEFAULT_CHECKPOINT_SECONDS, number(0.0, exclusive_min=True),
                                        "seconds between checkpoints of a running job; a crash loses at most this "
                                        "much rendering")
    max_attempts: int = setting(DEFAULT_MAX_ATTEMPTS, integer(1, MAX_MAX_ATTEMPTS),
                                "crashes a job may cause before it goes to `failed/` as a poison job")
    max_image_pixels: int = setting(DEFAULT_MAX_IMAGE_PIXELS, integer(1),
                                    "images with more pixels (width x height) are refused")
    max_video_frames: int = setting(DEFAULT_MAX_VIDEO_FRAMES, integer(1),
                                    "clips with more frames are refused (each frame is a render; docs/video.md)")
    max_spec_bytes: int = setting(DEFAULT_MAX_SPEC_BYTES, integer(MIN_SPEC_BYTES),
                                  "larger specs are refused without being parsed")
    max_size: int | None = setting(None, integer(MIN_SIZE, MAX_SIZE),
                                   "the largest `size` (long side, pixels) a job may ask for; null for the "
                                   f"spec's own limit of {MAX_SIZE}", shown="null")
    max_iterations: int | None = setting(None, integer(0),
                                         "the most `iterations` (and `coarse_iterations`) a job may ask for; null "
                                         "for no limit", shown="null")
    max_time_limit: float | None = setting(None, number(0.0, exclusive_min=True),
                                           "the longest `time_limit` in seconds a job may ask for; a job that gives "
                                           "none gets this one; null for no limit", shown="null")
    over_limit: str = setting("refuse", one_of(*OVER_LIMIT),
                              "`refuse`: a job over `max_size`, `max_iterations` or `max_time_limit` fails at once "
                              "saying which; `clamp`: it runs at the limit, and its report says so")
    missing_file_seconds: float = setting(DEFAULT_MISSING_FILE_SECONDS, number(0.0),
                                          "how long a job may name a file that is not there yet")
    progress_seconds: float = setting(DEFAULT_PROGRESS_SECONDS, number(0.0, exclusive_min=True),
                                      "refresh interval of `progress.json` and systemd's `STATUS=`")
    log_progress_percent: int = setting(DEFAULT_LOG_PROGRESS_PERCENT, integer(1, 100),
                                        "a progress log line each time a job passes another multiple of this")
    plugins_dir: Path | None = setting(None, _folder,
                                       "a folder whose `*.py` files are loaded as plugins (as `styled render "
                                       "--plugins-dir`); they are loaded again for each job, and a plugin that "
                                       "fails to load stops the start (or a reload keeps the old config)",
                                       shown="null")
    cluster: ClusterConfig | None = setting(None, _cluster,
                                            "render on Dask workers instead of the `devices` threads: "
                                            "`{local: {workers: N}}` or `{scheduler: tcp://host:8786}` "
                                            "(docs/cluster.md)", shown="null")
    web: WebConfig = setting(None, _web, "the studio's page, `styled web`: `{host, port, token, token_file, "
                                         "max_upload, thumbnails}` (docs/web.md)", factory=WebConfig, shown="{}")
    log_level: str = setting("INFO", _log_level,
                             "`DEBUG`, `INFO`, `WARNING` or `ERROR`; `styled --debug serve` forces `DEBUG`")
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
            elif dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            data[item.name] = value
        return data


DAEMON_FIELDS: tuple[Field, ...] = table(DaemonConfig)
_PATH_KEYS = (*SPOOL_FOLDERS, "plugins_dir")


def load_daemon_config(path: Path) -> DaemonConfig:
    """Read and validate ``config.yaml``; raise ConfigError naming the key, its line and a fix."""
    path = Path(path)
    data, lines = load_mapping(path, CONFIG_WHAT, ConfigError, hint=CONFIG_MISSING_HINT)
    return build_daemon_config(data, base=path.resolve().parent, source=path, lines=lines)


def build_daemon_config(data: Mapping[str, Any], *, base: Path, source: Path | None = None,
                        lines: Mapping[str, int] | None = None) -> DaemonConfig:
    """Validate a mapping of config keys; relative folders resolve against ``base``."""
    where = str(source) if source is not None else None
    try:
        values = check_table(DAEMON_FIELDS, data)
    except Invalid as invalid:
        raise located(invalid, ConfigError, source=where, lines=lines) from None
    try:  # each default must be a valid job-spec key and value (a job then overrides it)
        check_table(JOB_FIELDS, values.get("defaults", {}))
    except Invalid as invalid:
        raise located(invalid, ConfigError, source=where, lines=lines, prefix="defaults.") from None
    _require_folders(values, where)
    _resolve_paths(values, base)
    config = DaemonConfig(**values, source=source)
    _check_distinct_folders(config, where, lines or {})
    return config


def _require_folders(values: Mapping[str, Any], where: str | None) -> None:
    missing = [key for key in SPOOL_FOLDERS if key not in values]
    if missing:
        raise ConfigError(f"missing {', '.join(missing)}", where=where, key=missing[0],
                          hint=f"add '{missing[0]}: spool/{missing[0]}' (relative to the config file)")


def _resolve_paths(values: dict[str, Any], base: Path) -> None:
    def resolve(text: str) -> Path:
        return (base / Path(text).expanduser()).resolve()

    for key in _PATH_KEYS:
        if values.get(key) is not None:
            values[key] = resolve(values[key])
    values["library"] = tuple(resolve(folder) for folder in values.get("library", ()))
    web = values.get("web")
    if web is not None:
        values["web"] = dataclasses.replace(web, **{key: str(resolve(getattr(web, key)))
                                                    for key in ("token_file", "thumbnails") if getattr(web, key)})


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


def config_changes(old: DaemonConfig, new: DaemonConfig) -> dict[str, tuple[Any, Any]]:
    """{key: (old, new)} for every setting that differs (the file's path excluded)."""
    before, after = old.to_dict(), new.to_dict()
    return {key: (before[key], after[key]) for key in before if key != "source" and before[key] != after[key]}
