"""The ``styled`` command. The only place that turns errors into exit codes and messages."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from styled.errors import (
    ClusterError,
    ConfigError,
    DeviceError,
    FileKindError,
    ImageError,
    JobControlError,
    JobSpecError,
    MemoryBudgetError,
    PluginError,
    SpoolError,
    StyledError,
    VideoError,
    WeightsError,
)
from styled.nets.devices import load_tensorflow

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1  # the work ran and failed (a job landed in failed/, a render crashed)
EXIT_BAD_INPUT = 2  # the command, spec, config or an image is wrong: fix the input
EXIT_MISSING_WEIGHTS = 3  # network weights are missing or refused
EXIT_INTERRUPTED = 130
EXIT_CODES: dict[type[StyledError], int] = {
    JobSpecError: EXIT_BAD_INPUT,
    JobControlError: EXIT_BAD_INPUT,
    ConfigError: EXIT_BAD_INPUT,
    ImageError: EXIT_BAD_INPUT,
    PluginError: EXIT_BAD_INPUT,
    DeviceError: EXIT_BAD_INPUT,
    FileKindError: EXIT_BAD_INPUT,
    MemoryBudgetError: EXIT_BAD_INPUT,
    SpoolError: EXIT_BAD_INPUT,
    VideoError: EXIT_BAD_INPUT,
    ClusterError: EXIT_FAILED,
    WeightsError: EXIT_MISSING_WEIGHTS,
}

Command = Callable[[argparse.Namespace], int]
#: Functions that add a sub-command to the parser; each sets ``func`` to its Command.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def subcommand(add: Callable[[argparse._SubParsersAction], None]) -> Callable[[argparse._SubParsersAction], None]:
    SUBCOMMANDS.append(add)
    return add


def _add_job_arguments(parser: argparse.ArgumentParser, nargs: str) -> None:
    """The images, --texture and --set, which ``render`` and ``submit`` share."""
    parser.add_argument("images", nargs=nargs, metavar="CONTENT STYLE [STYLE ...]",
                        help="the content photo, then one or more style images")
    parser.add_argument("--texture", action="store_true",
                        help="no content image: every image given is a style, synthesise a texture from noise")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="any job-spec key; values are YAML scalars, dotted keys reach nested options")


# --- render -------------------------------------------------------------------------------------


@subcommand
def add_render(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render", help="stylise a photo (or synthesise a texture) and write the image and a JSON report",
        description="Render CONTENT in the style of STYLE (several STYLEs are blended). Writes OUT and, "
                    "beside it, OUT with the suffix .json holding the report.",
    )
    _add_job_arguments(parser, "*")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT",
                        help="the result image; .png (8/16-bit), .jpg or .tif")
    parser.add_argument("--size", type=int, help="long side of the output in pixels")
    parser.add_argument("--iterations", type=int, help="iterations at the final scale")
    parser.add_argument("--time-limit", type=float, metavar="S", help="stop the optimisation after S seconds")
    parser.add_argument("--job", type=Path, metavar="FILE", help="read the job spec from a YAML file")
    parser.add_argument("--plugins-dir", type=Path, metavar="DIR", help="load every *.py in DIR as a plugin")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_render)


def _render_spec_data(args: argparse.Namespace) -> tuple[dict, dict[str, int], Path]:
    """Merge --job, the positional images and the flags into raw spec keys (not yet validated)."""
    from styled.engine.spec import load_job_file
    from styled.settings.sources import apply_overrides

    data, lines, base = {}, {}, Path.cwd()
    if args.job is not None:
        data, lines = load_job_file(args.job)
        base = args.job.resolve().parent
    positional = [str(Path(p).resolve()) for p in args.images]
    if args.texture:
        data.pop("content", None)
        if positional:
            data["style"] = positional
    elif len(positional) == 1 and args.job is None:
        raise JobSpecError("give a content image and at least one style image",
                           hint="styled render CONTENT STYLE -o OUT, or --texture STYLE for a texture")
    elif positional:
        data["content"], data["style"] = positional[0], positional[1:] or data.get("style")
    flags = {"size": args.size, "iterations": args.iterations, "time_limit": args.time_limit}
    data.update({key: value for key, value in flags.items() if value is not None})
    return apply_overrides(data, args.overrides), lines, base


def run_render(args: argparse.Namespace) -> int:
    from styled.engine.job import load_job, relative_to
    from styled.engine.spec import build_job_spec
    from styled.io.files import atomic_write_json
    from styled.io.images import save_image

    data, lines, base = _render_spec_data(args)
    if not args.images and "style" not in data and not data.get("plugins"):  # plugins may bring styles
        raise JobSpecError("no images given", hint="styled render CONTENT STYLE -o OUT (or --job FILE)")
    source = str(args.job) if args.job else "command line"
    spec = build_job_spec(data, source=source, lines=lines)
    if spec.content is not None and _is_clip(relative_to(base)("content", spec.content)):
        return _render_clip(args, spec, lines, base, source)
    _check_output_suffix(args.output)
    job = load_job(spec, relative_to(base), name=args.output.stem)
    load_tensorflow()  # only now, and quietly: bad input above is reported without the wait
    from styled.engine.render import render
    from styled.engine.types import RenderOptions
    from styled.plugins.manager import make_plugin_manager, validate_job

    plugins = make_plugin_manager(args.plugins_dir)
    job = validate_job(plugins, job, relative_to(base), lines=lines, source=source)
    with ProgressBar(enabled=not args.quiet) as bar:
        result = render(job, plugins, RenderOptions(on_progress=bar.update))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_image(args.output, result.image, alpha=result.alpha, bit_depth=spec.bit_depth)
    atomic_write_json(args.output.with_suffix(".json"), result.report())
    print(f"wrote {args.output} ({result.iterations} iterations in {result.seconds:.1f} s, "
          f"loss {result.losses.get('total', 0.0):.4g})", file=sys.stderr)
    return EXIT_OK


def _is_clip(path: Path) -> bool:
    from styled.video import is_clip

    return is_clip(path)


def _render_clip(args: argparse.Namespace, spec, lines: dict[str, int], base: Path, source: str) -> int:
    """``styled render clip.mp4 painting.jpg -o out.mp4``: frames kept in a hidden folder beside OUT
    until the clip is written, so that running the same command again resumes an interrupted clip."""
    from styled.engine.job import relative_to
    from styled.io.files import atomic_write_json
    from styled.video import DEFAULT_MAX_VIDEO_FRAMES, VIDEO_SUFFIXES, require_video_libraries

    if args.output.suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoError(f"the content is a clip, so the result is one too; cannot write '{args.output.suffix}'",
                         where=str(args.output), hint=f"use one of {', '.join(VIDEO_SUFFIXES)}")
    require_video_libraries()
    from styled.io.images import DEFAULT_MAX_PIXELS
    from styled.video.render import FrameStore, load_clip_job, render_clip, write_result

    clip_job = load_clip_job(spec, relative_to(base), name=args.output.stem, max_pixels=DEFAULT_MAX_PIXELS,
                             max_frames=DEFAULT_MAX_VIDEO_FRAMES)
    clip_job.check_output(args.output)
    load_tensorflow()
    from styled.plugins.manager import make_plugin_manager, validate_job

    plugins = make_plugin_manager(args.plugins_dir)
    clip_job = dataclasses.replace(clip_job, job=validate_job(plugins, clip_job.job, relative_to(base), lines=lines,
                                                             source=source))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    store = FrameStore(args.output.with_name(f".{args.output.name}.frames"))
    from styled.engine.types import RenderOptions

    with ProgressBar(enabled=not args.quiet) as bar:
        result = render_clip(clip_job, plugins, store, RenderOptions(on_progress=bar.update))
    frames = args.output.with_name(f"{args.output.stem}_frames") if spec.frames else None
    warnings = write_result(result, args.output, frames)
    report = result.report()
    if warnings:
        report["warnings"] = warnings
    atomic_write_json(args.output.with_suffix(".json"), report)
    store.remove()
    per_frame = report["seconds_per_frame"]
    print(f"wrote {args.output} ({len(result.records)} frames in {result.seconds:.1f} s"
          + (f", {per_frame:.1f} s per frame" if per_frame else "") + ")", file=sys.stderr)
    return EXIT_OK


def _check_output_suffix(path: Path) -> None:
    from styled.io.images import SAVE_FORMATS

    if path.suffix.lower() not in SAVE_FORMATS:
        raise ImageError(f"cannot write '{path.suffix or 'no suffix'}' images", where=str(path),
                         hint=f"use one of {', '.join(sorted(SAVE_FORMATS))}")


class ProgressBar:
    """A tqdm bar per scale: scale, iteration, loss and ETA for the whole render."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._bar = None
        self._scale = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def update(self, progress) -> None:
        if not self.enabled:
            return
        if progress.frames:
            self._update_frames(progress)
            return
        from tqdm import tqdm

        from styled.engine.types import clock

        if progress.scale != self._scale:
            if self._bar is not None:
                self._bar.close()
            self._scale = progress.scale
            self._bar = tqdm(total=progress.iterations, unit="it", leave=True, dynamic_ncols=True,
                             desc=f"scale {progress.scale}/{progress.scales} {progress.width}x{progress.height}")
        eta = clock(progress.eta)
        tile = f"tile {progress.tile}/{progress.tiles}" if progress.tiles and progress.tile < progress.tiles else ""
        parts = (tile, progress.loss_text(), f"total eta {eta}")
        self._bar.set_postfix_str(", ".join(part for part in parts if part), refresh=progress.tiles > 0)
        self._bar.update(progress.iteration - self._bar.n)

    def _update_frames(self, progress) -> None:
        """A clip: one bar of frames; the frame's scale, iteration and loss beside it."""
        from tqdm import tqdm

        from styled.engine.types import clock

        if self._bar is None:
            self._bar = tqdm(total=progress.frames, unit="frame", leave=True, dynamic_ncols=True,
                             desc=f"frames {progress.width}x{progress.height}")
        self._bar.set_postfix_str(f"frame {progress.frame}: scale {progress.scale}/{progress.scales}, iteration "
                                  f"{progress.iteration}/{progress.iterations}, {progress.loss_text() or 'loss —'}, "
                                  f"total eta {clock(progress.eta)}", refresh=False)
        self._bar.update(progress.frame - 1 - self._bar.n)


