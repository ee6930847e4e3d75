"""The page's only writes: a job submitted from the form, and a failed job retried. Both land in
the inbox as ``styled submit`` puts a job there (a hidden folder filled, then one rename), so the
daemon never sees half a job.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from styled.daemon.config import DaemonConfig
from styled.daemon.control import retry_failed, retry_spec
from styled.daemon.inbox import JOB_FILE
from styled.daemon.paths import job_name
from styled.daemon.submit import check_job, place_job
from styled.engine.spec import JobSpec
from styled.errors import ImageError, JobSpecError, PluginError, StyledError
from styled.io.files import atomic_write_text, fsync_path
from styled.io.images import load_image
from styled.settings.sources import parse_yaml
from styled.web.view import IMAGE_SUFFIXES, job_folder, library_images

#: The form's fields that are job-spec keys, in the order the form shows them.
FORM_KEYS = ("size", "style_weight", "method", "preserve_colors", "priority")
#: Where an error about another key is shown: the field it came from.
CONTENT_FIELD, STYLE_FIELD, MORE_FIELD, NAME_FIELD = "content", "style", "more", "name"
SAFE_CHARS = re.compile(r"[^\w.\-]+")


class FormErrors(Exception):
    """Errors to show beside the form's fields: {field: message}."""

    def __init__(self, errors: Mapping[str, str]):
        super().__init__("; ".join(f"{key}: {message}" for key, message in errors.items()))
        self.errors = dict(errors)


@dataclass(frozen=True)
class Upload:
    """A file from the form: the name the browser gave (only its suffix is used) and its bytes."""

    filename: str
    stream: BinaryIO


@dataclass(frozen=True)
class Submission:
    """What the submit form sent, before it is checked."""

    name: str = ""
    content: Upload | None = None
    styles: tuple[Upload, ...] = ()
    library: tuple[str, ...] = ()
    values: Mapping[str, str] = field(default_factory=dict)  # FORM_KEYS as typed
    more: str = ""  # further keys as YAML (plugin options, iterations, ...)


