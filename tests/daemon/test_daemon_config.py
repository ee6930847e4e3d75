"""The daemon config: defaults, path resolution, and errors that name the key, line and fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from styled.daemon.config import (
    DAEMON_FIELDS,
    DEFAULT_MAX_IMAGE_PIXELS,
    DaemonConfig,
    load_daemon_config,
)
from styled.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
FOLDERS = "inbox: in\noutbox: out\nfailed: bad\nwork: .work\n"


def load(tmp_path: Path, text: str) -> DaemonConfig:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_daemon_config(path)


def error_of(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return caught.value


def test_relative_folders_resolve_against_the_config_files_folder(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    config = load(tmp_path, FOLDERS + "library: [styles, /srv/shared]\nplugins_dir: plugins\n")
    assert config.inbox == tmp_path / "in"
    assert config.work == tmp_path / ".work"
    assert config.library == (tmp_path / "styles", Path("/srv/shared"))
    assert config.plugins_dir == tmp_path / "plugins"
    assert config.devices == ("cpu",)
    assert config.source == tmp_path / "config.yaml"


def test_every_setting_is_read(tmp_path):
    config = load(tmp_path, FOLDERS + """
devices: [gpu:0, gpu:1]
defaults: {size: 256, style_weight: 100}
settle_seconds: 1.5
rescan_seconds: 10
checkpoint_seconds: 5
max_attempts: 2
max_image_pixels: 1000000
max_spec_bytes: 4096
missing_file_seconds: 3
progress_seconds: 1
log_progress_percent: 10
log_level: debug
""")
    assert config.devices == ("gpu:0", "gpu:1")
    assert config.defaults == {"size": 256, "style_weight": 100}
    assert (config.settle_seconds, config.rescan_seconds, config.checkpoint_seconds) == (1.5, 10.0, 5.0)
    assert (config.max_attempts, config.max_image_pixels, config.max_spec_bytes) == (2, 1_000_000, 4096)
    assert config.log_level == "DEBUG" and config.log_progress_percent == 10


def test_unknown_key_names_its_line_and_the_nearest_key(tmp_path):
    error = error_of(tmp_path, FOLDERS + "setle_seconds: 3\n")
    assert error.key == "setle_seconds" and error.line == 5
    assert "settle_seconds" in error.hint
    assert "line 5" in str(error) and "unknown key" in str(error)


def test_bad_value_names_the_key_value_and_allowed_range(tmp_path):
    error = error_of(tmp_path, FOLDERS + "max_attempts: 0\n")
    assert error.key == "max_attempts" and "at least 1" in error.message and error.line == 5
    assert "must be" in error_of(tmp_path, FOLDERS + "settle_seconds: soon\n").message


def test_bad_device_and_log_level(tmp_path):
    assert "gpu:N" in error_of(tmp_path, FOLDERS + "devices: [tpu]\n").message
    error = error_of(tmp_path, FOLDERS + "log_level: INFOO\n")
    assert error.key == "log_level" and "INFO" in error.hint


def test_defaults_are_checked_as_job_spec_keys(tmp_path):
    error = error_of(tmp_path, FOLDERS + "defaults:\n  sise: 3\n")
    assert error.key == "defaults.sise" and error.line == 6 and "size" in error.hint
    error = error_of(tmp_path, FOLDERS + "defaults:\n  size: huge\n")
    assert error.key == "defaults.size" and "whole number" in error.message


def test_missing_folder_key_is_an_error_with_a_fix(tmp_path):
    error = error_of(tmp_path, "inbox: in\noutbox: out\nfailed: bad\n")
    assert error.key == "work" and "work:" in error.hint


def test_spool_folders_must_be_distinct(tmp_path):
    error = error_of(tmp_path, "inbox: in\noutbox: in/out\nfailed: bad\nwork: w\n")
    assert error.key == "outbox" and "inside" in error.message
    assert "same folder" in error_of(tmp_path, "inbox: a\noutbox: a\nfailed: b\nwork: c\n").message


def test_yaml_syntax_error_gives_line_and_column(tmp_path):
    error = error_of(tmp_path, FOLDERS + "devices: [cpu\n")
    assert isinstance(error, ConfigError)
    assert "YAML syntax error" in error.message and "column" in error.message and error.line is not None


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_daemon_config(tmp_path / "absent.yaml")
    assert "mapping" in error_of(tmp_path, "- inbox\n- outbox\n").message


def test_default_pixel_limit_matches_the_image_loader():
    from styled.io.images import DEFAULT_MAX_PIXELS

    assert DEFAULT_MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS


def test_shipped_config_is_valid_and_documents_every_key():
    """config.yaml at the top of the repo loads, sets every key, and comments each one."""
    path = REPO / "config.yaml"
    config = load_daemon_config(path)
    assert config.inbox == REPO / "examples" / "inbox"
    text = path.read_text()
    data = yaml.safe_load(text)
    keys = {field.name for field in DAEMON_FIELDS}
    assert set(data) == keys, f"config.yaml should set every key; missing {keys - set(data)}"
    lines = text.splitlines()
    for key in keys:
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{key}:"))
        assert lines[index - 1].lstrip().startswith("#"), f"'{key}' in config.yaml has no comment above it"


def test_every_key_is_documented_in_docs_daemon():
    text = (REPO / "docs" / "daemon.md").read_text()
    keys = [field.name for field in DAEMON_FIELDS]
    missing = [key for key in keys if f"`{key}`" not in text]
    assert not missing, f"docs/daemon.md does not document {missing}"
