"""Folder runs: how a failure is told apart from the file it is about; symlinked identity folders."""
from __future__ import annotations

from pathlib import Path

import pytest

from facelivt.inference import NoFaceError, failure_reason, list_files, load_image
from facelivt.inference import ImageLoadError


def test_failure_reason_leaves_out_the_file_name(tmp_path):
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    with pytest.raises(ImageLoadError) as err:
        load_image(text)
    assert str(err.value).startswith(f"{text} ")  # alone, the error names its file
    assert failure_reason(err.value, text) == "could not be decoded: not an image (or a format Pillow cannot read)"
    with pytest.raises(FileNotFoundError) as err:
        load_image(tmp_path / "gone.jpg")
    assert failure_reason(err.value, tmp_path / "gone.jpg") == "image not found"
    assert failure_reason(NoFaceError("img/x.png: no face found"), Path("img/x.png")) == "no face found"
    assert failure_reason(ValueError("something else"), "img/x.png") == "something else"


def test_list_files_follows_linked_folders_and_stops_at_loops(tmp_path, caplog):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    for folder in (root / "alice", elsewhere / "bob", root / "carol"):
        folder.mkdir(parents=True)
        (folder / "1.jpg").write_bytes(b"x")
    (root / "bob").symlink_to(elsewhere / "bob", target_is_directory=True)  # a linked identity folder
    (root / "alice" / "up").symlink_to(root, target_is_directory=True)  # loops
    (root / "alice" / "self").symlink_to(root / "alice", target_is_directory=True)
    (root / "carol" / "to_d").symlink_to(tmp_path / "d", target_is_directory=True)  # two folders linking
    (tmp_path / "d").mkdir()                                                        # to each other
    (tmp_path / "d" / "to_carol").symlink_to(root / "carol", target_is_directory=True)
    (tmp_path / "d" / "2.jpg").write_bytes(b"x")
    with caplog.at_level("WARNING", logger="facelivt"):
        files = list_files(root)
        assert [str(p.relative_to(root)) for p in files] == [
            "alice/1.jpg", "bob/1.jpg", "carol/1.jpg", "carol/to_d/2.jpg",
        ]
        assert list_files(root / "alice") == [root / "alice" / "1.jpg"]  # alice/up leads to its parent: a loop
    loops = sorted({r.getMessage() for r in caplog.records if "a loop" in r.getMessage()})
    assert loops == sorted([
        f"{root / 'alice' / 'self'} links back to {root / 'alice'}, a folder it lies in: not followed (a loop)",
        f"{root / 'alice' / 'up'} links back to {root}, a folder it lies in: not followed (a loop)",
        f"{root / 'carol' / 'to_d' / 'to_carol'} links back to {root / 'carol'}, a folder it lies in: not followed (a loop)",
    ])
