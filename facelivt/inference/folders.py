"""Folder runs: align a dataset tree, embed many files; bad files are reported, never fatal."""
from __future__ import annotations

import io
import itertools
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Literal

import numpy as np
from PIL import Image
from tqdm import tqdm

from facelivt.errors import InputNotFoundError, InvalidInputError
from facelivt.files import write_bytes
from facelivt.inference.detector import FaceDetector, NoFaceError, Select, SeveralFacesError
from facelivt.inference.pipeline import DEFAULT_WORKERS, Prepared, check_workers, prepare_in_order

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from facelivt.inference.recognizer import FaceRecognizer

OutputFormat = Literal["same", "jpg", "png"]
_KEEP_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def failure_reason(exc: BaseException, source: str | os.PathLike) -> str:
    """What went wrong with ``source``, without its name: an error about one image says which
    ("img/x.png: no face found", "image not found: img/x.png"), a list of failures names it itself."""
    text, name = str(exc), str(source)
    if text.startswith(f"{name}: "):
        return text[len(name) + 2 :]
    if text.startswith(f"{name} "):  # "img/x.png could not be decoded: ..." (the image decoder's wording)
        return text[len(name) + 1 :]
    return text[: -len(name) - 2] if text.endswith(f": {name}") else text


def list_files(root: str | os.PathLike) -> list[Path]:
    """Every file under ``root`` (recursive, sorted: a folder's files, then its subfolders), skipping
    hidden files and folders. Symbolic links to folders are followed, as ``facelivt enroll`` follows
    a linked identity folder; a link back to a folder it lies in (a loop) is not, with a warning."""
    root = Path(root)
    if not root.exists():
        raise InputNotFoundError(f"folder not found: {root}")
    if not root.is_dir():
        raise InvalidInputError(f"not a folder: {root}")
    out: list[Path] = []
    stack = [(root, frozenset({os.path.realpath(root)}))]  # (folder, real paths of it and of the folders walked to it)
    while stack:
        folder, chain = stack.pop()
        inside = os.path.realpath(folder)
        try:
            entries = sorted((e for e in os.scandir(folder) if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError as exc:
            log.warning("cannot list %s (%s): its files are left out", folder, exc.strerror or exc)
            continue
        out.extend(Path(e.path) for e in entries if not e.is_dir())
        subfolders = []
        for e in (e for e in entries if e.is_dir()):
            real = os.path.realpath(e.path)
            if real in chain or inside == real or inside.startswith(real.rstrip(os.sep) + os.sep):
                log.warning("%s links back to %s, a folder it lies in: not followed (a loop)", e.path, real)
                continue
            subfolders.append((Path(e.path), chain | {real}))
        stack.extend(reversed(subfolders))
    return out


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given and the files of folders (see :func:`list_files`); missing paths raise."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(list_files(path))
        elif path.exists():
            files.append(path)
        else:
            raise InputNotFoundError(f"input not found: {path}")
    return files


def output_path(rel: Path, out_dir: Path, fmt: OutputFormat, face_index: int = 0) -> Path:
    """Where the crop of ``rel`` goes: the same relative path, with ``_face<i>`` for extra faces and the
    suffix of ``fmt`` ("same" keeps .jpg/.jpeg/.png/.bmp and writes other formats as .png)."""
    suffix = rel.suffix if fmt == "same" and rel.suffix.lower() in _KEEP_SUFFIXES else f".{'png' if fmt == 'same' else fmt}"
    stem = rel.stem if face_index == 0 else f"{rel.stem}_face{face_index}"
    return out_dir / rel.parent / f"{stem}{suffix}"


def save_rgb(image: np.ndarray, path: Path) -> None:
    """Write a uint8 RGB array (JPEG at quality 95, other formats lossless), atomically: a failed
    write (full disk) leaves no partial crop and an earlier file of that name as it was."""
    img = Image.fromarray(image, "RGB")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise InvalidInputError(f"cannot tell the image format of {path} from its suffix")
    buffer = io.BytesIO()
    if fmt == "JPEG":
        img.save(buffer, format=fmt, quality=95)
    else:
        img.save(buffer, format=fmt)
    write_bytes(path, buffer.getvalue())


@dataclass
class AlignReport:
    """Outcome of :func:`align_folder` (paths relative to the input folder)."""

    total: int = 0
    aligned: int = 0  # images with at least one crop written
    faces_written: int = 0
    skipped_existing: int = 0
    several_faces: list[str] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    downscaled: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the run

    @property
    def processed(self) -> int:
        """Files read and searched for faces (not skipped)."""
        return self.total - self.skipped_existing

    def to_dict(self) -> dict:
        return {
            "seconds": round(self.seconds, 3),
            "total": self.total,
            "aligned": self.aligned,
            "faces_written": self.faces_written,
            "skipped_existing": self.skipped_existing,
            "several_faces": self.several_faces,
            "no_face": self.no_face,
            "unreadable": [{"path": p, "reason": r} for p, r in self.unreadable],
            "downscaled": self.downscaled,
        }

    def summary(self) -> str:
        rate = 100.0 * self.aligned / max(1, self.processed - len(self.unreadable))
        per = 1000.0 * self.seconds / max(1, self.processed)
        return (
            f"{self.total} files: {self.aligned} aligned ({self.faces_written} crops written, detection rate "
            f"{rate:.2f}% of readable images), {len(self.no_face)} without a face, {len(self.unreadable)} unreadable, "
            f"{len(self.several_faces)} with several faces, {self.skipped_existing} skipped (already done); "
            f"{self.seconds:.1f} s, {per:.0f} ms per image"
        )


def align_folder(
    detector: FaceDetector,
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    select: Select = "largest",
    fmt: OutputFormat = "same",
    size: int = 112,
    skip_existing: bool = False,
    progress: bool = True,
    files: Iterable[str | os.PathLike] | None = None,
    workers: int = DEFAULT_WORKERS,
) -> AlignReport:
    """Detect and align every image under ``in_dir`` (or only ``files``, paths under it) into
    ``out_dir``, mirroring the tree.

    ``select="largest"`` writes one crop per image, ``"all"`` one per face (extra faces as
    ``name_face1.jpg``, ...). Unreadable files and images without a face are reported, not fatal.
    ``workers`` threads decode, detect and align a few photos ahead (0: one at a time; the crops are
    the same), see :mod:`facelivt.inference.pipeline`.
    """
    src, dst = Path(in_dir), Path(out_dir)
    check_workers(workers)
    if select not in ("largest", "all"):
        raise InvalidInputError(f"select must be 'largest' or 'all', got {select!r}")
    if fmt not in ("same", "jpg", "png"):
        raise InvalidInputError(f"format must be 'same', 'jpg' or 'png', got {fmt!r}")
    files = list_files(src) if files is None else [Path(f) for f in files]
    s_res, d_res = src.resolve(), dst.resolve()
    if d_res == s_res or s_res in d_res.parents:
        raise InvalidInputError(f"output folder {dst} must not be the input folder or inside it")
    report = AlignReport(total=len(files))
    start = time.perf_counter()
    bar = tqdm(total=len(files), desc="align", unit="img", disable=not progress)
    todo: dict[int, Path] = {}  # the photos read but not yet written (bounded by the pipeline)
    queued = itertools.count()

    def to_align() -> Iterable[Path]:
        for path in files:
            if skip_existing and output_path(path.relative_to(src), dst, fmt).exists():
                report.skipped_existing += 1
                bar.update(1)
                continue
            todo[next(queued)] = path
            yield path

    try:
        for done in prepare_in_order(lambda path: detector.align(path, select="all", size=size), to_align(), workers):
            path = todo.pop(done.index)
            if _note(done, path, path.relative_to(src), dst, select, fmt, report):
                bar.set_postfix(ok=report.aligned, no_face=len(report.no_face), bad=len(report.unreadable))
            bar.update(1)
    finally:
        bar.close()
    report.seconds = time.perf_counter() - start
    return report


def _note(done: Prepared, path: Path, rel: Path, dst: Path, select: Select, fmt: OutputFormat, report: AlignReport) -> bool:
    """Write the crops of one aligned photo into ``dst``, or note why it has none, in ``report``; True when written."""
    if isinstance(done.error, NoFaceError):
        report.no_face.append(str(rel))
        return False
    if done.error is not None:  # ImageLoadError, a missing or unreadable file
        report.unreadable.append((str(rel), failure_reason(done.error, path)))
        return False
    crops = done.value
    if crops[0].source is not None and crops[0].source.downscaled:
        report.downscaled.append(str(rel))
    if len(crops) > 1:
        report.several_faces.append(str(rel))
    if select == "largest":
        crops = crops[:1]
    for i, crop in enumerate(crops):
        save_rgb(crop.image, output_path(rel, dst, fmt, i))
    report.aligned += 1
    report.faces_written += len(crops)
    return True


@dataclass
class EmbedRun:
    """Outcome of :func:`embed_files`: embeddings (N x D), row ``i`` from file ``paths[i]`` (face
    ``faces[i]``, 0 being the largest), the failures (file, reason), and the photos that held several
    faces (with the count)."""

    embeddings: np.ndarray
    paths: list[Path]
    failures: list[tuple[Path, str]]
    faces: list[int] = field(default_factory=list)
    several_faces: list[tuple[Path, int]] = field(default_factory=list)


def embed_files(
    recognizer: "FaceRecognizer",
    files: Iterable[str | os.PathLike],
    *,
    aligned: bool = False,
    progress: bool = True,
    face: str = "largest",
) -> EmbedRun:
    """Embed each file's largest face (``face="all"``: every face, one row each; ``"error"``: photos
    with several faces are failures), or the file itself when ``aligned``. Unreadable files and images
    without a face go to ``failures``; photos with several faces are listed in ``several_faces``."""
    files = [Path(f) for f in files]
    rows, paths, faces, failures, several = [], [], [], [], []
    for r in sorted(recognizer.iter_faces(files, aligned=aligned, face=face, progress=progress), key=lambda r: r.index):
        if r.error is not None:
            failures.append((files[r.index], failure_reason(r.error, files[r.index])))
            if isinstance(r.error, SeveralFacesError):
                several.append((files[r.index], r.error.found))
            continue
        if r.found > 1:
            several.append((files[r.index], r.found))
        rows.extend(r.embeddings)
        paths.extend([files[r.index]] * len(r.faces))
        faces.extend(r.faces)
    dim = recognizer.embedding_size
    embeddings = np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    return EmbedRun(embeddings, paths, failures, faces, several)