# --- plugins ------------------------------------------------------------------------------------


@subcommand
def add_plugins(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plugins", help="list the plugins: name, where each came from, its hooks and its options",
        description="List every plugin: the built-ins, the first-party plugins, a plugins folder's and "
                    "installed packages' (entry point group 'styled'). A job turns a plugin on with "
                    "'plugins: {NAME: {OPTION: VALUE}}'.",
    )
    parser.add_argument("--plugins-dir", type=Path, metavar="DIR", help="also load every *.py in DIR")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="also load the plugins_dir of this daemon config")
    parser.add_argument("--json", action="store_true", help="print JSON for programs")
    parser.set_defaults(func=run_plugins)


def run_plugins(args: argparse.Namespace) -> int:
    import json

    plugins_dir = args.plugins_dir
    if plugins_dir is None and args.config is not None:
        from styled.daemon.config import load_daemon_config

        plugins_dir = load_daemon_config(args.config).plugins_dir
    load_tensorflow()
    from styled.plugins.manager import (
        describe_plugins,
        make_plugin_manager,
        plugin_report,
        plugin_text,
    )

    infos = describe_plugins(make_plugin_manager(plugins_dir))
    if args.json:
        print(json.dumps([plugin_report(info) for info in infos], indent=2, default=str))
    else:
        print("\n\n".join(plugin_text(info) for info in infos))
    return EXIT_OK


