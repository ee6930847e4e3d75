"""One permission policy: results are readable by others under umask 022; the private flag is private."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from styled.errors import FileKindError
from styled.io.files import (
    atomic_write_text,
    copy_regular_file,
    copy_regular_tree,
    make_folder,
    place_folder,
    read_regular,
    staged_folder,
)


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


# --- reading and copying what others wrote ---


def test_a_fifo_is_refused_at_once_instead_of_blocking(tmp_path):
    os.mkfifo(tmp_path / "job.yaml")
    with pytest.raises(FileKindError, match="FIFO"):
        read_regular(tmp_path / "job.yaml")


def test_devices_folders_and_links_are_refused_by_kind(tmp_path):
    (tmp_path / "link").symlink_to("/etc/hostname")
    with pytest.raises(FileKindError, match="character device"):
        read_regular(Path("/dev/null"))
    with pytest.raises(FileKindError, match="folder"):
        read_regular(tmp_path)
    with pytest.raises(FileKindError, match="symbolic link"):
        read_regular(tmp_path / "link", follow_links=False)
    assert read_regular(tmp_path / "link") == Path("/etc/hostname").read_bytes()


def test_read_regular_reads_one_byte_past_the_limit(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 100)
    assert len(read_regular(tmp_path / "big", max_bytes=10)) == 11


def test_a_tree_copy_carries_regular_files_and_notes_everything_else(tmp_path):
    source = tmp_path / "drop"
    (source / "sub").mkdir(parents=True)
    (source / "photo.png").write_bytes(b"photo")
    (source / "sub" / "mask.png").write_bytes(b"mask")
    (source / "passwd.png").symlink_to("/etc/passwd")
    (source / "etc").symlink_to("/etc")
    os.mkfifo(source / "pipe.png")
    left_out = copy_regular_tree(source, tmp_path / "copy")
    copied = sorted(p.relative_to(tmp_path / "copy").as_posix() for p in (tmp_path / "copy").rglob("*"))
    assert copied == ["photo.png", "sub", "sub/mask.png"]
    assert (tmp_path / "copy" / "sub" / "mask.png").read_bytes() == b"mask"
    assert [item.describe() for item in left_out] == [
        "etc: a symbolic link to /etc", "passwd.png: a symbolic link to /etc/passwd", "pipe.png: a FIFO (named pipe)"]


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file another user owns needs root")
def test_a_hard_link_to_someone_elses_file_is_not_copied(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"root only")
    os.chown(secret, 12345, 12345)
    (tmp_path / "drop").mkdir()
    os.link(secret, tmp_path / "drop" / "photo.png")
    assert copy_regular_file(tmp_path / "drop" / "photo.png", tmp_path / "copy.png").kind.startswith("a hard link")
    assert not (tmp_path / "copy.png").exists()
