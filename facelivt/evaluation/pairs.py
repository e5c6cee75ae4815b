"""Pairs lists in the LFW ``pairs.txt`` format: parse, resolve against an image folder, generate.

Format (whitespace separated, one pair a line):

- optional header as the first line: ``<folds> <pairs per fold>`` (or one number), e.g. ``10 300``;
- matched pair: ``name n1 n2``; mismatched pair: ``name1 n1 name2 n2``;
- blank lines and lines starting with ``#`` are ignored.

``name`` is a sub-folder of the image root (``root/<name>/<image>``). An image token ``n`` is either
an integer, resolved as LFW's ``<name>_<n:04d>.<ext>`` or else as the one file whose stem is that
integer (``7.pgm``, ``000123.jpg``), or a file name inside the identity folder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from facelivt.errors import InputNotFoundError, InvalidInputError
from facelivt.files import write_text

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".pbm", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class PairSpec:
    """One line of a pairs list."""

    name1: str
    image1: str
    name2: str
    image2: str

    @property
    def issame(self) -> bool:
        return self.name1 == self.name2

    def to_line(self) -> str:
        if self.issame:
            return f"{self.name1}\t{self.image1}\t{self.image2}"
        return f"{self.name1}\t{self.image1}\t{self.name2}\t{self.image2}"


def parse_pairs(path: str | Path) -> list[PairSpec]:
    """Parse a pairs list (see module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"pairs list not found: {path}")
    pairs: list[PairSpec] = []
    first = True
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tok = line.split()
        if first and len(tok) <= 2 and all(t.isdigit() for t in tok):
            first = False  # header such as "10 300"
            continue
        first = False
        if len(tok) == 3:
            pairs.append(PairSpec(tok[0], tok[1], tok[0], tok[2]))
        elif len(tok) == 4:
            if tok[0] == tok[2]:
                raise InvalidInputError(
                    f"{path}:{lineno}: a 4-column line is a mismatched pair but both names are {tok[0]!r}; "
                    "write a matched pair as 'name n1 n2'"
                )
            pairs.append(PairSpec(tok[0], tok[1], tok[2], tok[3]))
        else:
            raise InvalidInputError(
                f"{path}:{lineno}: expected 'name n1 n2' or 'name1 n1 name2 n2', got {len(tok)} fields: {line!r}"
            )
    if not pairs:
        raise InvalidInputError(f"{path} contains no pairs")
    return pairs


def write_pairs(path: str | Path, pairs: Sequence[PairSpec], n_folds: int | None = None) -> Path:
    """Write ``pairs`` in the LFW format; with ``n_folds`` a header ``<folds> <pairs per fold / 2>`` is written
    (as in LFW's pairs.txt, where each fold holds that many matched and that many mismatched pairs)."""
    path = Path(path)
    lines = []
    if n_folds:
        lines.append(f"{n_folds}\t{len(pairs) // (2 * n_folds)}")
    for p in pairs:
        for field in (p.name1, p.image1, p.name2, p.image2):
            if not field or any(c.isspace() for c in field):
                raise InvalidInputError(f"cannot write {field!r} into a pairs list: names and files must not contain whitespace")
        lines.append(p.to_line())
    write_text(path, "\n".join(lines) + "\n")
    return path


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _identity_dir(root: Path, name: str) -> Path:
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise InvalidInputError(f"invalid identity name {name!r} in pairs list")
    d = root / name
    if not d.is_dir():
        raise InputNotFoundError(f"identity folder not found: {d}")
    return d


def resolve_image(root: str | Path, name: str, token: str) -> Path:
    """The file of image ``token`` of identity ``name`` under ``root`` (see module docstring)."""
    folder = _identity_dir(Path(root), name)
    if "/" in token or "\\" in token or token in (".", ".."):
        raise InvalidInputError(f"invalid image token {token!r} for identity {name!r}")
    if token.isdigit():
        n = int(token)
        for ext in IMAGE_EXTENSIONS:
            for cand in (folder / f"{name}_{n:04d}{ext}", folder / f"{name}_{n:04d}{ext.upper()}"):
                if cand.is_file():
                    return cand
        hits = [p for p in list_images(folder) if p.stem.isdigit() and int(p.stem) == n]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise InvalidInputError(f"image {token} of {name!r} is ambiguous: {', '.join(p.name for p in hits)}")
        raise InputNotFoundError(
            f"image {token} of identity {name!r} not found: expected {name}_{n:04d}.<ext> or a file named {n}.<ext> in {folder}"
        )
    cand = folder / token
    if not cand.is_file():
        raise InputNotFoundError(f"image {token!r} of identity {name!r} not found in {folder}")
    return cand


