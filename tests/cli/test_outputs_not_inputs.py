"""An output that is one of the command's inputs is refused before any work, for every command
that writes: the same path, a symlink to it, a hard link, a path through ``..``; an output folder inside
an input folder that the command reads whole; an input inside the output folder of a command that owns
that folder. Every file and folder the command was given is unchanged afterwards. The three commands of
the report run as real processes; the others run in this process, which they leave before any work.

Before: ``embed --weights w --out w`` replaced 20 MB of weights with a small embeddings file (exit 0),
``export --format torchscript --out w.safetensors`` wrote TorchScript over the weights, ``convert w w
--deploy`` rewrote the weights in place, ``pack`` and ``train`` wrote their outputs into their data folder."""
from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path

import pytest
import torch

from disk_helpers import assert_clean_failure, listing, run_cli

from facelivt.cli import main

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
CROPS = SHARED / "data" / "celeba_subset_112"
TINY = Path(__file__).resolve().parents[2] / "configs" / "synthetic_tiny.yaml"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    from facelivt import create_model
    from facelivt.models import save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "w.safetensors"
    save_weights(create_model("facelivt_s").eval(), path)
    return path


@pytest.fixture
def work(tmp_path, weights) -> Path:
    """w.safetensors, a hard link and a symlink to it, a.jpg, pairs.txt and images/<identity>/<image>
    (two identities of three crops), in the current folder of the command."""
    shutil.copy(weights, tmp_path / "w.safetensors")
    os.link(tmp_path / "w.safetensors", tmp_path / "hard.safetensors")
    (tmp_path / "link.safetensors").symlink_to("w.safetensors")
    (tmp_path / "sub").mkdir()
    people = sorted(d for d in CROPS.iterdir() if d.is_dir())[:2]
    for d in people:
        (tmp_path / "images" / d.name).mkdir(parents=True)
        for f in sorted(d.iterdir())[:3]:
            shutil.copy(f, tmp_path / "images" / d.name / f.name)
    shutil.copy(sorted(people[0].iterdir())[0], tmp_path / "a.jpg")
    (tmp_path / "pairs.txt").write_text(f"1 1\n{people[0].name} 1 2\n")
    return tmp_path


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def refused(work: Path, *args: str, words: tuple[str, ...] = ()) -> None:
    """``facelivt ARGS``, run in ``work`` (in this process: it must fail before any work), fails in one
    error line with ``words``; no file or folder there is changed, added or removed."""
    before, names = listing(work), tree(work)
    err = io.StringIO()
    with contextlib.chdir(work), contextlib.redirect_stderr(err):
        rc = main(list(args))
    errors = [line for line in err.getvalue().splitlines() if "error:" in line]
    assert rc == 2 and len(errors) == 1 and "Traceback" not in err.getvalue(), err.getvalue()[-3000:]
    assert "refusing to write" in errors[0], errors[0]
    for word in words:
        assert word in errors[0], errors[0]
    assert listing(work) == before
    assert tree(work) == names


SAME = ("it is the input",)


@pytest.mark.parametrize("args", [
    ("convert", "w.safetensors", "--out", "w.safetensors", "--deploy"),
    ("embed", "a.jpg", "--aligned", "--quiet", "--weights", "w.safetensors", "--out", "w.safetensors"),
    ("export", "--weights", "w.safetensors", "--format", "torchscript", "--out", "w.safetensors"),
])
def test_the_reported_commands_as_processes(work, args):
    """The three commands of the report, each in a fresh process as a user runs it."""
    before, names = listing(work), tree(work)
    proc = run_cli(*args, cwd=work)
    assert_clean_failure(proc)
    assert "refusing to write w.safetensors" in proc.stderr and proc.stderr.count("error:") == 1, proc.stderr[-3000:]
    assert listing(work) == before and tree(work) == names


@pytest.mark.parametrize("out", ["w.safetensors", "link.safetensors", "hard.safetensors", "sub/../w.safetensors",
                                 "../{work}/w.safetensors"])
def test_convert_onto_its_input(work, out):
    refused(work, "convert", "w.safetensors", "--out", out.format(work=work.name), "--deploy", words=SAME)


def test_embed_onto_its_weights_or_an_image(work):
    weights = ("--aligned", "--quiet", "--model", "facelivt_s", "--weights", "w.safetensors")
    refused(work, "embed", "a.jpg", *weights, "--out", "w.safetensors", words=(*SAME, "--weights w.safetensors"))
    refused(work, "embed", "images", *weights, "--out", "link.safetensors", words=SAME)
    image = next((work / "images").rglob("*.jpg")).relative_to(work)
    refused(work, "embed", "images", *weights, "--out", str(image), words=(*SAME, "image"))


