"""One permission policy: results are readable by others under umask 022; the private flag is private."""

from __future__ import annotations

import os
import stat

import pytest

from styled.io.files import atomic_write_text, make_folder, place_folder, staged_folder


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_files_and_placed_folders_get_umask_modes(tmp_path, umask_022):
    with staged_folder(tmp_path, "result") as folder:
        atomic_write_text(folder / "report.json", "{}")
        placed = place_folder(folder, tmp_path, "result")
    assert mode(placed) == 0o755 and mode(placed / "report.json") == 0o644


def test_a_private_folder_is_the_owners_only(tmp_path, umask_022):
    assert mode(make_folder(tmp_path / "work", private=True)) == 0o700


def test_a_staged_folder_is_removed_when_filling_fails(tmp_path):
    with pytest.raises(RuntimeError), staged_folder(tmp_path, "job") as folder:
        (folder / "half").write_text("x")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
