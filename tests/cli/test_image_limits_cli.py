"""Huge images given to the commands, run as real processes: `pack` and `train` skip them as bad
samples, `make-bin` and `eval` stop with one error line; none decodes them (peak memory stays that of
the same command on small faces), none ends in a traceback. FACELIVT_MAX_PIXELS reaches every command."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from disk_helpers import assert_clean_failure
from facelivt.evaluation.binset import write_bin
from image_helpers import FACE, huge_png, run_cli_peak

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "configs" / "synthetic_tiny.yaml")
#: What a refused image may add to a command's peak memory. Decoding the 144 MP test image would add
#: 144 MB (1 bit per pixel held as a byte) plus 432 MB of RGB.
MARGIN_MB = 100


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """``clean``: 2 identities of 3 real faces; ``huge``: the same plus, in the first identity, a
    50000 x 50000 PNG (Pillow refuses to open it) and a 12000 x 12000 one (144 MP: Pillow decodes it)."""
    base = tmp_path_factory.mktemp("limits")
    faces = sorted(FACE.glob("*.jpg"))[:6]
    assert len(faces) == 6, f"shared test data missing: {FACE}"
    for name in ("clean", "huge"):
        for i in range(2):
            (base / name / f"id{i}").mkdir(parents=True)
            for f in faces[3 * i:3 * i + 3]:
                shutil.copy(f, base / name / f"id{i}" / f.name)
    huge_png(base / "huge" / "id0" / "bomb.png", 50_000, 50_000)
    huge_png(base / "huge" / "id0" / "big.png", 12_000, 12_000)
    return {"clean": base / "clean", "huge": base / "huge", "faces": base / "clean" / "id0"}


def test_pack_skips_huge_images_without_decoding_them(folders, tmp_path):
    clean, clean_peak = run_cli_peak("pack", folders["clean"], "--out", tmp_path / "clean")
    assert clean.returncode == 0, clean.stderr[-3000:]
    proc, peak = run_cli_peak("pack", folders["huge"], "--out", tmp_path / "huge")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "packed 6 images of 2 identities" in proc.stdout and "(2 unreadable images skipped)" in proc.stdout
    assert "big.png: 12000x12000 = 144.0 MP exceeds the limit of 80.0 MP" in proc.stderr
    assert "bomb.png: too large to decode safely" in proc.stderr
    assert peak < clean_peak + MARGIN_MB, (peak, clean_peak)
    assert (tmp_path / "huge" / "train.rec").read_bytes() == (tmp_path / "clean" / "train.rec").read_bytes()


def test_make_bin_stops_with_one_line(folders, tmp_path):
    faces = sorted(p.name for p in folders["faces"].iterdir())
    one = tmp_path / "one.txt"
    one.write_text(f"id0\t{faces[0]}\t{faces[1]}\n")
    clean, clean_peak = run_cli_peak("make-bin", folders["huge"], "--pairs", one,
                                     "--out", tmp_path / "ok.bin", "--quiet")
    assert clean.returncode == 0, clean.stderr[-3000:]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"id0\t{faces[0]}\t{faces[1]}\nid0\t{faces[0]}\tbig.png\n")
    proc, peak = run_cli_peak("make-bin", folders["huge"], "--pairs", pairs,
                              "--out", tmp_path / "x.bin", "--quiet")
    assert_clean_failure(proc)
    assert "big.png: 12000x12000 = 144.0 MP exceeds the limit of 80.0 MP" in proc.stderr
    assert peak < clean_peak + MARGIN_MB and not (tmp_path / "x.bin").exists()
    # FACELIVT_MAX_PIXELS reaches the command: the 112 x 112 faces are over a 10000-pixel limit
    proc, _ = run_cli_peak("make-bin", folders["clean"], "--pairs", one,
                           "--out", tmp_path / "y.bin", "--quiet", env={"FACELIVT_MAX_PIXELS": "10000"})
    assert_clean_failure(proc)
    assert "= 12544 pixels exceeds the limit of 10000 pixels ($FACELIVT_MAX_PIXELS" in proc.stderr


@pytest.mark.slow
def test_eval_refuses_a_huge_image_in_a_bin(folders, tmp_path):
    """A 2.5 GP PNG inside a .bin (it was a cv2.error traceback) and a 144 MP one (it was decoded, and
    evaluated) stop `eval` with one line naming the image; the 144 MP one costs no more memory than the
    2.5 GP one, which no decoder ever decodes."""
    faces = [p.read_bytes() for p in sorted(folders["faces"].iterdir())]
    peaks = {}
    for name, which in (("bomb", 3), ("big", 5)):
        images = (faces * 7)[:20]
        images[which] = (folders["huge"] / "id0" / f"{name}.png").read_bytes()
        write_bin(tmp_path / f"{name}.bin", images, [True, False] * 5)
        proc, peaks[name] = run_cli_peak("eval", "--model", "mobilefacenet", "--bin", tmp_path / f"{name}.bin", "--out",
                                         tmp_path / name, "--device", "cpu", "--quiet", "--batch-size", "4")
        assert_clean_failure(proc)
        assert f"image {which} of {tmp_path / name}.bin" in proc.stderr
        assert "exceeds the limit of 80.0 MP" in proc.stderr or "too large to decode safely" in proc.stderr
        assert not (tmp_path / name / "results.json").exists()
    assert peaks["big"] < peaks["bomb"] + MARGIN_MB, peaks


@pytest.mark.slow
def test_train_on_a_folder_skips_huge_images(folders, tmp_path):
    proc, _ = run_cli_peak("train", TINY, "data.type=folder", f"data.root={folders['huge']}", f"output={tmp_path / 'run'}",
                           "train.progress=false", "train.epochs=1", "data.max_bad_fraction=0.5", "data.held_out_fraction=0")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "unreadable records skipped: 2" in proc.stderr + proc.stdout
    assert (tmp_path / "run" / "model.safetensors").is_file()
