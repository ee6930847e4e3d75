"""What a failed job tells its owner: error.txt for people, error.json for programs, with the
paths the user wrote (the inbox), not the daemon's (work/NAME/job/)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from styled.daemon.inbox import FOLDER
from styled.daemon.spool import WorkJob
from styled.daemon.state import JobState
from styled.errors import StyledError
from styled.io.files import LeftOut


def public_error(error: StyledError, work: WorkJob, state: JobState) -> StyledError:
    """The error with work/NAME/job/... paths shown as the inbox paths the user wrote."""
    if not error.where:
        return error
    relative = _relative_to_job(Path(error.where), work.job_dir)
    if relative is None:
        return error
    source = Path(state.source)
    base = source if state.kind == FOLDER else source.parent
    return dataclasses.replace(error, where=str(base / relative))


def _relative_to_job(path: Path, job_dir: Path) -> Path | None:
    for root in (job_dir, job_dir.resolve()):
        try:
            return path.relative_to(root)
        except ValueError:
            continue
    return None


def left_out_notes(state: JobState) -> list[str]:
    """One line per entry the claim did not copy: ``photo.png: a symbolic link to /etc/passwd``."""
    return [LeftOut(**item).describe() for item in state.left_out]


def failure_text(state: JobState, error: StyledError, failed_folder: Path) -> str:
    """error.txt: what was wrong, where, and how to fix it, for a person."""
    problem = error.message
    if error.key and problem.startswith("must "):  # a rule's message: say which key it is about
        problem = f"'{error.key}' {problem}"
    lines = [f"The job '{state.name}' could not be rendered.", "", f"Problem: {problem}"]
    if error.location():
        lines.append(f"Where:   {error.location()}")
    if error.hint:
        lines.append(f"Fix:     {error.hint}")
    lines += ["", f"The spec and its images are in {failed_folder}/{state.name}/inputs/, untouched: fix them",
              "and move them back into the inbox to try again."]
    if state.left_out:
        lines += ["", "Not carried (styled copies regular files only):", *(f"  {note}" for note in left_out_notes(state))]
    lines += ["",
              f"(error kind: {error.kind}; job id {state.id}; error.json has the same for programs)"]
    return "\n".join(lines) + "\n"