def submit_form(config: DaemonConfig, form: Submission) -> Path:
    """Check the form as ``job.yaml`` is checked, then place the job in the inbox; return its folder.

    Raises FormErrors, one message per field, naming the key and how to fix it.
    """
    data, files, errors = _spec_from_form(config, form)
    try:  # the spec's own rules too, so that every mistake shows at once
        spec = check_job(config, data, "the form")
        if spec.plugins and not errors:
            _check_plugins(config, spec)
    except (JobSpecError, PluginError) as error:
        errors.setdefault(_field_of(error.key), _message(error))
    if errors:
        raise FormErrors(errors)
    try:
        name = job_name(form.name or Path(form.content.filename if form.content else "job").stem or "job")
    except StyledError as error:
        raise FormErrors({NAME_FIELD: _message(error)}) from None

    def fill(folder: Path) -> None:
        for (field_name, upload), file_name in files:
            _save_upload(upload, folder / file_name, field_name, config)
        atomic_write_text(folder / JOB_FILE, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    return place_job(config, name, fill)


def _spec_from_form(config: DaemonConfig, form: Submission
                    ) -> tuple[dict[str, Any], list[tuple[tuple[str, Upload], str]], dict[str, str]]:
    """The spec the form makes, the uploads with the names they get, and the errors found so far."""
    errors: dict[str, str] = {}
    data: dict[str, Any] = {}
    if form.more.strip():
        try:
            extra, _ = parse_yaml(form.more, "more settings")
        except JobSpecError as error:
            extra = None
            errors[MORE_FIELD] = _message(error)
        if extra is not None and not isinstance(extra, dict):
            errors[MORE_FIELD] = "must be YAML keys and values, such as 'iterations: 300'"
        elif extra:
            data.update(extra)
    for key in FORM_KEYS:
        raw = (form.values.get(key) or "").strip()
        if raw:
            data[key] = _typed(raw)
    files: list[tuple[tuple[str, Upload], str]] = []
    used: set[str] = {JOB_FILE}
    if form.content is None:
        errors.setdefault(CONTENT_FIELD, "choose the photo to paint")
    else:
        data["content"] = _file_name(form.content, "content", used, errors, CONTENT_FIELD)
        files.append(((CONTENT_FIELD, form.content), data["content"]))
    styles = []
    for upload in form.styles:
        styles.append(_file_name(upload, "style", used, errors, STYLE_FIELD))
        files.append(((STYLE_FIELD, upload), styles[-1]))
    offered = set(library_images(config))
    for name in form.library:
        if name not in offered:
            errors.setdefault(STYLE_FIELD, f"{name!r} is not in the style library")
        styles.append(name)
    if styles:
        data["style"] = styles
    elif not data.get("plugins"):
        errors.setdefault(STYLE_FIELD, "choose at least one style image (upload one or pick from the library)")
    return data, files, errors


def _check_plugins(config: DaemonConfig, spec: JobSpec) -> None:
    """Plugin options checked by the plugins' own schemas, as the daemon checks them (this loads the
    plugins, and with them TensorFlow: only forms that name plugins pay for it)."""
    from styled.plugins.manager import make_plugin_manager, validate_job_plugins

    validate_job_plugins(make_plugin_manager(config.plugins_dir), spec, source="the form")


def _typed(raw: str) -> Any:
    """A field's text as YAML reads it (``512`` a number, ``true`` a flag), so the spec's rules apply."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _file_name(upload: Upload, role: str, used: set[str], errors: dict[str, str], field_name: str) -> str:
    """A file name of our own making (the browser's name only lends its stem and suffix)."""
    base = upload.filename.replace("\\", "/").rsplit("/", 1)[-1]
    suffix = Path(base).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        errors.setdefault(field_name, f"{base or 'the file'!r} is not an image styled reads "
                                      f"(use {', '.join(IMAGE_SUFFIXES)})")
        suffix = ".png"
    stem = SAFE_CHARS.sub("_", Path(base).stem).strip("._-")[:60] or role
    name = f"{stem}{suffix}"
    number = 2
    while name in used:
        name = f"{stem}-{number}{suffix}"
        number += 1
    used.add(name)
    return name


def _save_upload(upload: Upload, target: Path, field_name: str, config: DaemonConfig) -> None:
    """Write the upload and read it back as styled reads images (format, pixel limit, damage)."""
    upload.stream.seek(0)
    with open(target, "xb") as out:
        shutil.copyfileobj(upload.stream, out)
    fsync_path(target)
    try:
        load_image(target, max_pixels=config.max_image_pixels)
    except ImageError as error:
        raise FormErrors({field_name: f"{upload.filename}: {error.message}"
                                      + (f" ({error.hint})" if error.hint else "")}) from None


def _field_of(key: str | None) -> str:
    if key in FORM_KEYS:
        return key
    if key == "content":
        return CONTENT_FIELD
    if key and key.split(".")[0] in ("style", "style_blend"):
        return STYLE_FIELD
    return MORE_FIELD


def _message(error: StyledError) -> str:
    where = f"{error.key}: " if error.key else ""
    line = f" (line {error.line})" if error.line and error.key not in FORM_KEYS else ""
    hint = f"; {error.hint}" if error.hint else ""
    return f"{where}{error.message}{line}{hint}"


# --- retry ----------------------------------------------------------------------------------------


def retry(config: DaemonConfig, name: str, spec_text: str | None = None) -> Path:
    """Put a failed job back into the inbox (``styled retry``'s twin: inputs and checkpoint), with
    ``spec_text`` as its job.yaml when given (checked first: FormErrors on the 'spec' field).
    Raises LookupError when the job is no longer in failed/ (retried already)."""
    folder = job_folder(config, "failed", name)
    if retry_spec(folder) is None:
        raise FormErrors({"spec": "this job has no spec among its inputs to retry; submit it again"})
    text = None if spec_text is None else spec_text.replace("\r\n", "\n")
    if text is not None:
        _check_spec_text(config, text)
    return retry_failed(config, folder.name, text)


def _check_spec_text(config: DaemonConfig, text: str) -> None:
    try:
        data, lines = parse_yaml(text, JOB_FILE)
        if not isinstance(data, dict):
            raise JobSpecError("a job spec must be a mapping of keys to values", where=JOB_FILE, line=1)
        spec = check_job(config, data, JOB_FILE, lines=lines)
        if spec.plugins:
            _check_plugins(config, spec)
    except (JobSpecError, PluginError) as error:
        raise FormErrors({"spec": _message(error)}) from None