# --- doctor -------------------------------------------------------------------------------------


@subcommand
def add_doctor(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor", help="show the devices, what precision was measured on each, and what 'auto' uses",
        description="List the devices TensorFlow sees and, for each, the speed of a VGG pass in each "
                    "precision (measured on first use and cached), and the precision 'auto' picks.",
    )
    parser.add_argument("--remeasure", action="store_true", help="measure again instead of using the cache")
    parser.add_argument("--json", action="store_true", help="print JSON for programs")
    parser.set_defaults(func=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    import json
    import platform

    load_tensorflow()
    import tensorflow as tf

    from styled import __version__
    from styled.nets.devices import available_devices
    from styled.nets.precision import CACHE_FILE, XLA_SHAPE, calibration_for
    from styled.nets.weights import cache_root

    found = {device.name: calibration_for(device, remeasure=args.remeasure) for device in available_devices()}
    if args.json:
        print(json.dumps({"styled": __version__, "tensorflow": tf.__version__, "python": platform.python_version(),
                          "cache": str(cache_root() / CACHE_FILE),
                          "devices": {name: c.to_dict() for name, c in found.items()}}, indent=2))
        return EXIT_OK
    print(f"styled {__version__}, TensorFlow {tf.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPU cores")
    for name, calibration in found.items():
        print(f"{name}: {calibration.key.split(' | ')[1]}")
        for precision, seconds in calibration.seconds.items():
            error = calibration.errors.get(precision, 0.0)
            print(f"  {precision:<9} {seconds:7.3f} s per VGG pass, loss within {error:.1e} of float32")
        for precision, (xla, plain) in calibration.xla.items():
            print(f"  {precision:<9} {xla:7.3f} s with XLA, {plain:.3f} s without, at {XLA_SHAPE[1]}x{XLA_SHAPE[0]}")
        print(f"  precision: auto uses {calibration.chosen}, XLA {'on' if calibration.xla_pays(calibration.chosen) else 'off'} "
              f"(measured {calibration.measured_at})")
    print(f"measurements are cached in {cache_root() / CACHE_FILE}; --remeasure measures again")
    return EXIT_OK


# --- the daemon: serve, submit, status -----------------------------------------------------------


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("config.yaml"), metavar="FILE",
                        help="the daemon config (default: ./config.yaml)")


