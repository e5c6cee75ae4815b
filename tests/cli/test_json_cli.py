"""``--json`` prints, on stdout and as JSON, the facts the text of a command reports (the commands that
got it with issue 22: info, pack, make-bin, convert, embed, enroll, gallery check; eval's is in
test_eval_cli.py, export's in test_export_bench_cli.py). Real files: the shared aligned crops."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from facelivt.cli import main

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
ALIGNED = SHARED / "data" / "celeba_subset_112"
RELEASED = SHARED / "reference" / "official_facelivt_s.pt"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """Three identities of four aligned crops each."""
    root = tmp_path_factory.mktemp("faces")
    for person in sorted(p for p in ALIGNED.iterdir() if p.is_dir())[:3]:
        (root / person.name).mkdir()
        for photo in sorted(person.iterdir())[:4]:
            shutil.copy(photo, root / person.name / photo.name)
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("w") / "s.safetensors"
    assert main(["convert", str(RELEASED), "--out", str(out), "--model", "facelivt_s"]) == 0
    return out


def test_info_json(capsys):
    assert main(["info", "facelivt_s", "--json"]) == 0
    (row,) = _json(capsys)
    assert row["model"] == "facelivt_s" and row["deploy_params_m"] < row["train_params_m"]


def test_pack_json(faces, tmp_path, capsys):
    assert main(["pack", str(faces), "--out", str(tmp_path / "rec"), "--json", "--quiet"]) == 0
    assert _json(capsys) == {"num_images": 12, "num_classes": 3, "skipped": 0, "out": str(tmp_path / "rec")}


def test_make_bin_json(faces, tmp_path, capsys):
    out = tmp_path / "set.bin"
    assert main(["make-bin", str(faces), "--out", str(out), "--generate-pairs", "4", "--folds", "2", "--json",
                 "--quiet"]) == 0
    report = _json(capsys)
    assert report == {"out": str(out), "pairs": 4, "matched": 2, "mismatched": 2,
                      "pairs_file": str(tmp_path / "set_pairs.txt"), "pairs_generated": True}
    assert out.is_file() and (tmp_path / "set_pairs.txt").is_file()


def test_convert_json(weights, tmp_path, capsys):
    out = tmp_path / "again.safetensors"
    assert main(["convert", str(weights), "--out", str(out), "--json"]) == 0
    report = _json(capsys)
    assert report["out"] == str(out) and report["model"] == "facelivt_s" and report["form"] == "train"
    assert report["tensors"] > 0 and report["values"] > 4_000_000


def test_embed_enroll_and_gallery_check_json(faces, weights, tmp_path, capsys):
    common = ["--weights", str(weights), "--aligned", "--quiet", "--device", "cpu", "--json"]
    out = tmp_path / "e.safetensors"
    assert main(["embed", str(faces), "--out", str(out), *common]) == 0
    report = _json(capsys)
    assert report == {"out": str(out), "embeddings": 12, "dimension": 512, "files": 12, "skipped": 0,
                      "model": "facelivt_s"}
    gallery = str(tmp_path / "g")
    assert main(["enroll", gallery, str(faces), *common]) == 0
    report = _json(capsys)
    assert (report["enrolled_images"], report["enrolled_identities"], report["identities"], report["images"]) == (
        12, 3, 3, 12)
    assert main(["gallery", "check", gallery, "--json"]) == 0
    assert _json(capsys) == {"gallery": gallery, "identities": 3, "embeddings": 12, "problems": [], "repaired": []}
