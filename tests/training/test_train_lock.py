"""One run per output folder: a second `facelivt train` on a folder in use stops at once with the
owner's PID; the lock of a killed run is taken over."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from facelivt.training.lock import OutputInUseError, OutputLock

from net_helpers import free_port

from train_helpers import TINY_CLI, tiny_train_command


def test_lock_is_exclusive_between_processes_and_dies_with_its_owner(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from facelivt.training.lock import OutputLock;"
         "held = OutputLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(600)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputInUseError, match=f"in use by PID {holder.pid}"):
            OutputLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    lock = OutputLock(tmp_path).acquire()  # the kernel dropped the dead process's lock
    assert lock.stale is not None and lock.stale.pid == holder.pid
    assert (tmp_path / "train.lock").read_text().split()[0] == str(os.getpid())
    lock.release()
    assert not (tmp_path / "train.lock").exists()  # a run that ends normally leaves no lock file
    again = OutputLock(tmp_path).acquire()  # released cleanly: nothing stale
    assert again.stale is None
    again.release()


def _wait_for_lock(path, proc, timeout=240.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.is_file() and path.read_text().split()[:1] == [str(proc.pid)]):
        assert proc.poll() is None, f"the first run ended early: {proc.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, "the first run did not take the lock in time"
        time.sleep(0.05)


@pytest.mark.slow

def _start_ranks(command, world):
    port = free_port()
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                   LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen(command, cwd=TINY_CLI.parent, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    return procs


def test_second_train_on_a_folder_in_use_fails_and_a_killed_runs_lock_is_taken_over(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(tiny_train_command(out, "train.epochs=100000", "train.checkpoint_every_steps=0"),
                             cwd=TINY_CLI.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lock(out / "train.lock", first)
        second = subprocess.run(tiny_train_command(out, "train.epochs=1"), cwd=TINY_CLI.parent, capture_output=True,
                                text=True, timeout=300)
        assert second.returncode == 2, second.stderr[-3000:]
        assert "Traceback" not in second.stderr
        assert f"is in use by PID {first.pid}" in second.stderr
        # two ranks of one job: each stops with the message by itself (none waits for the other). They are
        # started with the environment torchrun sets, not by torchrun, which kills the other rank as soon as
        # one exits, so that only one message could be observed.
        ranks = _start_ranks(tiny_train_command(out, "train.epochs=1"), world=2)
        for rank in ranks:
            _, err = rank.communicate(timeout=300)
            assert rank.returncode == 2, err[-3000:]
            assert f"is in use by PID {first.pid}" in err and "Traceback" not in err, err[-3000:]
        assert first.poll() is None
    finally:
        first.kill()
        first.wait()
        first.stderr.close()
    starts = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in starts].count("start") == 1  # the refused runs wrote nothing there

    third = subprocess.run(tiny_train_command(out, "train.epochs=1", "train.resume=never"), cwd=TINY_CLI.parent,
                           capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"taking over the lock of PID {first.pid}" in third.stderr
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e for e in events if e["event"] == "start"][-1]["lock_taken_over_from"] == first.pid
    assert events[-1]["event"] == "end" and not (out / "train.lock").exists()


def test_a_run_that_opened_the_lock_file_as_its_owner_removed_it_locks_the_new_file(tmp_path):
    first = OutputLock(tmp_path).acquire()
    opened_too_early = os.open(first.path, os.O_RDWR)  # a second run opens the file just before the first releases it
    first.release()
    second = OutputLock(tmp_path)
    opens = iter([opened_too_early])
    fresh = second._open
    second._open = lambda: next(opens, None) or fresh()
    second.acquire()  # the flock on the removed file succeeds, but that file is gone: it retries on a new one
    assert os.fstat(second._fd).st_ino == os.stat(second.path).st_ino
    with pytest.raises(OutputInUseError, match=f"in use by PID {os.getpid()}"):
        OutputLock(tmp_path).acquire()
    second.release()