def resolve_pairs(root: str | Path, pairs: Sequence[PairSpec]) -> list[tuple[Path, Path, bool]]:
    """(file1, file2, issame) for every pair; a missing identity or image raises FileNotFoundError."""
    root = Path(root)
    if not root.is_dir():
        raise InputNotFoundError(f"image folder not found: {root}")
    return [(resolve_image(root, p.name1, p.image1), resolve_image(root, p.name2, p.image2), p.issame) for p in pairs]


def _token_for(root: Path, name: str, file: Path) -> str:
    """Shortest token that resolves back to ``file``: the LFW/number form when unambiguous, else the file name."""
    stem = file.stem
    cands = []
    if stem.startswith(name + "_") and stem[len(name) + 1 :].isdigit():
        cands.append(str(int(stem[len(name) + 1 :])))
    if stem.isdigit():
        cands.append(str(int(stem)))
    for c in cands:
        try:
            if resolve_image(root, name, c) == file:
                return c
        except (FileNotFoundError, ValueError):
            pass
    return file.name


def _identity_files(root: Path) -> tuple[list[str], dict[str, list[Path]]]:
    """The identity folders of ``root`` that hold images (at least 2, names without whitespace) and their images."""
    ids = sorted(d.name for d in root.iterdir() if d.is_dir())
    files = {name: list_images(root / name) for name in ids}
    ids = [n for n in ids if files[n]]
    if len(ids) < 2:
        raise InvalidInputError(f"{root} needs at least 2 identity folders with images to make mismatched pairs")
    for n in ids:
        if any(c.isspace() for c in n):
            raise InvalidInputError(f"identity folder {n!r} contains whitespace, which the pairs format cannot hold")
    return ids, files


def _draw_distinct(make, count: int, what: str) -> list:
    """``count`` distinct (unordered) pairs from ``make()``; InvalidInputError after too many repeats."""
    seen: set[frozenset] = set()
    out = []
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > 100 * count + 1000:
            raise InvalidInputError(f"could not draw {count} distinct {what} (drew {len(out)})")
        a, b = make()
        key = frozenset((a, b))
        if key in seen:
            continue
        seen.add(key)
        out.append((a, b))
    return out


def generate_pairs(root: str | Path, n_pairs: int, seed: int = 0, n_folds: int = 10) -> list[PairSpec]:
    """A balanced random pairs list over ``root/<identity>/<image>`` (seeded, reproducible).

    ``n_pairs`` must be a multiple of ``2 * n_folds``; the list is laid out as LFW's: ``n_folds`` contiguous
    blocks, each of ``n_pairs / (2 n_folds)`` matched then as many mismatched pairs, so that every fold of
    the 10-fold protocol is balanced. Pairs are distinct (unordered)."""
    root = Path(root)
    if not root.is_dir():
        raise InputNotFoundError(f"image folder not found: {root}")
    if n_folds < 1 or n_pairs < 2 * n_folds or n_pairs % (2 * n_folds):
        raise InvalidInputError(f"n_pairs must be a positive multiple of 2 x n_folds = {2 * n_folds}, got {n_pairs}")
    ids, files = _identity_files(root)
    multi = [n for n in ids if len(files[n]) >= 2]
    n_half = n_pairs // 2
    capacity = sum(len(files[n]) * (len(files[n]) - 1) // 2 for n in multi)
    if capacity < n_half:
        raise InvalidInputError(f"{root} allows only {capacity} distinct matched pairs, {n_half} requested")
    rng = np.random.default_rng(seed)

    def positive():
        name = multi[rng.integers(len(multi))]
        i, j = rng.choice(len(files[name]), size=2, replace=False)
        return (name, files[name][i]), (name, files[name][j])

    def negative():
        i, j = rng.choice(len(ids), size=2, replace=False)
        a, b = ids[i], ids[j]
        return (a, files[a][rng.integers(len(files[a]))]), (b, files[b][rng.integers(len(files[b]))])

    pos = _draw_distinct(positive, n_half, f"matched pairs from {root}")
    neg = _draw_distinct(negative, n_half, f"mismatched pairs from {root}")
    per = n_half // n_folds
    out: list[PairSpec] = []
    for f in range(n_folds):
        for (a, fa), (b, fb) in pos[f * per : (f + 1) * per] + neg[f * per : (f + 1) * per]:
            out.append(PairSpec(a, _token_for(root, a, fa), b, _token_for(root, b, fb)))
    return out
