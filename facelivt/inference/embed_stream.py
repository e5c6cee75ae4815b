"""Embeddings of a big folder, written as they are made, in a folder a killed run can resume.

The output folder holds three files:

- ``embeddings.npy``: an N x D float32 NumPy array (``np.load`` reads it, ``mmap_mode="r"`` too), row
  ``i`` described by line ``i`` of the index. Its header has a fixed size and its row count is
  rewritten after each batch of rows is appended.
- ``index.csv``: ``row,path,face,sha256``: the photo of each row, the face in it (0 = the largest)
  and the sha256 of the photo's bytes, by which a resumed run knows the photos it has.
- ``run.json``: the model, weights and settings of the run, which a resumed run must share.

A batch is appended to ``embeddings.npy`` first and then indexed, so after a ``kill -9`` the index
names only rows that were written whole. :meth:`EmbeddingStream.open` with ``resume`` drops a torn
last index line and any rows the index does not name, and skips the photos whose content is already
indexed; a photo whose content changed is embedded again and its old rows are dropped when the
run ends. These files are written in place (appended), not atomically: that is what lets a run
resume; the final clean-up of replaced rows writes new files atomically (:mod:`facelivt.files`).
Memory stays bounded: no embedding is kept after its batch is written.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import json
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from facelivt.errors import InvalidInputError, OutputWriteError
from facelivt.files import atomic_paths, write_json
from facelivt.inference.detector import SeveralFacesError
from facelivt.inference.folders import failure_reason
from facelivt.inference.gallery import photo_sha256

if TYPE_CHECKING:
    from facelivt.inference.recognizer import FaceRecognizer

NPY_NAME, INDEX_NAME, RUN_NAME = "embeddings.npy", "index.csv", "run.json"
INDEX_HEADER = ("row", "path", "face", "sha256")
#: Settings a resumed run must share with the run it continues.
RUN_KEYS = ("model", "weights_fingerprint", "flip", "dim", "aligned", "face")
_HEADER_SIZE = 128  # bytes of the .npy header: room for any row count, rewritten in place


def npy_header(rows: int, dim: int) -> bytes:
    """A NumPy format 1.0 header of exactly :data:`_HEADER_SIZE` bytes for a C-order (rows, dim) float32 array."""
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, dim)
    body = text.ljust(_HEADER_SIZE - 11) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")


@dataclass
class StreamReport:
    """What :func:`embed_to_folder` did: photos embedded now, skipped (indexed already), embedded again
    (content changed), failures (path, reason), photos with several faces (path, count), rows in the
    folder at the end, seconds of the run."""

    folder: Path
    embedded: int = 0
    rows_added: int = 0
    skipped: int = 0
    replaced: int = 0
    failures: list[tuple[Path, str]] = field(default_factory=list)
    several_faces: list[tuple[Path, int]] = field(default_factory=list)
    rows: int = 0
    dim: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return (self.embedded + len(self.failures)) / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {"folder": str(self.folder), "rows": self.rows, "dim": self.dim, "embedded": self.embedded,
                "rows_added": self.rows_added, "skipped": self.skipped, "replaced": self.replaced,
                "failures": [{"path": str(p), "reason": r} for p, r in self.failures],
                "several_faces": [{"path": str(p), "faces": n} for p, n in self.several_faces],
                "seconds": round(self.seconds, 3), "images_per_second": round(self.images_per_second, 2)}


class EmbeddingStream:
    """The three files of an output folder, open for appending (see the module's docstring)."""

    def __init__(self, folder: Path, run: dict, rows: int, done: dict[str, str]) -> None:
        self.folder, self.run, self.rows, self.done = folder, run, rows, done
        self.dim = int(run["dim"])
        self._stale: set[str] = set()  # paths whose earlier rows are replaced by this run
        self._since = rows  # rows of earlier runs
        self._npy = open(folder / NPY_NAME, "r+b")
        self._index = open(folder / INDEX_NAME, "a", encoding="utf-8", newline="")
        self._csv = csv.writer(self._index, lineterminator="\n")
        self._lock_fd: int | None = None  # the folder's lock (see _lock), released by close()

    @classmethod
    def open(cls, folder: str | os.PathLike, run: dict, *, resume: bool = False) -> "EmbeddingStream":
        """The stream of ``folder``: a new one (the folder must hold no earlier run unless ``resume``),
        or with ``resume`` the earlier run's, repaired after a kill, when its settings equal ``run``'s."""
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise InvalidInputError(f"{folder} is a file: the streamed output is a folder (give a folder, or "
                                    "FILE.safetensors for one file)")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputWriteError(folder, exc) from exc
        lock = _lock(folder)
        try:
            exists = (folder / INDEX_NAME).exists() or (folder / NPY_NAME).exists()
            if exists and not resume:
                raise InvalidInputError(f"{folder} holds the embeddings of an earlier run: pass --resume to "
                                        "continue it, or give another folder")
            stream = cls._recover(folder, run) if exists else cls._start(folder, run)
        except BaseException as exc:
            os.close(lock)
            if isinstance(exc, OSError) and not isinstance(exc, OutputWriteError):
                raise OutputWriteError(folder, exc) from exc
            raise
        stream._lock_fd = lock
        return stream

    @classmethod
    def _start(cls, folder: Path, run: dict) -> "EmbeddingStream":
        write_json(folder / RUN_NAME, run)
        (folder / NPY_NAME).write_bytes(npy_header(0, int(run["dim"])))
        (folder / INDEX_NAME).write_text(",".join(INDEX_HEADER) + "\n", encoding="utf-8")
        return cls(folder, run, 0, {})

    @classmethod
    def _recover(cls, folder: Path, run: dict) -> "EmbeddingStream":
        try:
            earlier = json.loads((folder / RUN_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"{folder / RUN_NAME} cannot be read ({exc}): cannot resume this run") from None
        differ = [k for k in RUN_KEYS if earlier.get(k) != run.get(k)]
        if differ:
            what = ", ".join(f"{k}={earlier.get(k)!r} (now {run.get(k)!r})" for k in differ)
            raise InvalidInputError(f"{folder} was embedded with other settings: {what}; resume with the same "
                                    "model, weights and options, or give another folder")
        good, entries = _read_index(folder / INDEX_NAME)
        dim = int(run["dim"])
        size = _HEADER_SIZE + len(entries) * dim * 4
        if (folder / NPY_NAME).stat().st_size < size:
            raise InvalidInputError(f"{folder / NPY_NAME} holds fewer rows than {INDEX_NAME} names: the folder "
                                    "was changed by something else; start again in another folder")
        with open(folder / INDEX_NAME, "r+b") as f:
            f.truncate(good)  # a torn last line (the run was killed while writing it)
        with open(folder / NPY_NAME, "r+b") as f:
            f.truncate(size)  # rows written but not indexed yet
            f.write(npy_header(len(entries), dim))
        return cls(folder, run, len(entries), {path: digest for path, _, digest in entries})

    def is_done(self, path: Path, digest: str | None) -> bool:
        """Whether ``path`` with this content is in the folder already; a path indexed with other
        content is marked for replacement."""
        key = str(path)
        if key not in self.done:
            return False
        if digest is not None and self.done[key] == digest:
            return True
        self._stale.add(key)
        return False

    def append(self, path: Path, digest: str | None, vectors: np.ndarray, faces: Iterable[int]) -> None:
        """Write the rows of one photo: vectors first, then the row count, then the index lines."""
        data = np.ascontiguousarray(vectors, dtype="<f4")
        try:
            self._npy.seek(0, os.SEEK_END)
            self._npy.write(data.tobytes())
            self._npy.flush()
            self._npy.seek(0)
            self._npy.write(npy_header(self.rows + len(data), self.dim))
            self._npy.flush()
        except OSError as exc:
            raise OutputWriteError(self.folder / NPY_NAME, exc) from exc
        start, self.rows = self.rows, self.rows + len(data)
        try:
            for i, face in enumerate(faces):
                self._csv.writerow((start + i, str(path), int(face), digest or ""))
            self._index.flush()
        except OSError as exc:
            raise OutputWriteError(self.folder / INDEX_NAME, exc) from exc

    def close(self) -> int:
        """Flush to disk, drop the rows of replaced photos, release the folder; returns the rows left."""
        try:
            error = None
            for f in (self._npy, self._index):
                try:
                    f.flush()
                    os.fsync(f.fileno())
                except OSError as exc:
                    error = error or OutputWriteError(Path(f.name), exc)
                finally:
                    with contextlib.suppress(OSError):
                        f.close()
            if error is not None:
                raise error
            if self._stale:
                self.rows = _drop_rows(self.folder, self._stale, self._since, self.dim)
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
        return self.rows


def _lock(folder: Path) -> int:
    """An exclusive lock on the output folder (``flock`` on the folder itself: no lock file), so that two
    runs cannot append to one folder; released when the descriptor is closed (also by a killed process)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise InvalidInputError(f"another `facelivt embed` is writing {folder}: wait for it to end, or give "
                                    "another folder") from None
        raise
    return fd


def _read_index(path: Path) -> tuple[int, list[tuple[str, int, str]]]:
    """The bytes of the complete records of an index and its entries (path, face, sha256); a last
    record without its newline or with the wrong fields (a run killed while writing it) is left out."""
    data = path.read_bytes()
    lines = [line + b"\n" for line in data.split(b"\n")[:-1]]  # the part after the last newline is torn
    sizes = iter(len(line) for line in lines)
    used = 0

    def feed():
        nonlocal used
        for line in lines:
            used += next(sizes)
            yield line.decode("utf-8", errors="replace")

    reader = csv.reader(feed())
    if tuple(next(reader, ())) != INDEX_HEADER:
        raise InvalidInputError(f"{path} is not an index of `facelivt embed`: cannot resume this run")
    good, entries = used, []
    for row in reader:
        if len(row) != 4 or row[0] != str(len(entries)) or not row[2].isdigit():
            if used == sum(len(line) for line in lines):  # a damaged last record: dropped like a torn one
                break
            raise InvalidInputError(f"{path} is damaged at row {len(entries)}: cannot resume this run")
        entries.append((row[1], int(row[2]), row[3]))
        good = used
    return good, entries


def _drop_rows(folder: Path, stale: set[str], since: int, dim: int) -> int:
    """Rewrite the folder without the rows of ``stale`` paths written before row ``since`` (their
    rows of this run are kept); atomically, both files together. Returns the rows kept."""
    _, entries = _read_index(folder / INDEX_NAME)
    keep = [n for n, (path, _, _) in enumerate(entries) if n >= since or path not in stale]
    vectors = np.load(folder / NPY_NAME, mmap_mode="r")
    with atomic_paths(folder / NPY_NAME, folder / INDEX_NAME) as (npy, index):
        with open(npy, "wb") as f:
            f.write(npy_header(len(keep), dim))
            for start in range(0, len(keep), 4096):
                f.write(np.ascontiguousarray(vectors[keep[start : start + 4096]], dtype="<f4").tobytes())
        with open(index, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(INDEX_HEADER)
            for row, n in enumerate(keep):
                writer.writerow((row, *entries[n]))
    return len(keep)


def read_embeddings(folder: str | os.PathLike) -> tuple[np.ndarray, list[tuple[str, int, str]]]:
    """The embeddings (memory-mapped) and index entries (path, face, sha256) of an output folder."""
    folder = Path(folder)
    _, entries = _read_index(folder / INDEX_NAME)
    return np.load(folder / NPY_NAME, mmap_mode="r")[: len(entries)], entries


def embed_to_folder(recognizer: "FaceRecognizer", files: Iterable[str | os.PathLike], folder: str | os.PathLike,
                    *, aligned: bool = False, face: str = "largest", resume: bool = False,
                    progress: bool = True) -> StreamReport:
    """Embed ``files`` into the output ``folder`` as they are done (see the module's docstring);
    ``resume``: continue an earlier run there, skipping the photos it has (same content)."""
    start = time.perf_counter()
    run = {"model": recognizer.model_name, "weights_fingerprint": recognizer.weights_fingerprint,
           "weights": recognizer.weights_source, "flip": bool(recognizer.flip),
           "dim": int(recognizer.embedding_size), "aligned": bool(aligned), "face": face}
    stream = EmbeddingStream.open(folder, run, resume=resume)
    report = StreamReport(Path(folder), dim=stream.dim)
    try:
        todo, digests = _to_do(stream, files, report)
        _embed_into(recognizer, stream, todo, digests, report, aligned, face, progress)
    except BaseException:
        with contextlib.suppress(OSError):  # the first error says what happened; the folder stays resumable
            stream.close()
        raise
    report.rows = stream.close()
    report.seconds = time.perf_counter() - start
    return report


def _to_do(stream: EmbeddingStream, files: Iterable[str | os.PathLike], report: StreamReport) -> tuple[list[Path], list]:
    """The photos to embed (each once), with the sha256 of those the folder has a record of."""
    todo, digests, seen = [], [], set()
    for path in (Path(f) for f in files):
        if str(path) in seen:
            continue
        seen.add(str(path))
        digest = photo_sha256(path) if str(path) in stream.done else None  # others: hashed when written
        if stream.is_done(path, digest):
            report.skipped += 1
            continue
        report.replaced += str(path) in stream.done
        todo.append(path)
        digests.append(digest)
    return todo, digests


def _embed_into(recognizer: "FaceRecognizer", stream: EmbeddingStream, files: list[Path], digests: list,
                report: StreamReport, aligned: bool, face: str, progress: bool) -> None:
    for r in recognizer.iter_faces(files, aligned=aligned, face=face, progress=progress, desc="embed"):
        path = files[r.index]
        if r.error is not None:
            report.failures.append((path, failure_reason(r.error, path)))
            if isinstance(r.error, SeveralFacesError):
                report.several_faces.append((path, r.error.found))
            continue
        if r.found > 1:
            report.several_faces.append((path, r.found))
        stream.append(path, digests[r.index] or photo_sha256(path), r.embeddings, r.faces)
        report.embedded += 1
        report.rows_added += len(r.faces)