def test_export_onto_its_weights(work):
    os.replace(work / "w.safetensors", work / "w.pt")  # read by content: safetensors under a .pt name
    (work / "link.safetensors").unlink()
    (work / "hard.safetensors").unlink()
    refused(work, "export", "--weights", "w.pt", "--format", "torchscript", "--out", "w.pt", words=SAME)
    refused(work, "export", "--weights", "w.pt", "--format", "onnx", "--out", "images", "--data", "images",
            words=(".onnx",))
    (work / "w.mlpackage").mkdir()
    os.replace(work / "w.pt", work / "w.mlpackage" / "w.pt")  # a Core ML export replaces its whole folder
    refused(work, "export", "--weights", "w.mlpackage/w.pt", "--format", "coreml", "--out", "w.mlpackage",
            words=("that folder holds the input --weights",))


@pytest.mark.parametrize("fmt,out,allowed", [
    ("torchscript", "w.safetensors", ".pt, .pth or .torchscript"),
    ("onnx", "x.pt", ".onnx"),
    ("coreml", "x.onnx", ".mlpackage"),
    ("onnx", "x", ".onnx"),
])
def test_export_output_named_by_its_format(work, fmt, out, allowed):
    """Before: TorchScript under a .safetensors name (over the weights), ONNX under .pt, ... all exit 0."""
    refused(work, "export", "--weights", "w.safetensors", "--format", fmt, "--out", out,
            words=(f"--format {fmt} needs --out ending in {allowed}",))


def test_eval_pack_make_bin_align_onto_their_inputs(work):
    refused(work, "eval", "--model", "facelivt_s", "--ijb", "images", "--out", "images", "--device", "cpu", words=SAME)
    refused(work, "pack", "images", "--out", "images", words=SAME)
    refused(work, "pack", "images", "--out", "images/rec", words=("it lies inside the input IMAGES",))
    refused(work, "make-bin", "images", "--pairs", "pairs.txt", "--out", "pairs.txt", words=SAME)
    refused(work, "align", "images", "--out", "images/crops", "--mtcnn-weights", "missing",
            words=("it lies inside the input IMAGES",))  # refused before the detector's weights are looked for


def test_enroll_gallery_onto_its_photos(work):
    model = ("--aligned", "--quiet", "--model", "facelivt_s", "--weights", "w.safetensors")
    refused(work, "enroll", "images", "--name", "x", "images", *model, words=SAME)
    refused(work, "enroll", "images/gallery", "images", *model, words=("it lies inside the input photos",))
    refused(work, "enroll", "a.jpg", "--name", "x", "a.jpg", *model, words=SAME)


def test_train_output_onto_its_data_or_weights(work):
    """The run folder is not the data folder (nor inside it: its folders would be read as identities), and
    does not hold the weights it starts from (model.safetensors there is the run's own output)."""
    tiny = (str(TINY), "train.max_steps=1", "train.progress=false", "train.tensorboard=false")
    refused(work, "train", *tiny, "data.type=folder", "data.root=images", "output=images", words=SAME)
    refused(work, "train", *tiny, "data.type=folder", "data.root=images", "output=images/run",
            words=("it lies inside the input data.root",))
    (work / "run").mkdir()
    shutil.copy(work / "w.safetensors", work / "run" / "model.safetensors")
    refused(work, "train", *tiny, "model.weights=run/model.safetensors", "output=run",
            words=("that folder holds the input model.weights",))


def test_quickstart_report_onto_its_data(work):
    refused(work, "quickstart", "--quick", "--data", "images", "--out", "images", words=SAME)
    refused(work, "quickstart", "--quick", "--data", "images", "--out", "images/report",
            words=("it lies inside the input data.root",))


def test_download_into_a_folder_holding_a_local_name(work):
    refused(work, "download", "w.safetensors", "--out", ".", words=("that folder holds the input NAME",))


def test_an_output_beside_its_input_is_written(work):
    """Same name, another folder: not the input."""
    from safetensors.torch import load_file

    before = (work / "w.safetensors").read_bytes()
    assert main(["convert", str(work / "w.safetensors"), "--out", str(work / "sub" / "w.safetensors"), "--model", "facelivt_s"]) == 0
    assert (work / "w.safetensors").read_bytes() == before
    new, old = load_file(work / "sub" / "w.safetensors"), load_file(work / "w.safetensors")
    assert new.keys() == old.keys() and all(torch.equal(new[k], old[k]) for k in new)
