"""A real full disk for tests: a small tmpfs mounted for one test.

Mounting needs root (CI and the development machines run as root). Where the mount is refused
the test is skipped with that reason shown in pytest's summary; the fault-injection tests of
``tests/test_files.py`` still cover the same code paths there.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest


@contextlib.contextmanager
def tmpfs(size: str = "200k") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (mount's units: 200k, 30m) and yield its path; unmounted after."""
    mnt = Path(tempfile.mkdtemp(prefix="facelivt-full-"))
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a {size} tmpfs to simulate a full disk: {proc.stderr.strip() or 'not root'}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        with contextlib.suppress(OSError):
            mnt.rmdir()


def fill(folder: Path, leave: int = 0) -> None:
    """Fill the file system of ``folder`` until at most ``leave`` bytes are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize - leave
    if free <= 0:
        return
    with open(folder / ".filler", "wb") as f:
        with contextlib.suppress(OSError):
            while free > 0:
                n = min(free, 1 << 20)
                f.write(b"\0" * n)
                free -= n
            f.flush()


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> content), to compare before and after."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(*args: str, cwd: str | os.PathLike | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m facelivt ARGS`` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "facelivt", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def assert_clean_failure(proc: subprocess.CompletedProcess) -> None:
    """Exit code 2 and one clear line on stderr, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-4000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    assert "error:" in proc.stderr, proc.stderr[-2000:]
