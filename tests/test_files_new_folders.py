"""facelivt.files.cleanup_new_folders: a run that fails before writing removes the folders it created,
and only those."""
from __future__ import annotations

import pytest

from facelivt.files import cleanup_new_folders, write_text


def test_a_failed_run_removes_the_empty_folders_it_created(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    with pytest.raises(RuntimeError):
        with cleanup_new_folders(out):
            (out / "checkpoints" / "empty").mkdir(parents=True)
            raise RuntimeError("refused")
    assert list(tmp_path.iterdir()) == []


def test_folders_that_existed_or_hold_a_file_stay(tmp_path):
    (tmp_path / "existing").mkdir()
    with pytest.raises(KeyboardInterrupt):
        with cleanup_new_folders(tmp_path / "existing", tmp_path / "new" / "run", tmp_path / "other" / "x.json"):
            write_text(tmp_path / "new" / "run" / "checkpoints" / "log.txt", "written before the failure")
            (tmp_path / "new" / "run" / "empty").mkdir()
            (tmp_path / "other").mkdir()
            raise KeyboardInterrupt
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "existing", "new", "new/run", "new/run/checkpoints", "new/run/checkpoints/log.txt", "new/run/empty"]


def test_a_successful_run_keeps_its_folders(tmp_path):
    with cleanup_new_folders(tmp_path / "out"):
        (tmp_path / "out").mkdir()
    assert (tmp_path / "out").is_dir()


def test_a_symlink_in_the_way_is_not_followed(tmp_path):
    (tmp_path / "target").mkdir()
    with pytest.raises(RuntimeError):
        with cleanup_new_folders(tmp_path / "link"):
            (tmp_path / "link").symlink_to(tmp_path / "target")
            raise RuntimeError("refused")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "target").is_dir()
