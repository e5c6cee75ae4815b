"""facelivt.files: sets of files committed together, output folders, and the early writability check."""
from __future__ import annotations

import pytest

from disk_helpers import fill, listing, tmpfs
from facelivt.errors import OutputWriteError
from facelivt.files import atomic_dir, atomic_paths, check_writable


def test_atomic_paths_commits_every_file(tmp_path):
    a, b = tmp_path / "train.rec", tmp_path / "train.idx"
    with atomic_paths(a, b) as (ta, tb):
        assert ta.parent == tmp_path and tb.parent == tmp_path and not a.exists()
        ta.write_bytes(b"rec")
        tb.write_text("idx")
    assert listing(tmp_path) == {"train.idx": b"idx", "train.rec": b"rec"}


def test_atomic_paths_full_disk_keeps_the_whole_old_set():
    with tmpfs("200k") as disk:
        (disk / "train.rec").write_bytes(b"old rec")
        (disk / "train.idx").write_bytes(b"old idx")
        before = listing(disk)
        fill(disk, leave=0)
        with pytest.raises(OutputWriteError, match="No space left") as info:
            with atomic_paths(disk / "train.rec", disk / "train.idx") as (rec, idx):
                idx.write_bytes(b"new idx")  # the small one may fit
                rec.write_bytes(b"x" * 400_000)
        assert info.value.path == str(disk / "train.rec")
        (disk / ".filler").unlink()
        assert listing(disk) == before


def test_atomic_paths_refuses_a_folder_in_the_way(tmp_path):
    (tmp_path / "b").mkdir()
    with pytest.raises(OutputWriteError, match="Is a directory"):
        with atomic_paths(tmp_path / "a", tmp_path / "b"):
            pass
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_atomic_dir_replaces_an_old_folder_whole(tmp_path):
    out = tmp_path / "m.mlpackage"
    (out / "Data").mkdir(parents=True)
    (out / "Data" / "old.bin").write_bytes(b"old")
    with atomic_dir(out) as build:
        assert build.name == out.name and build.parent.parent == tmp_path
        (build / "Data").mkdir(parents=True)
        (build / "Data" / "new.bin").write_bytes(b"new")
    assert listing(tmp_path) == {"m.mlpackage/Data/new.bin": b"new"}
    assert [p.name for p in tmp_path.iterdir()] == ["m.mlpackage"]


def test_atomic_dir_full_disk_keeps_the_old_folder():
    with tmpfs("200k") as disk:
        out = disk / "m.mlpackage"
        out.mkdir()
        (out / "weights.bin").write_bytes(b"old weights")
        before = listing(disk)
        fill(disk, leave=0)
        with pytest.raises(OutputWriteError, match="No space left"):
            with atomic_dir(out) as build:
                build.mkdir()
                (build / "weights.bin").write_bytes(b"x" * 400_000)
        (disk / ".filler").unlink()
        assert listing(disk) == before
        assert sorted(p.name for p in disk.iterdir()) == ["m.mlpackage"]


def test_atomic_dir_needs_something_written(tmp_path):
    with pytest.raises(OutputWriteError, match="nothing was written"):
        with atomic_dir(tmp_path / "m.mlpackage"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_check_writable(tmp_path):
    check_writable(tmp_path / "new" / "out.safetensors")
    assert list((tmp_path / "new").iterdir()) == []  # the probe is gone
    with pytest.raises(OutputWriteError, match="Is a directory"):
        check_writable(tmp_path / "new")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputWriteError):
        check_writable(tmp_path / "file" / "out.json")  # a file where a folder should be


def test_nested_atomic_writes_name_the_final_file():
    """A library writing atomically into a temporary (export into atomic_path's temporary, a Core ML
    package into atomic_dir's) fails under the final name, never the temporary's."""
    from facelivt.files import atomic_path, write_bytes

    with tmpfs("200k") as disk:
        fill(disk, leave=0)
        with pytest.raises(OutputWriteError) as info:
            with atomic_path(disk / "s.onnx") as tmp:
                write_bytes(tmp, b"x" * 400_000)
        assert info.value.path == str(disk / "s.onnx") and "s.onnx:" in str(info.value)
        with pytest.raises(OutputWriteError) as info:
            with atomic_dir(disk / "m.mlpackage") as build:
                with atomic_dir(build) as inner:
                    inner.mkdir()
                    (inner / "w.bin").write_bytes(b"x" * 400_000)
        assert info.value.path == str(disk / "m.mlpackage")
        (disk / ".filler").unlink()
        assert listing(disk) == {} and list(disk.iterdir()) == []
