"""tito's one atomic write: old or new contents, never half, and the modes a user expects."""

from __future__ import annotations

import os

import pytest

from tito.files import write_atomic


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_mode_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_atomic(tmp_path / "new.txt", "hello\n")
    finally:
        os.umask(old)
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == mode


def test_an_existing_file_keeps_its_mode_even_read_only(tmp_path):
    path = tmp_path / "kept.txt"
    path.write_text("old\n")
    path.chmod(0o444)
    write_atomic(path, "new\n")
    assert path.read_text() == "new\n" and path.stat().st_mode & 0o777 == 0o444


def test_text_goes_out_as_utf8_with_its_line_endings_and_bytes_as_they_are(tmp_path):
    write_atomic(tmp_path / "a.txt", "é\r\nx\n")
    write_atomic(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "a.txt").read_bytes() == "é\r\nx\n".encode("utf-8")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "kept.txt"
    path.write_text("old\n")

    def full(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "new\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["kept.txt"]
