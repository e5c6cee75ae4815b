"""Command line: facelivt align / embed / verify / enroll / identify on a small tree of real photos."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelivt.cli import main
from facelivt.inference import Gallery

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
CELEBA = SHARED / "data" / "celeba_subset"
ORL = SHARED / "data" / "orl_faces"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tree(tmp_path_factory, mtcnn_reference) -> Path:
    """in/ with two identities of single-face photos, a multi-face photo, a no-face photo, a grey PGM,
    a truncated JPEG and a text file."""
    ref = mtcnn_reference
    root = tmp_path_factory.mktemp("photos") / "in"
    singles = [k for k in sorted(ref) if len(ref[k]) == 1]
    ids = sorted({k.split("/")[0] for k in singles})[:2]
    for ident in ids:
        for k in [k for k in singles if k.startswith(ident + "/")][:2]:
            (root / ident).mkdir(parents=True, exist_ok=True)
            shutil.copy(CELEBA / k, root / k)
    multi = next(k for k in sorted(ref) if len(ref[k]) == 2)
    noface = next(k for k in sorted(ref) if len(ref[k]) == 0)
    (root / "mixed").mkdir()
    shutil.copy(CELEBA / multi, root / "mixed" / "two.jpg")
    shutil.copy(CELEBA / noface, root / "mixed" / "none.jpg")
    shutil.copy(ORL / "s1" / "1.pgm", root / "mixed" / "grey.pgm")
    (root / "mixed" / "cut.jpg").write_bytes((CELEBA / multi).read_bytes()[:1500])
    (root / "mixed" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    from facelivt import create_model
    from facelivt.models import save_weights

    path = tmp_path_factory.mktemp("w") / "facelivt_s.safetensors"
    save_weights(create_model("facelivt_s").eval(), path)
    return path


def test_align_tree(tree, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["align", str(tree), "--out", str(out), "--quiet", "--report", str(tmp_path / "r.json")])
    assert rc == 0
    captured = capsys.readouterr()
    crops = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    ids = sorted(d.name for d in tree.iterdir() if d.name != "mixed")
    expected = sorted(p.relative_to(tree).as_posix() for d in ids for p in (tree / d).iterdir())
    assert crops == sorted(expected + ["mixed/grey.png", "mixed/two.jpg"])
    for p in out.rglob("*.*"):
        assert Image.open(p).size == (112, 112)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["total"] == 9 and report["aligned"] == 6 and report["faces_written"] == 6
    assert report["no_face"] == ["mixed/none.jpg"]
    assert sorted(u["path"] for u in report["unreadable"]) == ["mixed/cut.jpg", "mixed/notes.txt"]
    assert report["several_faces"] == ["mixed/two.jpg"]
    assert "mixed/none.jpg" in captured.err and "mixed/cut.jpg" in captured.err
    assert "6 aligned" in captured.out


def test_align_all_faces_png_and_skip_existing(tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["align", str(tree), "--out", str(out), "--quiet", "--all-faces", "--format", "png"]) == 0
    assert (out / "mixed" / "two.png").is_file() and (out / "mixed" / "two_face1.png").is_file()
    capsys.readouterr()
    assert main(["align", str(tree), "--out", str(out), "--quiet", "--format", "png", "--skip-existing"]) == 0
    assert "6 skipped" in capsys.readouterr().out
    assert main(["align", str(tree), "--out", str(out), "--quiet", "--format", "png", "--skip-existing", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)  # the --report file's facts, on stdout
    assert report["total"] == 9 and report["skipped_existing"] == 6 and report["no_face"] == ["mixed/none.jpg"]


def test_align_errors(tree, tmp_path, capsys):
    assert main(["align", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["align", str(tree), "--out", str(tree / "inside"), "--quiet"]) == 2
    assert "inside" in capsys.readouterr().err


def test_embed(tree, weights, tmp_path, capsys):
    from safetensors import safe_open

    out = tmp_path / "e.safetensors"
    rc = main(["embed", str(tree / "mixed"), str(next((tree).glob("[0-9]*/*.jpg"))), "--weights", str(weights),
               "--out", str(out), "--quiet"])
    assert rc == 0
    with safe_open(str(out), framework="numpy") as f:
        emb = f.get_tensor("embeddings")
        meta = f.metadata()
    paths = json.loads(meta["paths"])
    assert emb.shape == (3, 512) and len(paths) == 3  # two.jpg, grey.pgm and the photo
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert meta["model"] == "facelivt_s"
    err = capsys.readouterr().err
    assert "none.jpg" in err and "cut.jpg" in err and "notes.txt" in err
    assert main(["embed", str(tree / "mixed" / "notes.txt"), "--weights", str(weights), "--out", str(out)]) == 2


def test_verify(tree, weights, tmp_path, capsys):
    photos = sorted(tree.glob("[0-9]*/*.jpg"))
    rc = main(["verify", str(photos[0]), str(photos[0]), "--weights", str(weights), "--json", "--threshold", "0.5"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["score"] == pytest.approx(1.0, abs=1e-5) and res["same"] is True and res["threshold"] == 0.5
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{photos[0]} {photos[0]} 1\n{photos[0]} {photos[2]} 0\n")
    assert main(["verify", str(photos[0]), str(photos[2]), "--weights", str(weights), "--calibrate", str(pairs)]) == 0
    out = capsys.readouterr().out
    assert "different people" in out and "calibration: 2 pairs, accuracy 100.00%" in out
    assert main(["verify", str(photos[0]), str(tree / "mixed" / "none.jpg"), "--weights", str(weights)]) == 2
    assert "no face" in capsys.readouterr().err


def test_enroll_identify(tree, weights, tmp_path, capsys):
    gallery = tmp_path / "gallery"
    photos = sorted(tree.glob("[0-9]*/*.jpg"))
    assert main(["enroll", str(gallery), "--name", "alice", str(photos[0]), "--weights", str(weights), "--quiet"]) == 0
    # every identity folder of the tree; "mixed" has two usable images, its bad files are reported
    assert main(["enroll", str(gallery), str(tree), "--weights", str(weights), "--quiet",
                 "--threshold", "0.9"]) == 0
    captured = capsys.readouterr()
    assert "cut.jpg" in captured.err
    with Gallery.open(gallery) as g:  # one SQLite database now, was gallery.json + embeddings.safetensors
        ids = sorted(d.name for d in tree.iterdir())
        assert g.names == ["alice"] + ids and g.metadata["threshold"] == 0.9
    rc = main(["identify", str(gallery), str(photos[0]), str(tree / "mixed" / "none.jpg"), "--weights",
               str(weights), "-k", "2", "--json"])
    assert rc == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert len(lines) == 1 and lines[0]["matches"][0]["name"] == "alice"
    assert lines[0]["matches"][0]["score"] == pytest.approx(1.0, abs=1e-5) and lines[0]["matches"][0]["accepted"]
    assert "none.jpg" in captured.err


def test_enroll_identify_errors(tree, weights, tmp_path, capsys):
    g = tmp_path / "g"
    photo = str(next(tree.glob("[0-9]*/*.jpg")))
    assert main(["identify", str(g), photo, "--weights", str(weights)]) == 2
    assert "no gallery" in capsys.readouterr().err
    assert main(["enroll", str(g), photo, "--weights", str(weights)]) == 2
    assert "--name" in capsys.readouterr().err
    assert main(["enroll", str(g), str(tree / "mixed"), "--weights", str(weights)]) == 2
    assert "no identity subfolders" in capsys.readouterr().err
    assert main(["enroll", str(g), "--name", "x", str(tree / "mixed" / "none.jpg"), "--weights", str(weights)]) == 2
    assert "no image could be enrolled" in capsys.readouterr().err
    assert not g.exists()
    # without --weights the pretrained default would be used, but the missing gallery is refused first
    assert main(["identify", str(g), photo]) == 2
    assert "no gallery" in capsys.readouterr().err


def test_align_tight_crops_with_border(tmp_path, capsys):
    src = tmp_path / "yaleb" / "person"
    src.mkdir(parents=True)
    yaleb = sorted((SHARED / "data" / "extended_yaleb_cropped").rglob("*.png"))[:48:12]
    for p in yaleb:
        shutil.copy(p, src / p.name)
    assert main(["align", str(tmp_path / "yaleb"), "--out", str(tmp_path / "out"), "--quiet", "--threads", "1",
                 "--pad", "0.3", "--pad-always"]) == 0
    assert len(list((tmp_path / "out" / "person").iterdir())) >= len(yaleb) - 1
    capsys.readouterr()
    assert main(["align", str(tmp_path / "yaleb"), "--out", str(tmp_path / "o2"), "--pad-always"]) == 2
    assert "--pad-always needs --pad" in capsys.readouterr().err
    assert main(["align", str(tmp_path / "yaleb"), "--out", str(tmp_path / "o2"), "--threads", "0"]) == 2


def test_face_option_on_a_photo_with_two_faces(tree, weights, tmp_path, capsys):
    """Before: enroll, embed, verify and identify used the largest face of a group photo without a word."""
    from safetensors import safe_open

    two, photo = tree / "mixed" / "two.jpg", sorted(tree.glob("[0-9]*/*.jpg"))[0]
    w = ["--weights", str(weights), "--quiet"]
    gallery = tmp_path / "g"
    assert main(["enroll", str(gallery), "--name", "group", str(two), str(photo), *w]) == 0
    err = capsys.readouterr().err
    assert f"warning: {two}: 2 faces found, used the largest" in err and str(photo) not in err
    assert "1 photo(s) held several faces" in err
    assert main(["enroll", str(gallery), "--name", "strict", str(two), "--face", "error", *w]) == 2
    err = capsys.readouterr().err
    assert f"{two}: 2 faces found" in err and "no image could be enrolled" in err
    assert main(["enroll", str(gallery), "--name", "all", str(two), "--face", "all", *w]) == 2
    assert "one face per photo" in capsys.readouterr().err
    with Gallery.open(gallery) as g:
        assert g.names == ["group"] and g.num_embeddings == 2
    # embed: one row per face, with the photo and the face index of each
    out = tmp_path / "e.safetensors"
    assert main(["embed", str(two), str(photo), "--out", str(out), "--face", "all", *w]) == 0
    with safe_open(str(out), framework="numpy") as f:
        emb, meta = f.get_tensor("embeddings"), f.metadata()
    assert emb.shape == (3, 512) and json.loads(meta["faces"]) == [0, 1, 0]
    assert json.loads(meta["paths"]) == [str(two), str(two), str(photo)]
    capsys.readouterr()
    # identify: every face
    assert main(["identify", str(gallery), str(two), "--face", "all", "--json", "-k", "1", *w]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["face"] for line in lines] == [0, 1] and all(line["image"] == str(two) for line in lines)
    # verify: the best pair of faces; the photo against itself pairs a face with itself
    assert main(["verify", str(two), str(two), "--face", "all", "--json", *w]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["score"] == pytest.approx(1.0, abs=1e-5) and res["face_a"] == res["face_b"]
    assert res["faces_found_a"] == res["faces_found_b"] == 2
    assert main(["verify", str(two), str(photo), *w]) == 0
    assert f"warning: {two}: 2 faces found, used the largest" in capsys.readouterr().err
    assert main(["verify", str(two), str(photo), "--face", "error", *w]) == 2
    assert "2 faces found" in capsys.readouterr().err
