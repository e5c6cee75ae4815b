"""RecordIOWriter writes the .rec/.idx pair atomically: an earlier pair survives a failed write whole."""
from __future__ import annotations

import pytest

from disk_helpers import fill, listing, tmpfs
from facelivt.data import RecordIOReader, RecordIOWriter
from facelivt.errors import OutputWriteError


def test_pair_appears_only_when_closed(tmp_path):
    writer = RecordIOWriter(tmp_path / "a.rec", tmp_path / "a.idx")
    writer.write(0, b"x" * 10)
    assert not (tmp_path / "a.rec").exists() and not (tmp_path / "a.idx").exists()
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.idx", "a.rec"]
    assert RecordIOReader(tmp_path / "a.rec", tmp_path / "a.idx").read(0) == b"x" * 10


def test_exception_in_the_block_keeps_the_earlier_pair(tmp_path):
    with RecordIOWriter(tmp_path / "a.rec", tmp_path / "a.idx") as w:
        w.write(0, b"old")
    before = listing(tmp_path)
    with pytest.raises(ValueError, match="already"):
        with RecordIOWriter(tmp_path / "a.rec", tmp_path / "a.idx") as w:
            w.write(0, b"new")
            w.write(0, b"again")
    assert listing(tmp_path) == before


def test_full_disk_keeps_the_earlier_pair_and_names_the_file():
    with tmpfs("200k") as disk:
        with RecordIOWriter(disk / "a.rec", disk / "a.idx") as w:
            w.write(0, b"old")
        before = listing(disk)
        fill(disk, leave=0)
        with pytest.raises(OutputWriteError, match="No space left on device") as info:
            with RecordIOWriter(disk / "a.rec", disk / "a.idx") as w:
                for key in range(100):
                    w.write(key, b"y" * 10_000)
        assert info.value.path == str(disk / "a.rec")
        (disk / ".filler").unlink()
        assert listing(disk) == before
