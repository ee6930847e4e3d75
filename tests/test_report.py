"""report.json, the contact sheet (content | style(s) | result) and the loss curve per scale."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from styled import report
from styled.io.images import Image

RED, GREEN, BLUE = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)


def flat(colour, height=20, width=30) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.float32), (height, width, 3)).copy()


@dataclass(frozen=True)
class FakeSpec:
    def scale_sizes(self):
        return (16, 32)


@dataclass
class FakeJob:
    content: Image | None
    styles: tuple[Image, ...]
    spec: FakeSpec = FakeSpec()


@dataclass
class FakeResult:
    image: np.ndarray
    history: list

    def report(self):
        return {"iterations": len(self.history), "losses": {"total": 1.0}}


HISTORY = [{"scale": 1, "iteration": i, "total": 10.0 / i, "style": 1.0} for i in range(1, 4)] + \
          [{"scale": 2, "iteration": i, "total": 2.0 / i, "style": 0.5} for i in range(1, 6)]


def job(content=True, styles=1) -> FakeJob:
    return FakeJob(
        content=Image(flat(BLUE), None, Path("photo.jpg")) if content else None,
        styles=tuple(Image(flat(GREEN, 40, 40), None, Path(f"style{i}.jpg")) for i in range(styles)),
    )


def test_contact_sheet_places_content_styles_and_result_in_order():
    panels = report.sheet_panels(job(styles=2), flat(RED, 20, 30))
    assert [label.split(":")[0] for label, _ in panels] == ["content", "style 1", "style 2", "result"]
    sheet = report.contact_sheet(panels, height=40)
    assert sheet.shape[0] == 40 + report.SHEET_LABEL_HEIGHT + 2 * report.SHEET_GAP
    middle = report.SHEET_GAP + 20
    row = sheet[middle]
    # content 60 wide, two styles 40 wide, result 60 wide, with gaps between
    starts = [report.SHEET_GAP, 2 * report.SHEET_GAP + 60, 3 * report.SHEET_GAP + 100, 4 * report.SHEET_GAP + 140]
    assert np.allclose(row[starts[0] + 5], BLUE, atol=0.02)
    assert np.allclose(row[starts[1] + 5], GREEN, atol=0.02)
    assert np.allclose(row[starts[2] + 5], GREEN, atol=0.02)
    assert np.allclose(row[starts[3] + 5], RED, atol=0.02)
    assert sheet.shape[1] == starts[3] + 60 + report.SHEET_GAP


def test_texture_sheet_has_no_content_panel(tmp_path):
    panels = report.sheet_panels(job(content=False), flat(RED))
    assert [label.split(":")[0] for label, _ in panels] == ["style 1", "result"]
    report.save_contact_sheet(tmp_path / "sheet.png", job(content=False), flat(RED))
    with PILImage.open(tmp_path / "sheet.png") as picture:
        assert picture.format == "PNG" and picture.height > 0


def test_loss_series_groups_by_scale_on_a_running_axis():
    series = report.loss_series(HISTORY)
    assert list(series) == [1, 2]
    assert series[1][0] == [1, 2, 3] and series[2][0] == [4, 5, 6, 7, 8]
    assert series[2][1][0] == pytest.approx(2.0)


def test_loss_figure_has_a_line_per_scale_with_its_size():
    axes = report.loss_figure(HISTORY, (16, 32)).axes[0]
    assert [line.get_label() for line in axes.get_lines()] == ["scale 1, 16 px", "scale 2, 32 px"]
    assert axes.get_yscale() == "log"


def test_loss_figure_without_iterations_says_so():
    axes = report.loss_figure([]).axes[0]
    assert not axes.get_lines() and "no optimisation" in axes.texts[0].get_text()


def test_save_loss_plot_writes_a_png(tmp_path):
    report.save_loss_plot(tmp_path / "loss.png", HISTORY, (16, 32))
    with PILImage.open(tmp_path / "loss.png") as picture:
        assert picture.format == "PNG" and picture.width >= 400


def test_build_report_adds_the_jobs_life_to_the_engine_report():
    data = report.build_report(FakeResult(flat(RED), HISTORY), {"id": "abc", "received": "t0"},
                               inputs={"content": "photo.jpg"})
    assert data["iterations"] == 8 and data["job"] == {"id": "abc", "received": "t0"}
    assert data["inputs"] == {"content": "photo.jpg"}


def test_write_extras_turns_a_drawing_failure_into_a_warning(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(report, "save_loss_plot", broken)
    warnings = report.write_extras(tmp_path, job(), FakeResult(flat(RED), HISTORY))
    assert (tmp_path / "sheet.png").exists() and not (tmp_path / "loss.png").exists()
    assert warnings == ["loss.png: RuntimeError: no fonts"]
