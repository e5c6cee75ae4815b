"""A full disk (a real, small tmpfs) while training writes a checkpoint, config.yaml or log.jsonl:
one clear line and exit code 2; the previous checkpoint and last.json stay whole and resumable."""
from __future__ import annotations

import json
import subprocess

import pytest
import torch

from facelivt.errors import OutputWriteError
from facelivt.training import atomic_torch_save, load_checkpoint_file
from facelivt.training.logging import RunLogger

from disk_helpers import assert_clean_failure, fill, listing, tmpfs
from train_helpers import TINY_CLI, tiny_train_command


def test_torch_save_on_a_full_disk_names_the_cause_and_keeps_the_old_file():
    with tmpfs("256k") as disk:
        path = disk / "state.pt"
        atomic_torch_save({"w": torch.ones(4)}, path)
        with pytest.raises(OutputWriteError, match=f"cannot write {path}: No space left on device"):
            atomic_torch_save({"w": torch.zeros(256, 1024)}, path)  # 1 MiB: torch's own error would be about zip positions
        assert sorted(listing(disk)) == ["state.pt"]
        assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(4))


def test_log_lines_are_written_whole_or_not_at_all():
    with tmpfs("64k") as disk:
        logger = RunLogger(disk, tensorboard=False)
        logger.log("start", 0, note="x")
        fill(disk, leave=0)
        with pytest.raises(OutputWriteError, match="log.jsonl: No space left on device"):
            logger.log("train", 1, note="y" * 20000)
        logger.close()
        lines = (disk / "log.jsonl").read_text().splitlines()
        assert [json.loads(line)["event"] for line in lines] == ["start"]


def test_a_line_torn_by_a_killed_run_is_dropped(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"event": "start", "step": 0}\n{"event": "tra')
    logger = RunLogger(tmp_path, tensorboard=False)
    logger.log("start", 3)
    logger.close()
    assert [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()] == [0, 3]


def _train(out, *overrides) -> subprocess.CompletedProcess:
    return subprocess.run(tiny_train_command(out, *overrides), cwd=TINY_CLI.parent, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_full_disk_while_training_exits_2_and_the_last_checkpoint_resumes():
    with tmpfs("4m") as disk:
        out = disk / "run"
        first = _train(out, "train.epochs=1")  # 4 steps, checkpoints at 2 and 4
        assert first.returncode == 0, first.stderr[-3000:]
        step4 = out / "checkpoints" / "step-00000004" / "rank0.pt"
        fill(disk, leave=step4.stat().st_size // 2)  # room for config.yaml and log lines, not a checkpoint

        full = _train(out, "train.epochs=2")  # continues from 4; its checkpoint of step 6 does not fit
        assert_clean_failure(full)
        error = [line for line in full.stderr.splitlines() if "error:" in line]
        assert len(error) == 1 and "step-00000006/rank0.pt: No space left on device" in error[0], full.stderr[-3000:]
        assert json.loads((out / "checkpoints" / "last.json").read_text())["step"] == 4
        assert load_checkpoint_file(step4)["global_step"] == 4
        files = listing(out)
        assert not [name for name in files if ".tmp" in name], sorted(files)
        assert all(json.loads(line) for line in files["log.jsonl"].decode().splitlines())

        (disk / "more").mkdir()
        fill(disk / "more", leave=0)  # nothing fits, not even config.yaml: the same, and nothing changes
        before = listing(out)
        nothing = _train(out, "train.epochs=2")
        assert_clean_failure(nothing)
        assert "No space left on device" in nothing.stderr and listing(out) == before

        (disk / ".filler").unlink()
        (disk / "more" / ".filler").unlink()
        resumed = _train(out, "train.epochs=2")
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert "stopped: completed after 8/8 steps" in resumed.stderr
        starts = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"start"' in line]
        assert starts[-1]["step"] == 4 and starts[-1]["resumed_from"].endswith("step-00000004")


def test_teacher_disk_cache_on_a_full_disk_stops_before_training_and_leaves_nothing():
    """The cache was a sparse memory-mapped file: the first write into a hole on the full disk killed
    the run with SIGBUS (exit 135, no message) and left train.lock and the sparse file behind."""
    cache = ("distill.enabled=true", "distill.cache=disk", "distill.teacher=tinynet", "distill.allow_random_teacher=true",
             "distill.cache_dtype=float32", "data.images_per_identity=8", "train.epochs=1", "train.checkpoint_every_steps=0")
    with tmpfs("1m") as disk:
        out = disk / "run"
        fill(disk, leave=8192)  # room for train.lock and filled.bin, not for 64 samples x 2 views x 16 floats
        full = _train(out, *cache)
        assert_clean_failure(full)
        error = [line for line in full.stderr.splitlines() if "error:" in line]
        assert len(error) == 1, full.stderr[-3000:]
        assert "teacher_cache/embeddings.bin: No space left on device (the teacher cache needs 8,192 bytes" in error[0]
        assert listing(out) == {}  # no train.lock, no cache file, no log
        (disk / ".filler").unlink()
        room = _train(out, *cache)
        assert room.returncode == 0, room.stderr[-3000:]
        cached = out / "teacher_cache" / "embeddings.bin"
        assert cached.stat().st_size == 8192 and cached.stat().st_blocks * 512 >= 8192
        assert not (out / "train.lock").exists()


@pytest.mark.slow
def test_two_processes_both_stop_in_one_line_when_the_teacher_cache_does_not_fit():
    """The first process of a machine creates the shared cache; the others waited for it in a barrier
    and died with gloo's "Connection closed by peer" traceback when it failed."""
    with tmpfs("1m") as disk:
        out = disk / "run"
        fill(disk, leave=8192)
        command = tiny_train_command(out, "distill.enabled=true", "distill.cache=disk", "distill.teacher=tinynet",
                                     "distill.allow_random_teacher=true", "distill.cache_dtype=float32",
                                     "data.images_per_identity=8", "train.epochs=1")
        torchrun = [command[0], "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *command[1:]]
        proc = subprocess.run(torchrun, cwd=TINY_CLI.parent, capture_output=True, text=True, timeout=300)
        assert proc.returncode != 0
        errors = [line for line in proc.stderr.splitlines() if line.startswith("facelivt train: error:")]
        assert len(errors) == 2, proc.stderr[-4000:]
        assert any("embeddings.bin: No space left on device" in line for line in errors), errors
        assert "[rank" not in proc.stderr, proc.stderr[-4000:]  # no rank's traceback
        assert listing(out) == {}