@subcommand
def add_serve(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="watch the inbox and render every job dropped into it (the daemon)",
        description="Render each job dropped into the inbox and deliver it to the outbox (or failed/). "
                    "SIGTERM/SIGINT checkpoint the running job and stop; SIGHUP reloads the config. "
                    "See docs/daemon.md.",
    )
    _add_config_option(parser)
    parser.add_argument("--once", action="store_true",
                        help="process everything in the inbox, then exit: 0 if every job was delivered, "
                             "1 if any failed")
    parser.add_argument("--web", action="store_true",
                        help="also serve the web page (config section web:, docs/web.md) while the daemon runs")
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from styled.daemon.config import load_daemon_config
    from styled.daemon.service import Daemon

    config = load_daemon_config(args.config)  # a bad config fails fast, before TensorFlow loads
    page = _page_thread(config) if args.web else None
    if config.cluster is None:  # a cluster's workers load TensorFlow, the daemon does not
        load_tensorflow()
    if page is not None:
        page.start()
    try:
        summary = Daemon(config, config_path=args.config, once=args.once, manage_log_level=not args.debug,
                         keep_signals=True).run()
    finally:
        if page is not None:
            page.stop()
    # The daemon has stopped cleanly; a stop signal that arrives while Python tears down (which
    # puts back the default action of signals it handled, though not of ignored ones) must not
    # turn that into a death by signal.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, signal.SIG_IGN)
    # A failed job is the job's business: only --once, which drains the inbox for a script, says so.
    return EXIT_FAILED if args.once and summary.failed else EXIT_OK


def _page_thread(config):  # noqa: ANN001, ANN202 - the types live in the optional web extra
    from styled.web import require_web_libraries

    require_web_libraries()
    from styled.web.server import PageThread, make_server

    return PageThread(make_server(config))


