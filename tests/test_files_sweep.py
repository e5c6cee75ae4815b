"""facelivt.files: temporaries a writer killed with SIGKILL left behind are removed by the next write
to their folder, and nothing else is.

Every writer here is a real process: one that opens an atomic write and is killed in the middle of it,
then another that writes to the same folder."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from disk_helpers import listing

# Opens each kind of temporary beside sys.argv[1]/out.*, prints their paths, then waits to be killed.
WRITER = """
import contextlib, sys, time
from pathlib import Path
from facelivt.files import atomic_dir, atomic_path, scratch_dir
folder = Path(sys.argv[1])
with contextlib.ExitStack() as stack:
    tmp = stack.enter_context(atomic_path(folder / "out.bin"))
    tmp.write_bytes(b"half of a file")
    staging = stack.enter_context(atomic_dir(folder / "out.mlpackage")).parent  # empty, as export's was
    scratch = stack.enter_context(scratch_dir(folder / "out.onnx"))
    (scratch / "model.onnx").write_bytes(b"raw graph")
    print(tmp, staging, scratch, sep="\\n", flush=True)
    time.sleep(120)
"""

# One write to sys.argv[1]/SYS.ARGV[2] in a fresh process.
WRITE = "import sys; from facelivt.files import write_text; write_text(sys.argv[1] + '/' + sys.argv[2], 'new')"


def _python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True, **kwargs)


def _killed_writer(folder: Path) -> list[Path]:
    """The temporaries of a writer killed with SIGKILL in the middle of its writes."""
    proc = _python(WRITER, folder)
    paths = [Path(proc.stdout.readline().strip()) for _ in range(3)]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return paths


def _write(folder: Path, name: str) -> None:
    proc = _python(WRITE, folder, name)
    proc.communicate(timeout=120)
    assert proc.returncode == 0


def test_a_killed_writers_temporaries_are_swept_by_the_next_write(tmp_path):
    """Before: .out.bin.XXXX.tmp, the empty .out.mlpackage.XXXX.tmp/ and export's raw graph (then in
    TMPDIR) stayed for good; nothing could tell a dead writer's temporary from a live one's."""
    (tmp_path / "earlier.txt").write_text("earlier output")
    tmp, staging, scratch = _killed_writer(tmp_path)
    assert all(p.parent == tmp_path for p in (tmp, staging, scratch))
    assert tmp.is_file() and staging.is_dir() and (scratch / "model.onnx").is_file()
    for path in (tmp, staging, scratch):  # the writer's PID is in each name
        assert path.name.startswith(".out.") and path.name.endswith(".tmp") and "facelivt-" in path.name
    _write(tmp_path, "other.txt")
    assert listing(tmp_path) == {"earlier.txt": b"earlier output", "other.txt": b"new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier.txt", "other.txt"]


def test_a_live_writers_temporaries_and_foreign_files_are_kept(tmp_path):
    proc = _python(WRITER, tmp_path)
    try:
        live = [Path(proc.stdout.readline().strip()) for _ in range(3)]
        assert all(p.parent == tmp_path for p in live)
        foreign = [".notes.tmp", ".out.bin.abc123.tmp", ".x.facelivt-12.tmp", "out.facelivt-1-abc.tmp"]
        for name in foreign:
            (tmp_path / name).write_text("not ours to remove")
        _write(tmp_path, "other.txt")
        assert all(p.exists() for p in live), "a temporary of a running writer was removed"
        assert all((tmp_path / name).exists() for name in foreign)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()


def test_a_temporary_newer_than_the_sweeping_process_is_kept(tmp_path):
    """Stale means older than the sweeping process too: this process started before the writer."""
    from facelivt.files import sweep_stale_temporaries

    tmp, staging, scratch = _killed_writer(tmp_path)
    assert sweep_stale_temporaries(tmp_path) == []
    assert tmp.exists() and staging.exists() and scratch.exists()


def test_a_folder_output_killed_mid_swap_gets_its_earlier_version_back(tmp_path):
    """atomic_dir moves the earlier folder into its staging folder before renaming the new one in: a
    writer killed between the two renames leaves the earlier output there, which the sweep puts back."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    staging = tmp_path / f".model.mlpackage.facelivt-{pid}-k3x9q2.tmp"
    (staging / "model.mlpackage.old").mkdir(parents=True)
    (staging / "model.mlpackage.old" / "Manifest.json").write_text("earlier")
    (staging / "model.mlpackage").mkdir()
    (staging / "model.mlpackage" / "Manifest.json").write_text("new, checked")
    _write(tmp_path, "other.txt")
    assert listing(tmp_path) == {"model.mlpackage/Manifest.json": b"earlier", "other.txt": b"new"}


def test_a_temporary_named_like_ours_is_kept_while_its_pid_runs(tmp_path):
    """PID 1 always runs: a temporary named with it is never taken for a dead writer's."""
    (tmp_path / ".x.facelivt-1-abc.tmp").write_text("x")
    _write(tmp_path, "other.txt")
    assert (tmp_path / ".x.facelivt-1-abc.tmp").exists()


def test_a_temporary_of_a_temporary_of_a_long_name_is_a_valid_name(tmp_path):
    """export writes the ONNX file through a temporary of its own temporary (and a scratch folder beside
    it): the writer's PID in each name must not push a long output name past the 255-byte limit."""
    from facelivt.files import atomic_path, scratch_dir

    out = tmp_path / ("x" * 200 + ".onnx")
    with atomic_path(out) as tmp:
        with scratch_dir(tmp) as scratch, atomic_path(tmp) as inner:
            (scratch / "model.onnx").write_bytes(b"raw")
            inner.write_bytes(b"graph")
    assert [p.name for p in tmp_path.iterdir()] == [out.name] and out.read_bytes() == b"graph"
