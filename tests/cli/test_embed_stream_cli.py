"""facelivt embed into a folder: a run killed part way (SIGKILL, a real process) and resumed gives the
rows of an uninterrupted run; a changed photo is embedded again; the files are plain NumPy and CSV;
bad options and outputs are refused before any work."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from gallery_helpers import child_env
from image_helpers import ALIGNED

from facelivt.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def people() -> list[Path]:
    """Folders of real aligned crops: 25 identities, about 570 photos."""
    return sorted(d for d in ALIGNED.iterdir() if d.is_dir())[:25]


def _embed(folders, out, weights, *extra) -> list[str]:
    return [sys.executable, "-m", "facelivt", "embed", *map(str, folders), "--out", str(out), "--aligned",
            "--weights", str(weights), "--batch-size", "2", "--threads", "1", *extra]


def _rows(folder: Path) -> dict[tuple[str, str], np.ndarray]:
    with open(folder / "index.csv", newline="", encoding="utf-8") as f:
        lines = list(csv.DictReader(f))
    vectors = np.load(folder / "embeddings.npy")
    assert len(vectors) == len(lines) and [int(r["row"]) for r in lines] == list(range(len(lines)))
    keys = [(r["path"], r["face"]) for r in lines]
    assert len(set(keys)) == len(keys), "duplicate rows"
    return dict(zip(keys, vectors))


def _indexed(folder: Path) -> int:
    try:
        return (folder / "index.csv").read_bytes().count(b"\n") - 1
    except FileNotFoundError:
        return -1


def test_a_killed_run_resumes_to_the_rows_of_a_whole_run(tmp_path, people, weights):
    """Before: `embed` held every embedding in memory and wrote one file at the very end: a run killed
    after an hour left nothing, and there was no --resume."""
    out = tmp_path / "out"
    proc = subprocess.Popen(_embed(people, out, weights, "--quiet"), env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _indexed(out) < 20 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    done = _rows(out)  # what the killed run left is readable as it is
    total = sum(len(list(p.iterdir())) for p in people)
    assert 20 <= len(done) < total
    resumed = subprocess.run(_embed(people, out, weights, "--resume", "--json"), env=child_env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["skipped"] >= len(done) and report["skipped"] + report["embedded"] == total
    assert report["images_per_second"] > 0
    whole = tmp_path / "whole"
    assert main(["embed", *map(str, people), "--out", str(whole), "--aligned", "--weights", str(weights),
                 "--quiet", "--threads", "1"]) == 0
    got, want = _rows(out), _rows(whole)
    assert got.keys() == want.keys() and len(got) == total
    for key, row in want.items():
        np.testing.assert_allclose(got[key], row, atol=1e-5)


def test_resume_embeds_a_changed_photo_again(tmp_path, people, weights, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    sources = sorted(people[0].iterdir())[:3]
    for src in sources:
        (photos / src.name).write_bytes(src.read_bytes())
    out = tmp_path / "out"
    common = ["--aligned", "--weights", str(weights), "--quiet", "--threads", "1"]
    assert main(["embed", str(photos), "--out", str(out), *common]) == 0
    before = _rows(out)
    changed = photos / sources[0].name
    changed.write_bytes(sorted(people[1].iterdir())[0].read_bytes())
    capsys.readouterr()
    assert main(["embed", str(photos), "--out", str(out), "--resume", "--json", *common]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["skipped"], report["replaced"], report["embedded"], report["rows"]) == (2, 1, 1, 3)
    after = _rows(out)
    assert after.keys() == before.keys()
    key = (str(changed), "0")
    assert not np.allclose(after[key], before[key], atol=1e-3)
    with open(out / "index.csv", newline="", encoding="utf-8") as f:
        digests = {r["path"]: r["sha256"] for r in csv.DictReader(f)}
    assert digests[str(changed)] == hashlib.sha256(changed.read_bytes()).hexdigest()


def test_progress_bar_shows_images_per_second(tmp_path, people, weights):
    proc = subprocess.run(_embed([people[0]], tmp_path / "out", weights), env=child_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "img/s" in proc.stderr and "images/s" in proc.stdout


@pytest.mark.parametrize("case", ["resume_one_file", "out_is_a_file", "earlier_run", "out_inside_input"])
def test_bad_outputs_are_refused_before_any_work(tmp_path, people, case, capsys):
    out = tmp_path / "out"
    extra: list[str] = []
    if case == "resume_one_file":
        out, extra = tmp_path / "e.safetensors", ["--resume"]
        want = "--resume continues a streamed run"
    elif case == "out_is_a_file":
        out.write_text("x")
        want = "is a file: the npy format writes a folder"
    elif case == "earlier_run":
        out.mkdir()
        (out / "index.csv").write_text("row,path,face,sha256\n")
        want = "holds the embeddings of an earlier run: pass --resume"
    else:
        out = people[0] / "emb"
        want = "it lies inside the input"
    rc = main(["embed", str(people[0]), "--out", str(out), "--aligned", "--weights", str(tmp_path / "none.safetensors"),
               *extra])
    err = capsys.readouterr().err
    assert rc == 2 and want in err, err
    assert not (people[0] / "emb").exists()
