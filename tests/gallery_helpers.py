"""Helpers for the gallery tests: the old two-file format, writer processes, a held write lock."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

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


def worker_row(seed: int, i: int, dim: int) -> np.ndarray:
    """The embedding ENROLL_LOOP enrols as its ``i``-th identity (before normalisation)."""
    return np.random.default_rng([seed, i]).standard_normal(dim).astype(np.float32)


def child_env() -> dict:
    """The environment for a child Python that imports this worktree's facelivt."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


TOY_META = {"model": "toy", "weights_fingerprint": "f00d", "flip": True}

#: A process that enrols ``count`` identities ``<tag>-<i>``, one embedding each
#: (``worker_row(seed, i, dim)``), opening the gallery afresh for each enrolment as separate
#: ``facelivt enroll`` runs do.
ENROLL_LOOP = r"""
import sys
import numpy as np
from facelivt.inference.gallery import Gallery
folder, tag, count, dim, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
meta = {"model": "toy", "weights_fingerprint": "f00d", "flip": True}
for i in range(count):
    x = np.random.default_rng([seed, i]).standard_normal(dim).astype(np.float32)
    with Gallery.open(folder, create=True, dim=dim, metadata=meta) as g:
        g.enroll_embeddings(f"{tag}-{i}", x, sources=[f"{tag}/{i}.jpg"])
print("done", tag)
"""

#: A process that opens and searches the gallery ``count`` times while others write.
SEARCH_LOOP = r"""
import sys, time
import numpy as np
from facelivt.inference.gallery import Gallery, GalleryNotFoundError
folder, count, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
q = np.ones(dim, np.float32)
seen, done = [], 0
while done < count:
    try:
        g = Gallery.open(folder)
    except GalleryNotFoundError:
        time.sleep(0.01)
        continue
    with g:
        seen.append(len(g))
        if len(g):
            assert len(g.search(q, 3)[0]) == min(3, len(g))
    done += 1
assert seen == sorted(seen), seen  # committed enrolments never disappear
print("searched", done, "max", max(seen))
"""

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
