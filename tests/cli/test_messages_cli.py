"""Messages that say what is wrong (issue 20): each case run as a real ``facelivt`` process."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors import safe_open

from disk_helpers import assert_clean_failure, run_cli
from facelivt import create_model
from facelivt.evaluation.binset import write_bin
from facelivt.models import list_models, save_weights

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
CELEBA = SHARED / "data" / "celeba_subset"


@pytest.fixture(scope="module")
def weights_s(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "w.safetensors"
    save_weights(create_model("facelivt_s").eval(), path)
    return path


def error_line(proc) -> str:
    """The one error line of a failed run (the warning about weights with no record of real-face
    training, which these untrained test weights get, aside)."""
    assert_clean_failure(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_embed_with_an_unknown_model_says_it_is_unknown(weights_s, tmp_path):
    photo = next(p for p in sorted(CELEBA.rglob("*.jpg")))
    proc = run_cli("embed", str(photo), "--model", "facelivt_xxl", "--weights", str(weights_s),
                   "--out", str(tmp_path / "e.safetensors"), "--quiet")
    assert error_line(proc) == (f"facelivt embed: error: unknown model 'facelivt_xxl'; available models: "
                                f"{', '.join(list_models())}")
    assert not (tmp_path / "e.safetensors").exists()


@pytest.fixture(scope="module")
def binset(tmp_path_factory) -> Path:
    """A real .bin verification set of four aligned faces (two pairs)."""
    faces = sorted((SHARED / "data" / "celeba_subset_112").rglob("*.jpg"))[:4]
    return write_bin(tmp_path_factory.mktemp("bin") / "lfw.bin", [p.read_bytes() for p in faces], [True, False])


def test_a_bin_set_given_as_weights_is_named_as_one(binset, tmp_path):
    photo = next(p for p in sorted(CELEBA.rglob("*.jpg")))
    for args in (["embed", str(photo), "--weights", str(binset), "--out", str(tmp_path / "e.safetensors"), "--quiet"],
                 ["convert", str(binset), "--out", str(tmp_path / "o.safetensors"), "--model", "facelivt_s"]):
        line = error_line(run_cli(*args))
        assert line == (f"facelivt {args[0]}: error: {binset} is not a weights file or checkpoint: it looks like a .bin "
                        "verification set (a pickle of encoded face images and pair labels; `facelivt eval --bin` "
                        "reads those)")
    assert not list(tmp_path.iterdir())


def test_a_folder_given_for_a_file_is_called_a_folder(tmp_path):
    """--weights, --bin and the training config named as folders: 'is a folder', not 'not found'."""
    for name in ("w.safetensors", "lfw.bin", "train.yaml"):
        (tmp_path / name).mkdir()
    photo = next(p for p in sorted(CELEBA.rglob("*.jpg")))
    cases = [
        (["embed", str(photo), "--weights", str(tmp_path / "w.safetensors"), "--out", str(tmp_path / "e.safetensors"),
          "--quiet"], "w.safetensors", "weights file"),
        (["convert", str(tmp_path / "w.safetensors"), "--out", str(tmp_path / "o.safetensors"), "--model", "facelivt_s"],
         "w.safetensors", "weights file"),
        (["eval", "--model", "facelivt_s", "--bin", str(tmp_path / "lfw.bin"), "--quiet"], "lfw.bin",
         "verification set"),
        (["train", str(tmp_path / "train.yaml")], "train.yaml", "config file"),
    ]
    for args, name, what in cases:
        line = error_line(run_cli(*args, cwd=tmp_path))
        assert line == f"facelivt {args[0]}: error: {tmp_path / name} is a folder, not a {what}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lfw.bin", "train.yaml", "w.safetensors"]


def test_identify_with_another_flip_setting_says_what_to_pass(weights_s, tmp_path):
    face = sorted((SHARED / "data" / "celeba_subset_112").rglob("*.jpg"))[0]
    common = [str(face), "--weights", str(weights_s), "--aligned", "--quiet"]
    gallery = tmp_path / "g"
    assert run_cli("enroll", str(gallery), "--name", "a", *common).returncode == 0
    line = error_line(run_cli("identify", str(gallery), *common, "--no-flip"))
    assert line.startswith(f"facelivt identify: error: gallery {gallery} was enrolled with flip "), line
    assert line.endswith("not comparable; drop --no-flip (flip=True) to use this gallery"), line
    assert "different models" not in line


@pytest.fixture(scope="module")
def problem_photos(tmp_path_factory, mtcnn_reference) -> Path:
    """img/ with one face, a photo without a face, a text file under a .jpg name and a truncated JPEG."""
    root = tmp_path_factory.mktemp("problems") / "img"
    root.mkdir()
    one = next(k for k in sorted(mtcnn_reference) if len(mtcnn_reference[k]) == 1)
    none = next(k for k in sorted(mtcnn_reference) if len(mtcnn_reference[k]) == 0)
    shutil.copy(CELEBA / one, root / "face.jpg")
    shutil.copy(CELEBA / none, root / "none.jpg")
    (root / "text.jpg").write_text("not an image")
    (root / "cut.jpg").write_bytes((CELEBA / one).read_bytes()[:500])
    return root


def test_each_skipped_file_is_named_once(problem_photos, weights_s, tmp_path):
    """'img/x.png: no face found', not 'img/x.png: img/x.png: no face found'."""
    bad = {"none.jpg": "no face found", "text.jpg": "could not be decoded: not an image", "cut.jpg": "could not be opened"}
    model = ["--weights", str(weights_s), "--quiet"]
    embed = run_cli("embed", str(problem_photos), "--out", str(tmp_path / "e.safetensors"), *model)
    assert embed.returncode == 0, embed.stderr
    enroll = run_cli("enroll", str(tmp_path / "g"), "--name", "a", str(problem_photos / "face.jpg"), *model)
    assert enroll.returncode == 0, enroll.stderr
    identify = run_cli("identify", str(tmp_path / "g"), str(problem_photos), *model)
    assert identify.returncode == 0, identify.stderr
    for proc in (embed, identify):
        for name, reason in bad.items():
            lines = [line for line in proc.stderr.splitlines() if name in line]
            assert len(lines) == 1 and lines[0].startswith(f"  {problem_photos / name}: {reason}"), proc.stderr
            assert lines[0].count(name) == 1, lines[0]
    align = run_cli("align", str(problem_photos), "--out", str(tmp_path / "out"), "--quiet")
    assert align.returncode == 0, align.stderr
    for name in ("text.jpg", "cut.jpg"):
        lines = [line for line in align.stderr.splitlines() if name in line]
        assert len(lines) == 1 and lines[0].startswith(f"  {name}: {bad[name]}") and lines[0].count(name) == 1, align.stderr


def _warnings_are_log_lines(stderr: str) -> list[str]:
    """The ``warning: ...`` lines; no Python warning (with its source line) in between."""
    assert "Warning:" not in stderr and "warnings.warn" not in stderr and ".py:" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


def test_skipped_records_are_logged_warnings(tmp_path):
    """pack and train say what they skip as 'warning: ...' lines, not as Python warnings with a source line."""
    faces = tmp_path / "faces"
    for ident in ("7201", "7202"):
        (faces / ident).mkdir(parents=True)
        for src in sorted((SHARED / "data" / "celeba_subset_112" / ident).glob("*.jpg"))[:3]:
            shutil.copy(src, faces / ident / src.name)
    (faces / "7201" / "broken.jpg").write_text("not an image")
    (faces / "nobody").mkdir()
    pack = run_cli("pack", str(faces), "--out", str(tmp_path / "rec"))
    assert pack.returncode == 0, pack.stderr
    assert _warnings_are_log_lines(pack.stderr) == [
        f"warning: {faces}: 1 identity folder(s) without images left out: nobody",
        f"warning: pack: skipping unreadable image: {faces / '7201' / 'broken.jpg'} could not be decoded: "
        "not an image (or a format Pillow cannot read)",
    ]
    rec = tmp_path / "rec" / "train.rec"
    offset = int((tmp_path / "rec" / "train.idx").read_text().splitlines()[2].split()[1])  # key 2
    data = bytearray(rec.read_bytes())
    data[offset + 8 + 24 + 2 : offset + 8 + 24 + 200] = bytes(198)  # its JPEG bytes, framing kept
    rec.write_bytes(bytes(data))
    train = run_cli("train", str(Path(__file__).resolve().parents[2] / "configs" / "synthetic_tiny.yaml"),
                    f"output={tmp_path / 'run'}", "data.type=recordio", f"data.root={tmp_path / 'rec'}",
                    "train.epochs=1", "train.batch_size=2", "train.progress=false", "data.max_bad_fraction=0.5")
    assert train.returncode == 0, train.stderr
    lines = _warnings_are_log_lines(train.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"warning: RecordIO {tmp_path / 'rec'}: skipping bad sample key 2: "), lines


def test_embed_and_enroll_both_follow_a_linked_identity_folder(weights_s, tmp_path):
    """`embed ROOT` takes the photos of a symlinked identity folder, as `enroll ROOT` does; a loop is not followed."""
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere" / "bob"
    (root / "alice").mkdir(parents=True)
    elsewhere.mkdir(parents=True)
    faces = sorted((SHARED / "data" / "celeba_subset_112" / "7201").glob("*.jpg"))[:2]
    shutil.copy(faces[0], root / "alice" / "1.jpg")
    shutil.copy(faces[1], elsewhere / "1.jpg")
    (root / "bob").symlink_to(elsewhere, target_is_directory=True)
    (root / "alice" / "loop").symlink_to(root, target_is_directory=True)
    model = ["--weights", str(weights_s), "--aligned", "--quiet"]
    embed = run_cli("embed", str(root), "--out", str(tmp_path / "e.safetensors"), *model)
    assert embed.returncode == 0, embed.stderr
    with safe_open(str(tmp_path / "e.safetensors"), framework="np") as f:
        paths = json.loads(f.metadata()["paths"])
    assert paths == [str(root / "alice" / "1.jpg"), str(root / "bob" / "1.jpg")]
    assert f"warning: {root / 'alice' / 'loop'} links back to {root}" in embed.stderr
    enroll = run_cli("enroll", str(tmp_path / "g"), str(root), *model)
    assert enroll.returncode == 0, enroll.stderr
    assert "enrolled 2 images of 2 identities" in enroll.stdout