@subcommand
def add_web(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "web", help="serve the studio's web page: the queue live, results, failures, a submit form",
        description="Serve the page for the spool of the daemon config (docs/web.md). It reads the spool's "
                    "files and writes only into the inbox, so it runs with or without the daemon, on any "
                    "machine that sees the spool. SIGTERM or Ctrl-C stops it.",
    )
    _add_config_option(parser)
    parser.add_argument("--host", help="listen on this address instead of web.host")
    parser.add_argument("--port", type=int, help="listen on this port instead of web.port (0: any free port)")
    parser.set_defaults(func=run_web)


def run_web(args: argparse.Namespace) -> int:
    from styled.daemon.config import load_daemon_config
    from styled.web import require_web_libraries

    config = load_daemon_config(args.config)
    require_web_libraries()
    from styled.web.server import make_server

    server = make_server(config, host=args.host, port=args.port)
    # uvicorn handles SIGTERM and SIGINT while it runs (it stops taking requests, then returns) and
    # then raises the signal again for the handler it found: this one, so that a stop is a clean exit.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda signum, frame: None)
    server.run()
    return EXIT_OK if server.started else EXIT_FAILED


@subcommand
def add_submit(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit", help="put a job into the daemon's inbox",
        description="Copy CONTENT and STYLE images with a job.yaml into a job folder, written under a "
                    "temporary name and renamed into the inbox, so the daemon never sees half of it.",
    )
    _add_job_arguments(parser, "+")
    parser.add_argument("--name", help="the job's name (default: the content image's name)")
    _add_config_option(parser)
    parser.set_defaults(func=run_submit)


def run_submit(args: argparse.Namespace) -> int:
    from styled.daemon.config import load_daemon_config
    from styled.daemon.submit import submit

    paths = [Path(p) for p in args.images]
    if not args.texture and len(paths) < 2:
        raise JobSpecError("give a content image and at least one style image",
                           hint="styled submit CONTENT STYLE, or --texture STYLE for a texture")
    content, styles = (None, paths) if args.texture else (paths[0], paths[1:])
    config = load_daemon_config(args.config)
    folder = submit(config, content, styles, args.overrides, name=args.name)
    print(folder)
    return EXIT_OK


@subcommand
def add_status(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status", help="show the daemon's jobs: waiting, running (with progress and ETA), done, failed",
        description="Read the spool folders, so it works whether or not the daemon is running.",
    )
    _add_config_option(parser)
    parser.add_argument("--json", action="store_true", help="print the status as JSON, for programs")
    parser.set_defaults(func=run_status)


def run_status(args: argparse.Namespace) -> int:
    from styled.daemon.config import load_daemon_config
    from styled.daemon.status import format_json, format_status, read_status

    status = read_status(load_daemon_config(args.config))
    sys.stdout.write(format_json(status) if args.json else format_status(status) + "\n")
    return EXIT_OK


@subcommand
def add_cancel(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cancel", help="cancel a waiting or running job; it lands in failed/NAME, ready to retry",
        description="Ask the daemon to cancel the job NAME. A waiting job leaves the queue; a running one stops "
                    "at its next iteration, on any worker, and keeps its checkpoint. Either lands in failed/NAME "
                    "with error.txt saying when it was cancelled; `styled retry NAME` resumes it.",
    )
    parser.add_argument("name", help="the job's name, as `styled status` shows it")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="wait up to SECONDS until the job is in failed/ (default: return at once)")
    _add_config_option(parser)
    parser.set_defaults(func=run_cancel)


def run_cancel(args: argparse.Namespace) -> int:
    from styled.daemon.config import load_daemon_config
    from styled.daemon.control import describe, request_cancel, wait_until_failed

    config = load_daemon_config(args.config)
    found = request_cancel(config, args.name, by="styled cancel")
    print(f"cancelling {args.name} ({describe(found)}); it will land in {config.failed / args.name}")
    if args.wait > 0:
        landed = wait_until_failed(config, args.name, args.wait)
        if landed is None:
            print(f"styled: {args.name} is not in {config.failed} after {args.wait:g} s; is the daemon running?",
                  file=sys.stderr)
            return EXIT_FAILED
        print(landed)
    return EXIT_OK


