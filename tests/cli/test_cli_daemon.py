"""`styled submit`, `styled status` and `styled serve` from the command line; the systemd unit."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

import pytest
import yaml
from daemon_support import make_image, run_cli, write_config

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def spool(tmp_path) -> Path:
    return write_config(tmp_path)


def test_submit_drops_a_complete_job_folder_and_prints_it(spool, tmp_path):
    content = make_image(tmp_path / "images" / "beach.png")
    style = make_image(tmp_path / "images" / "waves.jpg", "style/starry_night.jpg")
    result = run_cli("submit", str(content), str(style), "--set", "iterations=7", "--set", "size=64",
                     "--config", str(spool))
    assert result.returncode == 0, result.stderr
    folder = Path(result.stdout.strip())
    assert folder == tmp_path / "inbox" / "beach"
    assert json.loads(json.dumps(yaml.safe_load((folder / "job.yaml").read_text()))) == {
        "content": "beach.png", "style": ["waves.jpg"], "iterations": 7, "size": 64}
    assert (folder / "beach.png").read_bytes() == content.read_bytes()
    again = run_cli("submit", str(content), str(style), "--name", "beach", "--config", str(spool))
    assert Path(again.stdout.strip()).name == "beach-2"


def test_submit_refuses_bad_input_with_exit_2_and_leaves_the_inbox_alone(spool, tmp_path):
    content = make_image(tmp_path / "photo.png")
    bad_key = run_cli("submit", str(content), str(content), "--set", "sise=3", "--config", str(spool))
    assert bad_key.returncode == 2 and "unknown key 'sise'" in bad_key.stderr and "size" in bad_key.stderr
    missing = run_cli("submit", str(content), str(tmp_path / "nope.jpg"), "--config", str(spool))
    assert missing.returncode == 2 and "nope.jpg" in missing.stderr and "does not exist" in missing.stderr
    one_image = run_cli("submit", str(content), "--config", str(spool))
    assert one_image.returncode == 2 and "style image" in one_image.stderr
    assert list((tmp_path / "inbox").iterdir()) == []


def test_status_lists_waiting_running_done_and_failed(spool, tmp_path):
    content = make_image(tmp_path / "photo.png")
    assert run_cli("submit", str(content), str(content), "--config", str(spool)).returncode == 0
    running = tmp_path / "work" / "portrait"
    running.mkdir()
    (running / "state.json").write_text(json.dumps({"name": "portrait", "status": "rendering", "attempts": 1,
                                                    "device": "cpu", "resumed_from": [{"iteration": 4}]}))
    (running / "progress.json").write_text(json.dumps({"scale": 2, "scales": 3, "iteration": 40, "iterations": 100,
                                                       "percent": 57.0, "eta": 75.0, "loss": 1.5}))
    (tmp_path / "outbox" / "sunset").mkdir()
    (tmp_path / "outbox" / "sunset" / "report.json").write_text(json.dumps({"job": {"delivered": "t"}}))
    (tmp_path / "failed" / "broken").mkdir()
    (tmp_path / "failed" / "broken" / "error.json").write_text(json.dumps({"text": "job.yaml, line 3: bad"}))

    text = run_cli("status", "--config", str(spool))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert "daemon   not running" in lines
    assert "waiting  1" in lines and "  photo  (folder, priority 0)" in lines
    assert "running  1" in lines
    assert any(re.fullmatch(r"  portrait  scale 2/3  iteration 40/100  57%  ETA 1:15  on cpu  \(resumed\)", line)
               for line in lines), text.stdout
    assert "done     1" in lines and "  sunset" in lines
    assert "failed   1" in lines and "  broken: job.yaml, line 3: bad" in lines

    data = json.loads(run_cli("status", "--json", "--config", str(spool)).stdout)
    assert [job["name"] for job in data["waiting"]] == ["photo"]
    assert data["running"][0]["progress"]["iteration"] == 40 and data["daemon_pid"] is None


def test_a_bad_config_stops_every_command_with_exit_2_and_the_line(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("inbox: in\noutbox: out\nfailed: f\nwork: w\nrescan_secs: 3\n")
    for command in ("serve", "status"):
        result = run_cli(command, "--config", str(config))
        assert result.returncode == 2, result.stderr
        assert "line 5" in result.stderr and "rescan_seconds" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = run_cli("serve", "--once", cwd=empty)
    assert missing.returncode == 2 and "config.yaml: the config file does not exist" in missing.stderr


def test_the_systemd_unit_has_what_the_daemon_relies_on():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read_string((REPO / "styled.service").read_text())
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "styled serve" in service["ExecStart"]
    assert service["Restart"] == "on-failure" and int(service["WatchdogSec"]) > 0
    shipped = yaml.safe_load((REPO / "config.yaml").read_text())
    assert int(service["TimeoutStopSec"]) > shipped["checkpoint_seconds"]
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    assert service["ReadWritePaths"]
    text = (REPO / "styled.service").read_text()
    assert re.search(r"^#DeviceAllow=/dev/nvidia0 rw$", text, re.MULTILINE)
    assert re.search(r"^#DeviceAllow=/dev/nvidiactl rw$", text, re.MULTILINE)
