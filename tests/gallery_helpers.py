"""Helpers for the gallery tests: the old two-file format, a process holding the write lock or keeping
a commit in the write-ahead log, a read-only view of a folder."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    """``n`` random L2-normalised float32 rows."""
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_legacy_gallery(folder: Path, names: list[str], embeddings: np.ndarray, labels: np.ndarray,
                         metadata: dict | None = None, **overrides) -> None:
    """A gallery in the old format, as the former ``Gallery.save`` wrote it: ``gallery.json`` and
    ``embeddings.safetensors`` (``overrides`` replace keys of the JSON, to damage it)."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels)
    counts = np.bincount(labels.astype(np.int64), minlength=len(names)).tolist() if len(labels) else []
    meta = {"format": "facelivt-gallery", "version": 1, "dim": int(embeddings.shape[1]), "identities": names,
            "counts": counts, "metadata": metadata or {}}
    meta.update(overrides)
    save_file({"embeddings": np.ascontiguousarray(embeddings), "labels": np.ascontiguousarray(labels)},
              str(folder / "embeddings.safetensors"))
    (folder / "gallery.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")  # NaN allowed: old files had it


def child_env() -> dict:
    """The environment for a child Python that imports this worktree's facelivt."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


TOY_META = {"model": "toy", "weights_fingerprint": "f00d", "flip": True}

#: A process that holds a write transaction on a gallery (as an enrolment does while it writes)
#: until a line arrives on stdin, then commits one more identity.
HOLD_WRITE_LOCK = r"""
import sqlite3, sys
import numpy as np
con = sqlite3.connect(sys.argv[1], isolation_level=None)
dim = int(sys.argv[2])
con.execute("BEGIN IMMEDIATE")
cur = con.execute("INSERT INTO identities(name, added) VALUES ('held', 'now')")
con.execute("INSERT INTO embeddings(identity_id, vector, source, added) VALUES (?, ?, NULL, 'now')",
            (cur.lastrowid, np.full(dim, dim ** -0.5, '<f4').tobytes()))
print("locked", flush=True)
sys.stdin.readline()
con.execute("COMMIT")
print("committed", flush=True)
"""


def start_python(code: str, *args: str) -> subprocess.Popen:
    """A child Python running ``code`` with ``args`` (stdin and stdout are pipes, text mode)."""
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())


#: A process that commits one more identity and keeps the gallery open (its commit stays in the
#: write-ahead log, which SQLite folds into the database only when the last connection closes)
#: until a line arrives on stdin.
KEEP_OPEN = r"""
import sqlite3, sys
import numpy as np
con = sqlite3.connect(sys.argv[1], isolation_level=None)
dim = int(sys.argv[2])
con.execute("BEGIN IMMEDIATE")
cur = con.execute("INSERT INTO identities(name, added) VALUES ('held', 'now')")
con.execute("INSERT INTO embeddings(identity_id, vector, source, added) VALUES (?, ?, NULL, 'now')",
            (cur.lastrowid, np.full(dim, dim ** -0.5, '<f4').tobytes()))
con.execute("COMMIT")
print("committed", flush=True)
sys.stdin.readline()
"""


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` seen through a read-only bind mount (permission bits do not stop root; a read-only
    mount does). Needs root, as the full-disk tests do: skipped with the reason where it is refused."""
    view = Path(tempfile.mkdtemp(prefix="facelivt-ro-"))
    for cmd in (["mount", "--bind", str(folder), str(view)], ["mount", "-o", "remount,bind,ro", str(view)]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            subprocess.run(["umount", str(view)], capture_output=True)
            view.rmdir()
            pytest.skip(f"cannot mount a read-only view of {folder}: {proc.stderr.strip() or 'not root'}")
    try:
        assert not os.access(view, os.W_OK)
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)
        with contextlib.suppress(OSError):
            view.rmdir()


def run_together(script: str, args: list[list[str]], timeout: float = 300) -> list[str]:
    """Run ``python -c script ARGS`` once per entry of ``args``, released together: each child prints
    ``ready`` and waits for a line on stdin before it starts. Returns their stdouts; every child must
    exit 0 (the assertion shows the stderr of those that did not)."""
    procs = [subprocess.Popen([sys.executable, "-c", script, *a], env=child_env(), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for a in args]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0] * len(procs), [err[-2000:] for _, err in outs]
    return [out for out, _ in outs]
