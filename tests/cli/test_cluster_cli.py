"""facelivt cluster on real aligned crops of four people (random weights: the groups mean nothing, so the
shape of the outputs is checked here and the grouping in tests/inference/test_cluster.py); bad options
and outputs are refused before any work with one clear line."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from image_helpers import ALIGNED

from facelivt.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def people() -> list[Path]:
    return sorted(d for d in ALIGNED.iterdir() if d.is_dir())[:4]


def _common(weights: Path) -> list[str]:
    return ["--aligned", "--weights", str(weights), "--quiet", "--threads", "1"]


def test_folders_csv_and_json_agree(tmp_path, people, weights, capsys):
    photos = sorted(str(p) for person in people for p in person.iterdir())
    out, table = tmp_path / "clusters", tmp_path / "clusters.csv"
    assert main(["cluster", *map(str, people), "--out", str(out), "--csv", str(table), "--json",
                 "--threshold", "0.9", *_common(weights)]) == 0
    report = json.loads(capsys.readouterr().out)
    with open(table, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "face", "cluster"] and sorted(r["path"] for r in rows) == photos
    assert [(r["path"], int(r["cluster"])) for r in rows] == [(x["path"], x["cluster"]) for x in report["faces"]]
    labels = [int(r["cluster"]) for r in rows]
    assert set(labels) <= set(range(-1, report["groups"])) and report["noise"] == labels.count(-1)
    folders = sorted(p.name for p in out.iterdir())
    want = [f"cluster_{g:03d}" for g in range(report["groups"])] + (["noise"] if -1 in labels else [])
    assert folders == sorted(want)
    for g in range(-1, report["groups"]):
        folder = out / ("noise" if g == -1 else f"cluster_{g:03d}")
        members = sorted(os.path.realpath(p) for p in folder.iterdir())
        assert all((folder / p).is_symlink() for p in os.listdir(folder))
        assert members == sorted(os.path.realpath(r["path"]) for r in rows if int(r["cluster"]) == g)
    sizes = [len(os.listdir(out / f"cluster_{g:03d}")) for g in range(report["groups"])]
    assert sizes == sorted(sizes, reverse=True) and all(n >= 2 for n in sizes)


def test_copies_and_a_rerun_replaces_the_folder(tmp_path, people, weights, capsys):
    out = tmp_path / "clusters"
    for threshold in ("0.99", "-0.9"):  # everyone alone, then everyone together
        assert main(["cluster", str(people[0]), "--out", str(out), "--copy", "--threshold", threshold,
                     *_common(weights)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["cluster_000"]
    files = list((out / "cluster_000").iterdir())
    assert len(files) == len(list(people[0].iterdir())) and not any(p.is_symlink() for p in files)
    assert "1 groups" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["no_output", "min_size", "threshold", "out_is_a_file", "out_holds_files",
                                  "csv_inside_input", "missing_input"])
def test_bad_input(tmp_path, people, case, capsys):
    args = [str(people[0]), "--out", str(tmp_path / "c")]
    if case == "no_output":
        args, want = [str(people[0])], "give --out DIR"
    elif case == "min_size":
        args, want = args + ["--min-size", "0"], "--min-size must be at least 1"
    elif case == "threshold":
        args, want = args + ["--threshold", "1.5"], "--threshold must be a finite cosine score"
    elif case == "out_is_a_file":
        (tmp_path / "c").write_text("x")
        want = "is a file"
    elif case == "out_holds_files":
        (tmp_path / "c").mkdir()
        (tmp_path / "c" / "notes.txt").write_text("mine")
        want = "holds other files (notes.txt)"
    elif case == "csv_inside_input":
        args, want = [str(people[0]), "--csv", str(people[0] / "c.csv")], "it lies inside the input"
    else:
        args, want = [str(tmp_path / "nowhere"), "--csv", str(tmp_path / "c.csv")], "input not found"
    rc = main(["cluster", *args, "--weights", str(tmp_path / "none.safetensors"), "--aligned"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("facelivt cluster: error: ") and want in err and err.count("\n") == 1, err
    assert not (people[0] / "c.csv").exists() and not (tmp_path / "c.csv").exists()
    assert case in ("out_is_a_file", "out_holds_files") or not (tmp_path / "c").exists()
