"""A run refused before it wrote anything leaves no empty output folder behind, and removes only the
folders it created. Each command runs as a real process.

Before: ``eval --out new/eval`` with an unreadable set, ``train output=runs/x`` with no images and
``pack --out new/rec`` on a full disk each left their (empty) output folders."""
from __future__ import annotations

import shutil
from pathlib import Path

from disk_helpers import assert_clean_failure, fill, run_cli, tmpfs

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
ORL = SHARED / "data" / "orl_faces"
TINY = Path(__file__).resolve().parents[2] / "configs" / "synthetic_tiny.yaml"


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_eval_refused_leaves_no_output_folder(tmp_path):
    (tmp_path / "bad.bin").write_text("not a verification set\n")
    (tmp_path / "kept").mkdir()  # existed before the run: it stays, empty as it was
    for out in ("new/eval", "kept/eval"):
        proc = run_cli("eval", "--model", "facelivt_s", "--bin", "bad.bin", "--out", out, "--device", "cpu",
                       "--quiet", cwd=tmp_path)
        assert_clean_failure(proc)
        assert "bad.bin is not a pickle file" in proc.stderr
    assert tree(tmp_path) == ["bad.bin", "kept"]


def test_train_refused_leaves_no_run_folder(tmp_path):
    (tmp_path / "images" / "someone").mkdir(parents=True)  # an identity without images
    proc = run_cli("train", str(TINY), "data.type=folder", "data.root=images", "output=runs/x", cwd=tmp_path)
    assert_clean_failure(proc)
    assert "no images found under images" in proc.stderr
    assert tree(tmp_path) == ["images", "images/someone"]


def test_pack_on_a_full_disk_leaves_no_output_folder(tmp_path):
    for ident in ("s1", "s2"):
        shutil.copytree(ORL / ident, tmp_path / "images" / ident)
    with tmpfs("200k") as disk:
        fill(disk, leave=0)
        proc = run_cli("pack", str(tmp_path / "images"), "--out", str(disk / "new" / "rec"), "--png")
        assert_clean_failure(proc)
        assert f"cannot write {disk / 'new' / 'rec' / 'train.rec'}: No space left on device" in proc.stderr
        assert tree(disk) == [".filler"]
