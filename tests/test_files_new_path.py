"""facelivt.files.new_path: a file that must not replace one appears whole or not at all, and the
first of two writers wins."""
from __future__ import annotations

import os
import stat

import pytest

from disk_helpers import fill, tmpfs
from facelivt.errors import OutputWriteError
from facelivt.files import new_path


def test_a_new_file_appears_whole_with_the_mode_open_would_give(tmp_path):
    out = tmp_path / "a" / "new.bin"
    old = os.umask(0o022)
    try:
        with new_path(out) as tmp:
            assert tmp.parent == out.parent and not out.exists()
            tmp.write_bytes(b"data")
    finally:
        os.umask(old)
    assert out.read_bytes() == b"data" and stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in out.parent.iterdir()] == ["new.bin"]


def test_a_file_made_meanwhile_is_kept(tmp_path):
    out = tmp_path / "new.bin"
    with pytest.raises(FileExistsError):
        with new_path(out) as tmp:
            tmp.write_bytes(b"second")
            out.write_bytes(b"first")  # another writer made it first
    assert out.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["new.bin"]


def test_a_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with new_path(tmp_path / "new.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with tmpfs("200k") as mnt:
        fill(mnt)
        with pytest.raises(OutputWriteError, match=r"cannot write .*new.bin: No space left"):
            with new_path(mnt / "new.bin") as tmp:
                tmp.write_bytes(b"x" * 100_000)
        assert sorted(p.name for p in mnt.iterdir()) == [".filler"]
