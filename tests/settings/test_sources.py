"""Settings files are parsed strictly: what YAML allows but a settings file never needs is refused
with its line, and nothing a file holds can raise anything but the file's own error."""

from __future__ import annotations

import pytest

from styled.errors import ConfigError, JobSpecError
from styled.settings.sources import MAX_DEPTH, parse_value, parse_yaml


@pytest.mark.parametrize(("text", "line", "words"), [
    ("size: 32\nstyle: &s a.png\ncontent: *s\n", 2, "anchors and aliases"),
    ("content: a.png\nstyle: !!python/name:os.system b\n", 2, "tags"),
    ("size: 8193\nstyle: a.png\nsize: 32\n", 3, "'size' is given twice"),
    ("plugins:\n  symmetry: {}\n  symmetry: {mirror: both}\n", 3, "'symmetry' is given twice"),
    ("style: " + "[" * 100 + "]" * 100 + "\n", 1, f"nested more than {MAX_DEPTH} levels"),
    ("content: a.png\nsize: " + "1" * 3000 + "\n", 2, "3,000 characters"),
    ("content: a.png\nstyle: [b.png\n", 3, "YAML syntax error"),
])
def test_refused_yaml_names_the_line(text, line, words):
    with pytest.raises(JobSpecError) as caught:
        parse_yaml(text, "job.yaml")
    assert caught.value.line == line and words in caught.value.message and caught.value.where == "job.yaml"


def test_the_error_type_is_the_callers():
    with pytest.raises(ConfigError, match="anchors"):
        parse_yaml("a: &x 1\nb: *x\n", "config.yaml", ConfigError)


def test_plain_yaml_still_reads_with_the_line_of_every_key():
    data, lines = parse_yaml("content: a.png\nplugins:\n  symmetry:\n    mirror: both\n")
    assert data == {"content": "a.png", "plugins": {"symmetry": {"mirror": "both"}}}
    assert lines == {"content": 1, "plugins": 2, "plugins.symmetry": 3, "plugins.symmetry.mirror": 4}


def test_set_values_parse_strictly_and_fall_back_to_text():
    assert parse_value("[3, 1]") == [3, 1] and parse_value("true") is True
    assert parse_value("*alias") == "*alias" and parse_value("[" * 50) == "[" * 50