@subcommand
def add_retry(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "retry", help="put a failed or cancelled job back into the queue; it resumes from its checkpoint",
        description="Move failed/NAME's inputs (and checkpoint) back into the inbox as a job folder, as the web "
                    "page's Retry does. The render resumes from the checkpoint; its report's resumed_from says so.",
    )
    parser.add_argument("name", help="the job's folder name in failed/")
    _add_config_option(parser)
    parser.set_defaults(func=run_retry)


def run_retry(args: argparse.Namespace) -> int:
    from styled.daemon.config import load_daemon_config
    from styled.daemon.control import retry_failed

    print(retry_failed(load_daemon_config(args.config), args.name))
    return EXIT_OK


@subcommand
def add_priority(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "priority", help="change a waiting job's priority (higher is taken first)",
        description="Set the priority of the waiting job NAME: in its spec while it is in the inbox, through the "
                    "daemon once it is claimed. A running job is not pre-empted.",
    )
    parser.add_argument("name", help="the job's name, as `styled status` shows it")
    parser.add_argument("priority", type=int, help="a whole number; higher first, default 0")
    _add_config_option(parser)
    parser.set_defaults(func=run_priority)


def run_priority(args: argparse.Namespace) -> int:
    from styled.daemon.config import load_daemon_config
    from styled.daemon.control import describe, set_priority
    from styled.engine.spec import MAX_PRIORITY

    if abs(args.priority) > MAX_PRIORITY:
        raise JobSpecError(f"must be from -{MAX_PRIORITY} to {MAX_PRIORITY}, got {args.priority}", key="priority")
    found = set_priority(load_daemon_config(args.config), args.name, args.priority, by="styled priority")
    print(f"{args.name} ({describe(found)}) now has priority {args.priority}")
    return EXIT_OK


@subcommand
def add_worker(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker", help="run a Dask worker for a daemon with cluster.scheduler set (docs/cluster.md)",
        description="Run `dask worker SCHEDULER` with what styled needs: one render at a time (one thread of "
                    "Dask work), and with --gpu N only GPU N, offered to GPU jobs as the resource GPU=1; start "
                    "it again when it exits because its scheduler went away. The daemon configures TensorFlow "
                    "in the worker when it connects. The spool must be mounted at the same path as on the "
                    "daemon's machine. SIGTERM or Ctrl-C stops it (a running render is asked to checkpoint).",
    )
    parser.add_argument("scheduler", help="the scheduler's address, e.g. tcp://render-1:8786")
    parser.add_argument("--gpu", type=int, metavar="N", help="render on GPU N only (run one worker per GPU)")
    parser.add_argument("--name", help="the worker's name in `styled status` and the dashboard")
    parser.set_defaults(func=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    from styled.daemon.cluster_command import WorkerSupervisor, worker_command

    supervisor = WorkerSupervisor(*worker_command(args.scheduler, gpu=args.gpu, name=args.name))
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda signum, frame: supervisor.stop(signum))
    supervisor.run()
    return EXIT_OK


# --- main ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from styled import __version__

    parser = argparse.ArgumentParser(prog="styled", description="Turn photos into paintings.")
    parser.add_argument("--version", action="version", version=f"styled {__version__}")
    parser.add_argument("--debug", action="store_true", help="log details and show tracebacks")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit code. Errors become one line on stderr, never a traceback."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.debug)
    try:
        return args.func(args)
    except StyledError as error:
        print(f"styled: error: {error}", file=sys.stderr)
        return EXIT_CODES.get(type(error), EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        print("styled: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - the last line of defence against tracebacks
        if args.debug:
            raise
        print(f"styled: error: {type(error).__name__}: {error} (run with --debug for details)", file=sys.stderr)
        return EXIT_FAILED


def _configure_logging(debug: bool) -> None:
    level = logging.DEBUG if debug else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
