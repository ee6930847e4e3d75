"""What comes with every result: report.json, a contact sheet and a loss curve.

People would rather look than read, so each result ships ``sheet.png`` (content | style(s) |
result side by side) and ``loss.png`` (the total loss against iterations, one line per scale).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from styled.io.files import atomic_write_bytes, atomic_write_json

if TYPE_CHECKING:  # pragma: no cover
    from styled.engine.job import Job
    from styled.engine.types import Result

log = logging.getLogger(__name__)

REPORT_FILE = "report.json"
SHEET_FILE = "sheet.png"
LOSS_PLOT_FILE = "loss.png"
#: Panels are scaled to this height: big enough to judge brush strokes, small enough to mail.
SHEET_PANEL_HEIGHT = 256
SHEET_GAP = 8
SHEET_LABEL_HEIGHT = 20
SHEET_BACKGROUND = (255, 255, 255)
SHEET_TEXT = (40, 40, 40)
LOSS_FIGURE_INCHES = (6.4, 4.0)
LOSS_FIGURE_DPI = 100
LOSS_FIGURE_MARGINS = {"left": 0.12, "right": 0.97, "bottom": 0.12, "top": 0.92}


# --- report.json --------------------------------------------------------------------------------


def build_report(result: Result, job_info: Mapping[str, Any] | None = None,
                 inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``result.report()`` plus, for the daemon, the job's life (``job``) and its input names."""
    report = dict(result.report())
    if inputs is not None:
        report["inputs"] = dict(inputs)
    if job_info is not None:
        report["job"] = dict(job_info)
    return report


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    atomic_write_json(path, report)


def write_extras(folder: Path, job: Job, result: Result) -> list[str]:
    """Write sheet.png and loss.png into ``folder``; return warnings instead of failing the job.

    A finished render is worth delivering even if a picture of it cannot be drawn.
    """
    return _draw(folder, {SHEET_FILE: lambda path: save_contact_sheet(path, job, result.image),
                          LOSS_PLOT_FILE: lambda path: save_loss_plot(path, result.history, job.spec.scale_sizes())})


def write_clip_extras(folder: Path, job: Job, first_result: np.ndarray,
                      records: Sequence[Mapping[str, Any]]) -> list[str]:
    """A clip's sheet.png (its first frame) and loss.png (the loss and temporal error per frame),
    with warnings instead of failures as in write_extras."""
    return _draw(folder, {SHEET_FILE: lambda path: save_contact_sheet(path, job, first_result),
                          LOSS_PLOT_FILE: lambda path: save_frame_plot(path, records)})


def _draw(folder: Path, pictures: Mapping[str, Callable[[Path], None]]) -> list[str]:
    """Write each picture into ``folder``; a picture that cannot be drawn is a warning, not a failure."""
    warnings = []
    for name, write in pictures.items():
        try:
            write(folder / name)
        except Exception as error:  # noqa: BLE001 - a finished render is worth delivering without it
            log.warning("could not draw %s: %s", name, error)
            warnings.append(f"{name}: {type(error).__name__}: {error}")
    return warnings


# --- contact sheet ------------------------------------------------------------------------------


