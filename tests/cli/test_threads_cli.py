"""Thread and worker counts: every option that takes one refuses more than 4 x the CPU cores this process
may use, in one line naming the option and the limit, before any work. ``--threads 100000`` crashed
``facelivt embed`` (segmentation fault, exit 139, no message); with ``--aligned`` it was not even read."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from disk_helpers import assert_clean_failure, run_cli
from facelivt.cli import main

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
CROP = next(iter(sorted((SHARED / "data" / "celeba_subset_112").rglob("*.jpg"))), None)
CORES = len(os.sched_getaffinity(0))
LIMIT = 4 * CORES


def _commands(tmp: Path) -> dict[str, list[str]]:
    missing = str(tmp / "absent.safetensors")  # the count is refused before any weights are looked for
    return {
        "embed": ["embed", str(CROP), "--out", str(tmp / "e.safetensors"), "--weights", missing, "--threads", "100000"],
        "embed --aligned": ["embed", str(CROP), "--aligned", "--out", str(tmp / "e.safetensors"), "--weights", missing,
                            "--threads", "100000"],
        "verify --aligned": ["verify", str(CROP), str(CROP), "--aligned", "--weights", missing, "--threads", "100000"],
        "enroll --aligned": ["enroll", str(tmp / "gallery"), "--name", "a", str(CROP), "--aligned", "--weights", missing,
                             "--threads", "100000"],
        "align": ["align", str(CROP.parent), "--out", str(tmp / "crops"), "--threads", "100000"],
        "bench": ["bench", "--out", str(tmp / "bench"), "--quick", "--threads", "100000"],
        "export": ["export", "--format", "onnx", "--out", str(tmp / "m.onnx"), "--threads", "100000"],
        "eval": ["eval", "--bin", str(tmp / "lfw.bin"), "--workers", "100000"],
        "quickstart": ["quickstart", "--out", str(tmp / "qs"), "--quiet", "--threads", "100000"],
    }


OPTION = {"eval": "--workers", "quickstart": "train.num_threads"}


@pytest.mark.parametrize("command", list(_commands(Path("x"))))
def test_a_huge_thread_count_is_refused_in_one_line_before_any_work(command, tmp_path):
    assert CROP is not None, f"no face crops in {SHARED / 'data' / 'celeba_subset_112'}"
    proc = run_cli(*_commands(tmp_path)[command], cwd=tmp_path, timeout=300)
    assert_clean_failure(proc)
    option = OPTION.get(command, "--threads")
    name = command.split()[0]
    assert proc.stderr.splitlines()[-1] == (f"facelivt {name}: error: {option} must be an integer from 1 to {LIMIT} "
                                            f"(4 x the {CORES} CPU cores this process may use), got 100000")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing was written


@pytest.fixture
def weights(tmp_path) -> Path:
    from facelivt import create_model
    from facelivt.models import save_weights

    path = tmp_path / "mobilefacenet.safetensors"  # the quickest network to build
    save_weights(create_model("mobilefacenet").eval(), path)
    return path


def test_threads_are_applied_with_aligned_crops_too(weights, tmp_path, capsys):
    threads = 3 if torch.get_num_threads() != 3 else 1
    assert threads <= LIMIT
    out = tmp_path / "e.safetensors"
    assert main(["embed", str(CROP), "--aligned", "--weights", str(weights), "--out", str(out), "--quiet",
                 "--threads", str(threads)]) == 0, capsys.readouterr().err
    assert torch.get_num_threads() == threads  # the autouse fixture puts the count back after the test
    assert out.is_file()


WORKER_COMMANDS = ("embed", "embed --aligned", "verify --aligned", "enroll --aligned", "align")


@pytest.mark.parametrize("command", WORKER_COMMANDS)
def test_a_bad_worker_count_is_refused_in_one_line_before_any_work(command, tmp_path):
    args = _commands(tmp_path)[command]
    at = args.index("--threads")
    proc = run_cli(*args[:at], "--workers", "-1", cwd=tmp_path, timeout=300)
    assert_clean_failure(proc)
    assert proc.stderr.splitlines()[-1] == (f"facelivt {command.split()[0]}: error: --workers must be an integer from 0 "
                                            f"to {LIMIT} (4 x the {CORES} CPU cores this process may use), got -1")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_embed_gives_the_same_rows_with_and_without_workers(weights, tmp_path, capsys):
    photos = sorted((SHARED / "data" / "celeba_subset").rglob("*.jpg"))[:6]
    rows = []
    for workers in ("0", "3"):
        out = tmp_path / f"e{workers}"
        assert main(["embed", *map(str, photos), "--weights", str(weights), "--out", str(out), "--quiet",
                     "--batch-size", "4", "--workers", workers]) == 0, capsys.readouterr().err
        rows.append((np.load(out / "embeddings.npy"), (out / "index.csv").read_text()))
    np.testing.assert_allclose(rows[0][0], rows[1][0], atol=1e-5)
    assert rows[0][1] == rows[1][1] and len(rows[0][0]) >= 5
