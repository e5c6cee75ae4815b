"""facelivt.files: atomic writes never damage an existing file nor leave a partial one."""
from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading

import pytest

from disk_helpers import tmpfs
from facelivt import files
from facelivt.errors import FaceLiVTError, OutputWriteError
from facelivt.files import atomic_open, atomic_path, reserve_file, write_bytes, write_json, write_text


def test_write_creates_parents_and_content(tmp_path):
    out = tmp_path / "a" / "b" / "c.txt"
    write_text(out, "hello")
    assert out.read_text() == "hello"
    assert sorted(p.name for p in out.parent.iterdir()) == ["c.txt"]


def test_mode_is_what_open_would_give(tmp_path):
    old = os.umask(0o022)
    try:
        write_bytes(tmp_path / "x.bin", b"1")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.bin").stat().st_mode) == 0o644


def test_exception_inside_leaves_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "keep.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(out) as f:
            f.write("new, half")
            raise RuntimeError("boom")
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_enospc_from_writer_becomes_output_error(tmp_path, monkeypatch):
    out = tmp_path / "keep.txt"
    out.write_text("old")
    with pytest.raises(OutputWriteError) as info:
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert isinstance(info.value, FaceLiVTError) and isinstance(info.value, OSError)
    assert "No space left on device" in str(info.value) and str(out) in str(info.value)
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_failing_fsync_keeps_old_file(tmp_path, monkeypatch):
    out = tmp_path / "keep.txt"
    out.write_text("old")

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OutputWriteError):
        write_text(out, "new")
    monkeypatch.undo()
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_folder_in_the_way(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputWriteError, match="Is a directory"):
        write_text(tmp_path / "d", "x")


def test_no_permission(tmp_path, monkeypatch):
    """EACCES when the temporary file cannot be created (as root, a read-only folder does not refuse)."""
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(OutputWriteError, match="Permission denied"):
        write_text(tmp_path / "x.txt", "x")
    assert not list(tmp_path.iterdir())


def test_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "r.json", {"x": float("nan")})
    assert not list(tmp_path.iterdir())


def test_full_tmpfs_keeps_existing_file():
    with tmpfs("200k") as disk:
        out = disk / "big.bin"
        write_bytes(out, b"a" * 100_000)
        with pytest.raises(OutputWriteError, match="No space left"):
            write_bytes(out, b"b" * 150_000)
        assert out.read_bytes() == b"a" * 100_000
        assert [p.name for p in disk.iterdir()] == ["big.bin"]


def test_concurrent_writers_each_leave_a_whole_file(tmp_path):
    out = tmp_path / "race.txt"
    payloads = [str(i) * 200_000 for i in range(8)]
    threads = [threading.Thread(target=write_text, args=(out, p)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out.read_text() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["race.txt"]


def _allocated(path) -> int:
    return os.stat(path).st_blocks * 512


def test_reserve_file_allocates_every_block_and_keeps_the_data(tmp_path):
    path = tmp_path / "map.bin"
    with open(path, "wb") as f:  # a sparse file: data, a hole, data
        f.write(b"head")
        f.seek(1 << 20)
        f.write(b"tail")
    size = (1 << 20) + 4 + 4096
    reserve_file(path, size)
    assert path.stat().st_size == size and _allocated(path) >= size
    data = path.read_bytes()
    assert data[:4] == b"head" and data[1 << 20:(1 << 20) + 4] == b"tail" and not any(data[4:1 << 20])


def test_reserve_file_writes_zeros_where_fallocate_is_unsupported(tmp_path, monkeypatch):
    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    path = tmp_path / "map.bin"
    path.write_bytes(b"keep")
    reserve_file(path, 300_000)
    assert path.stat().st_size == 300_000 and _allocated(path) >= 300_000
    assert path.read_bytes()[:4] == b"keep" and not any(path.read_bytes()[4:])


def test_reserve_file_on_a_full_disk_is_an_error_and_leaves_no_file():
    with tmpfs("256k") as disk:
        with pytest.raises(OutputWriteError, match=f"cannot write {disk / 'big.bin'}: No space left on device"):
            reserve_file(disk / "big.bin", 1 << 20)
        assert list(disk.iterdir()) == []
        (disk / "old.bin").write_bytes(b"x" * 5000)
        with pytest.raises(OutputWriteError, match="No space left on device"):
            reserve_file(disk / "old.bin", 1 << 20)
        assert (disk / "old.bin").read_bytes() == b"x" * 5000


def test_file_sha256_hashes_every_block_of_a_file_bigger_than_one_block(tmp_path):
    data = os.urandom(files.HASH_BLOCK * 2 + 123)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert files.file_sha256(path) == hashlib.sha256(data).hexdigest()
    with open(path, "rb") as f:
        f.read(10)
        digest = hashlib.sha256()
        files.hash_rest(f, digest)
    assert digest.hexdigest() == hashlib.sha256(data[10:]).hexdigest()