def contact_sheet(panels: Sequence[tuple[str, np.ndarray]], height: int = SHEET_PANEL_HEIGHT) -> np.ndarray:
    """Label and place (H, W, 3) float images side by side at one height; return float RGB in [0, 1]."""
    from PIL import Image, ImageDraw

    scaled = [(label, _to_height(pixels, height)) for label, pixels in panels]
    width = sum(p.shape[1] for _, p in scaled) + SHEET_GAP * (len(scaled) + 1)
    canvas = Image.new("RGB", (width, height + SHEET_LABEL_HEIGHT + 2 * SHEET_GAP), SHEET_BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    left = SHEET_GAP
    for label, pixels in scaled:
        canvas.paste(Image.fromarray(_to_uint8(pixels)), (left, SHEET_GAP))
        draw.text((left, SHEET_GAP + height + 4), label, fill=SHEET_TEXT)
        left += pixels.shape[1] + SHEET_GAP
    return np.asarray(canvas, np.float32) / 255.0


def sheet_panels(job: Job, result_image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """content | style 1 | style 2 ... | result, labelled with the file names."""
    panels = []
    if job.content is not None:
        panels.append((f"content: {_label(job.content, 'content')}", job.content.pixels))
    for index, style in enumerate(job.styles, start=1):
        panels.append((f"style {index}: {_label(style, 'style')}", style.pixels))
    panels.append(("result", result_image))
    return panels


def save_contact_sheet(path: Path, job: Job, result_image: np.ndarray) -> None:
    from styled.io.images import save_image

    height = min(SHEET_PANEL_HEIGHT, max(result_image.shape[0], SHEET_PANEL_HEIGHT // 2))
    save_image(path, contact_sheet(sheet_panels(job, result_image), height))


def _label(image: Any, fallback: str) -> str:
    path = getattr(image, "path", None)
    return Path(path).name if path else fallback


def _to_height(pixels: np.ndarray, height: int) -> np.ndarray:
    from styled.io.images import resize_to

    width = max(1, round(pixels.shape[1] * height / pixels.shape[0]))
    return resize_to(np.asarray(pixels, np.float32), width, height)


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    return (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# --- loss plot ----------------------------------------------------------------------------------


def loss_figure(history: Sequence[Mapping[str, float]], scale_sizes: Sequence[int] = ()):
    """A matplotlib Figure (Agg, no pyplot, so it is safe in worker threads) of total loss per scale."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=LOSS_FIGURE_INCHES, dpi=LOSS_FIGURE_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    series = loss_series(history)
    for scale, (steps, totals) in series.items():
        size = f", {scale_sizes[scale - 1]} px" if 0 < scale <= len(scale_sizes) else ""
        axes.plot(steps, totals, label=f"scale {scale}{size}")
    if series:
        if all(t > 0 for _, totals in series.values() for t in totals):
            axes.set_yscale("log")
        axes.legend()
    else:
        axes.text(0.5, 0.5, "no optimisation iterations", ha="center", va="center", transform=axes.transAxes)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("iteration (all scales)")
    axes.set_ylabel("total loss")
    axes.set_title("loss per scale")
    # Fixed margins: tight_layout() measures every label's text and costs more than the plot.
    figure.subplots_adjust(**LOSS_FIGURE_MARGINS)
    return figure


def loss_series(history: Sequence[Mapping[str, float]]) -> dict[int, tuple[list[int], list[float]]]:
    """{scale: (running iteration numbers, total losses)}; the x axis runs on across scales."""
    series: dict[int, tuple[list[int], list[float]]] = {}
    for step, entry in enumerate(history, start=1):
        if "total" not in entry:
            continue
        steps, totals = series.setdefault(int(entry.get("scale", 1)), ([], []))
        steps.append(step)
        totals.append(float(entry["total"]))
    return series


def frame_figure(records: Sequence[Mapping[str, Any]]):
    """A clip's final total loss per frame and, on a second axis, its temporal error."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=LOSS_FIGURE_INCHES, dpi=LOSS_FIGURE_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    frames = [record["frame"] for record in records]
    axes.plot(frames, [record["losses"].get("total", 0.0) for record in records], color="tab:blue")
    axes.set_xlabel("frame")
    axes.set_ylabel("final total loss", color="tab:blue")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    errors = [(record["frame"], record["temporal_error"]) for record in records if record.get("temporal_error") is not None]
    if errors:
        twin = axes.twinx()
        twin.plot(*zip(*errors), color="tab:orange")
        twin.set_ylabel("temporal error (reliable pixels)", color="tab:orange")
    axes.set_title("loss and temporal error per frame")
    figure.subplots_adjust(**{**LOSS_FIGURE_MARGINS, "right": 0.86})
    return figure


def save_frame_plot(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    buffer = io.BytesIO()
    frame_figure(records).savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())


def save_loss_plot(path: Path, history: Sequence[Mapping[str, float]], scale_sizes: Sequence[int] = ()) -> None:
    buffer = io.BytesIO()
    loss_figure(history, scale_sizes).savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
