"""Every command that writes, on a real full disk (a small tmpfs): one clear line and exit code 2, no
partial or temporary file left, and an earlier output of the same name byte-identical afterwards.

Each test puts "earlier outputs" on the disk, fills the disk to the last byte and runs the real
command line in a fresh process (``run_cli``). Inputs are tiny: one or two crops, photos or images.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from disk_helpers import assert_clean_failure, fill, listing, run_cli, tmpfs

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
CROPS = SHARED / "data" / "celeba_subset_112"
CELEBA = SHARED / "data" / "celeba_subset"
ORL = SHARED / "data" / "orl_faces"
REFERENCE_PT = SHARED / "reference" / "official_facelivt_s.pt"


def earlier_outputs_then_full(disk: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    """Write ``files`` (relative path -> bytes) on ``disk``, fill it to the last byte; return the listing."""
    for rel, data in files.items():
        (disk / rel).parent.mkdir(parents=True, exist_ok=True)
        (disk / rel).write_bytes(data)
    before = listing(disk)
    fill(disk, leave=0)
    return before


def after_failure(disk: Path) -> dict[str, bytes]:
    """The disk's files once the filler is gone (any temporary or partial file would show here)."""
    (disk / ".filler").unlink()
    assert not [p for p in disk.rglob("*") if p.is_dir() and p.name.startswith(".")], "a staging folder was left"
    return listing(disk)


def assert_one_error_line(proc, *words: str) -> None:
    assert_clean_failure(proc)
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr[-3000:]
    for word in words:
        assert word in errors[0], errors[0]


def old(name: str) -> bytes:
    """Stand-in bytes of an earlier, good output (what matters: they must survive unchanged)."""
    return f"earlier good {name}\n".encode() * 400


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory) -> Path:
    """root/<identity>/<image>: two ORL identities of three images each."""
    root = tmp_path_factory.mktemp("orl") / "images"
    for ident in ("s1", "s2"):
        (root / ident).mkdir(parents=True)
        for n in (1, 2, 3):
            shutil.copy(ORL / ident / f"{n}.pgm", root / ident / f"{n}.pgm")
    return root


@pytest.mark.parametrize("fmt,name", [("onnx", "s.onnx"), ("torchscript", "s.pt")])
def test_export_on_a_full_disk(fmt, name):
    # Before: ONNX left a 204,800-byte file that does not load (and truncated an earlier export);
    # TorchScript aborted the process ("terminate called ... c10::Error", exit 134).
    with tmpfs("200k") as disk:
        before = earlier_outputs_then_full(disk, {name: old(name)})
        proc = run_cli("export", "--weights", str(REFERENCE_PT), "--format", fmt, "--out", str(disk / name),
                       "--data", str(CROPS), "--check-images", "1")
        assert_one_error_line(proc, str(disk / name), "No space left on device")
        assert after_failure(disk) == before


def test_eval_on_a_full_disk(tmp_path):
    # Before: a 0-byte results.json and a truncated ROC PNG.
    from facelivt.cli import main

    assert main(["make-bin", str(ORL), "--out", str(tmp_path / "orl.bin"),
                 "--generate-pairs", "20", "--seed", "0", "--quiet"]) == 0
    with tmpfs("200k") as disk:
        before = earlier_outputs_then_full(disk, {"eval/results.json": old("results"), "eval/orl_roc.png": old("png")})
        proc = run_cli("eval", "--model", "facelivt_s", "--bin", str(tmp_path / "orl.bin"), "--out", str(disk / "eval"),
                       "--batch-size", "8", "--device", "cpu", "--quiet")
        assert_one_error_line(proc, str(disk / "eval"), "No space left on device")
        assert after_failure(disk) == before


