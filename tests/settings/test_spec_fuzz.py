"""Property tests: whatever a job spec holds, reading it raises only styled's own errors, quickly,
with one short line; never a RecursionError, a ValueError or a hang."""

from __future__ import annotations

import os
import time

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from styled.engine.spec import JOB_FIELDS, build_job_spec
from styled.errors import StyledError
from styled.plugins import make_plugin_manager, validate_job_plugins
from styled.settings.sources import parse_yaml

#: A message is one line of bounded length whatever the spec held (the longest ones list the
#: valid keys), and quotes no more than a short prefix of any value.
MAX_MESSAGE_CHARS = 1000
QUOTE_PROBE_CHARS = 100
SECONDS_PER_SPEC = 2.0
KEYS = [field.name for field in JOB_FIELDS] + ["plugins.symmetry", "sise", "", "ü" * 3]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**100, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=80),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=100, max_size=2000),
    st.sampled_from(["relu4_2", "gpu:3", "auto", "../x.png", "/etc/passwd", "~/a.png", "a\\b.png"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) |
                      st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), inner, max_size=5),
                      max_leaves=30)
PLUGIN_NAMES = ["long_range", "symmetry", "inpainting", "season_transfer", "nope"]
PLUGIN_OPTIONS = ["weight", "mirror", "mode", "mask", "region", "source", "preset", "layers", "shifts", "x"]
plugin_tables = st.dictionaries(st.sampled_from(PLUGIN_NAMES),
                                st.none() | st.booleans() | st.dictionaries(st.sampled_from(PLUGIN_OPTIONS), values,
                                                                            max_size=4), max_size=3)
specs = st.dictionaries(st.sampled_from(KEYS), values, max_size=12) | st.builds(
    lambda base, plugins: {**base, "plugins": plugins},
    st.fixed_dictionaries({"content": st.just("photo.png"), "style": st.just("style.png")}), plugin_tables)


def _mutations(text: str) -> st.SearchStrategy[str]:
    return st.sampled_from([
        text,
        text + "size: 32\nsize: 64\n",  # duplicate keys
        "anchor: &a [x, y]\n" + text + "again: *a\n",  # aliases
        "content: !!python/object/apply:os.system [echo]\n" + text,  # a tag
        "style: " + "[" * 200 + "]" * 200 + "\n" + text,  # deep nesting
        "size: " + "7" * 5000 + "\n" + text,  # a huge number
        text[: len(text) // 2],  # cut in the middle
        "\t" + text,  # a tab where YAML wants spaces
        text.replace(":", ": :", 1),
    ])


spec_texts = specs.map(lambda data: yaml.safe_dump(data, allow_unicode=True, sort_keys=False)).flatmap(_mutations) | \
    st.text(max_size=300)

PLUGINS = make_plugin_manager()


def read_spec(text: str):
    data, lines = parse_yaml(text, "job.yaml")
    spec = build_job_spec(data, source="job.yaml", lines=lines)
    return validate_job_plugins(PLUGINS, spec, lines=lines, source="job.yaml")


@settings(max_examples=int(os.environ.get("STYLED_FUZZ_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec_texts)
def test_any_spec_text_gives_a_spec_or_one_short_styled_error(text):
    started = time.monotonic()
    try:
        read_spec(text)
    except StyledError as error:
        message = str(error)
        assert "\n" not in message, f"a message is one line: {message!r}"
        assert len(message) <= MAX_MESSAGE_CHARS, f"{len(message)} characters: {message[:200]}..."
        probes = (text[i:i + QUOTE_PROBE_CHARS] for i in range(0, len(text) - QUOTE_PROBE_CHARS, QUOTE_PROBE_CHARS // 2))
        assert not any(probe in message for probe in probes), f"a long stretch of the spec is quoted: {message[:300]}"
    assert time.monotonic() - started < SECONDS_PER_SPEC