def test_pack_on_a_full_disk(small_tree):
    # Before: a 4 KB train.rec and an empty train.idx. The four files are one set: none is replaced.
    with tmpfs("200k") as disk:
        names = ("train.rec", "train.idx", "property", "classes.txt")
        before = earlier_outputs_then_full(disk, {f"rec/{n}": old(n) for n in names})
        proc = run_cli("pack", str(small_tree), "--out", str(disk / "rec"), "--png")
        assert_one_error_line(proc, str(disk / "rec" / "train.rec"), "No space left on device")
        assert after_failure(disk) == before


def test_make_bin_on_a_full_disk(small_tree):
    # The generated pairs list fits, the .bin does not: the list drawn for this run is removed too
    # (else a rerun refuses it as existing), and the earlier .bin is unchanged.
    with tmpfs("200k") as disk:
        before = earlier_outputs_then_full(disk, {"set.bin": old("bin")})
        (disk / ".filler").unlink()
        fill(disk, leave=8192)  # room for the pairs list only (tmpfs pages are 4 KB)
        proc = run_cli("make-bin", str(small_tree), "--out", str(disk / "set.bin"), "--generate-pairs", "4",
                       "--folds", "2", "--format", "png", "--quiet")
        assert_one_error_line(proc, str(disk / "set.bin"), "No space left on device")
        assert after_failure(disk) == before


def test_embed_on_a_full_disk():
    # Before: safetensors' own error as a traceback, after all the work.
    crops = sorted((CROPS / "7201").iterdir())[:2]
    with tmpfs("200k") as disk:
        before = earlier_outputs_then_full(disk, {"e.safetensors": old("embeddings")})
        proc = run_cli("embed", *map(str, crops), "--aligned", "--weights", str(REFERENCE_PT),
                       "--out", str(disk / "e.safetensors"), "--quiet")
        assert_one_error_line(proc, str(disk / "e.safetensors"), "No space left on device")
        assert after_failure(disk) == before


def test_embed_streamed_on_a_full_disk():
    # A disk that fills while the rows are streamed: one line naming the file, and what was written
    # before is a readable, consistent run (the index names only whole rows) that --resume continues.
    from facelivt.inference import read_embeddings

    crops = sorted((CROPS / "7201").iterdir()) + sorted((CROPS / "7202").iterdir())
    with tmpfs("48k") as disk:
        proc = run_cli("embed", *map(str, crops), "--aligned", "--weights", str(REFERENCE_PT),
                       "--out", str(disk / "e"), "--quiet", "--batch-size", "4")
        assert_one_error_line(proc, str(disk / "e"), "No space left on device")
        vectors, entries = read_embeddings(disk / "e")
        assert 0 < len(entries) < len(crops) and vectors.shape == (len(entries), 512)


def test_embed_into_a_folder_fails_before_the_work(tmp_path, capsys):
    # Before: IsADirectoryError as a traceback after embedding every file. Now the check comes first:
    # the weights (which do not exist) are never opened. (In this process: nothing heavy runs.)
    from facelivt.cli import main

    crop = next((CROPS / "7201").iterdir())
    (tmp_path / "out").mkdir()
    rc = main(["embed", str(crop), "--aligned", "--weights", str(tmp_path / "missing.safetensors"),
               "--out", str(tmp_path / "out"), "--format", "safetensors"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"cannot write {tmp_path / 'out'}: Is a directory" in err
    assert list((tmp_path / "out").iterdir()) == []


def test_align_on_a_full_disk(tmp_path, mtcnn_reference):
    photo = next(k for k in sorted(mtcnn_reference) if len(mtcnn_reference[k]) == 1)
    (tmp_path / "in" / Path(photo).parent).mkdir(parents=True)
    shutil.copy(CELEBA / photo, tmp_path / "in" / photo)
    with tmpfs("200k") as disk:
        before = earlier_outputs_then_full(disk, {f"crops/{photo}": old("crop")})
        proc = run_cli("align", str(tmp_path / "in"), "--out", str(disk / "crops"), "--quiet", "--threads", "1",
                       "--report", str(disk / "report.json"))
        assert_one_error_line(proc, str(disk / "crops" / photo), "No space left on device")
        assert after_failure(disk) == before
