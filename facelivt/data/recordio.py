"""MXNet / insightface RecordIO, read and written without MXNet (the insightface training-set format).

File layout (MXNet's ``dmlc::RecordIOWriter`` exactly):

* ``.rec``: records, each ``uint32 magic 0xced7230a``, ``uint32 lrecord`` (upper 3
  bits: continuation flag ``cflag``, lower 29 bits: length), the payload part,
  zero padding to a multiple of 4 bytes. When the payload holds the magic number
  at a 4-byte aligned offset, the writer splits it there: ``cflag`` 1 / 2 / 3 =
  first / middle / last part, and the reader joins the parts with the magic
  bytes between them. ``cflag`` 0 is a whole record.
* ``.idx``: text lines ``key<TAB>byte_offset``.
* payload: ``struct '<IfQQ'`` header ``(flag, label, id, id2)``; when ``flag > 0``,
  ``flag`` float32 labels follow; then the encoded image.

In insightface face data sets record 0 is a header with ``flag 2`` whose labels
``(a, b)`` say that keys ``1 .. a-1`` are images and keys ``a .. b-1`` are identity
records (labels ``[start, end)`` = the image keys of that identity).
"""
from __future__ import annotations

import contextlib
import logging
import os
import struct
import zipfile
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
from tqdm import tqdm

from facelivt.errors import InputNotFoundError, InvalidInputError, UnknownNameError
from .imaging import (
    BadSampleTracker,
    TooManyBadSamplesError,
    Transform,
    check_index,
    decode_image,
    encode_image,
    image_to_sample,
    resolve_transform,
)
from facelivt.files import atomic_open, atomic_paths

from .decode import ImageLoadError
from .folder import UNREADABLE, load_image, scan_image_folder
from .transforms import INPUT_SIZE

log = logging.getLogger(__name__)
_UNREADABLE = object()  # a label_cache file that is no label cache: left as it is

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
IR_FORMAT = "<IfQQ"
IR_SIZE = struct.calcsize(IR_FORMAT)  # 24
MAX_PART_LENGTH = (1 << 29) - 1

PathLike = Union[str, os.PathLike]


class RecordIOError(InvalidInputError):
    """A record is malformed: bad magic, truncated, impossible flags or header."""


# ----------------------------------------------------------------------------- framing


def encode_lrecord(cflag: int, length: int) -> int:
    """Continuation flag (3 bits) and length (29 bits) -> the uint32 ``lrecord``."""
    if not 0 <= cflag <= 3:
        raise ValueError(f"cflag must be 0..3, got {cflag}")
    if not 0 <= length <= MAX_PART_LENGTH:
        raise ValueError(f"record part length {length} does not fit in 29 bits")
    return (cflag << 29) | length


def decode_lrecord(lrecord: int) -> tuple[int, int]:
    """``lrecord`` -> (cflag, length)."""
    return lrecord >> 29, lrecord & MAX_PART_LENGTH


def split_payload(payload: bytes) -> list[tuple[int, bytes]]:
    """Split a payload as MXNet's writer does: at every 4-byte aligned occurrence of
    the magic number. Returns ``[(cflag, part_bytes), ...]``."""
    if len(payload) > MAX_PART_LENGTH:
        raise InvalidInputError(f"RecordIO records are limited to 2^29 bytes, got {len(payload)}")
    parts: list[tuple[int, bytes]] = []
    start = 0
    lower_align = len(payload) & ~3
    pos = payload.find(MAGIC_BYTES, 0, lower_align)
    while pos != -1:
        if pos % 4 == 0:
            parts.append((1 if start == 0 else 2, payload[start:pos]))
            start = pos + 4
            pos = payload.find(MAGIC_BYTES, start, lower_align)
        else:
            pos = payload.find(MAGIC_BYTES, pos + 1, lower_align)
    parts.append((3 if start != 0 else 0, payload[start:]))
    return parts


def frame_record(payload: bytes) -> bytes:
    """Payload -> the bytes MXNet writes to the ``.rec`` file for it."""
    out = bytearray()
    for cflag, part in split_payload(payload):
        out += struct.pack("<II", MAGIC, encode_lrecord(cflag, len(part)))
        out += part
    out += b"\0" * (-len(payload) % 4)  # MXNet pads once, after the last part
    return bytes(out)


# ----------------------------------------------------------------------------- payload


def pack_header(label: Union[float, Sequence[float], np.ndarray], id: int = 0, id2: int = 0) -> bytes:
    """The IRHeader bytes (plus float32 labels when ``label`` is a sequence), as
    ``mxnet.recordio.pack`` writes them. Append the image bytes to get a payload."""
    if np.ndim(label) == 0:
        return struct.pack(IR_FORMAT, 0, float(label), int(id), int(id2))
    labels = np.asarray(label, dtype=np.float32).reshape(-1)
    if labels.size == 0:
        raise InvalidInputError("label sequence is empty")
    return struct.pack(IR_FORMAT, labels.size, 0.0, int(id), int(id2)) + labels.astype("<f4").tobytes()


def unpack_header(payload: bytes) -> tuple[int, np.ndarray, int, int, int]:
    """Payload -> (flag, labels float32 array, id, id2, offset of the image bytes)."""
    if len(payload) < IR_SIZE:
        raise RecordIOError(f"payload of {len(payload)} bytes is shorter than the {IR_SIZE}-byte header")
    flag, label, id_, id2 = struct.unpack_from(IR_FORMAT, payload, 0)
    if flag > 0:
        end = IR_SIZE + 4 * flag
        if end > len(payload):
            raise RecordIOError(f"header announces {flag} labels but the payload has only {len(payload)} bytes")
        labels = np.frombuffer(payload, dtype="<f4", count=flag, offset=IR_SIZE).astype(np.float32)
        return flag, labels, id_, id2, end
    return flag, np.array([label], dtype=np.float32), id_, id2, IR_SIZE


def unpack_payload(payload: bytes) -> tuple[np.ndarray, bytes]:
    """Payload -> (header labels as a float32 array, encoded image bytes).

    A scalar label (flag 0) comes back as a one-element array."""
    _, labels, _, _, start = unpack_header(payload)
    return labels, bytes(payload[start:])


# ----------------------------------------------------------------------------- reader


class RecordIOReader:
    """Random access to an indexed RecordIO file pair (``.rec`` + ``.idx``).

    ``keys`` is an int64 array of the keys in index-file order. The file handle is
    opened lazily and reopened in a new process (DataLoader workers), and the
    reader pickles without it.
    """

    def __init__(self, rec_path: PathLike, idx_path: PathLike) -> None:
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path)
        if not self.rec_path.is_file():
            raise InputNotFoundError(f"RecordIO data file not found: {self.rec_path}")
        if not self.idx_path.is_file():
            raise InputNotFoundError(f"RecordIO index file not found: {self.idx_path}")
        self.rec_size = self.rec_path.stat().st_size
        self._file = None
        self._pid: int | None = None
        self._load_index()

    # -- index
    def _load_index(self) -> None:
        text = self.idx_path.read_text(encoding="ascii", errors="strict")
        stripped = text.strip()
        if not stripped:
            raise InvalidInputError(f"RecordIO index {self.idx_path} is empty")
        num_lines = stripped.count("\n") + 1
        try:
            values = np.fromstring(stripped, dtype=np.int64, sep=" ")
        except ValueError:
            values = np.zeros(0, dtype=np.int64)
        if values.size != 2 * num_lines:
            bad = next(
                (ln for ln in stripped.splitlines() if len(ln.split()) != 2 or not all(p.isdigit() for p in ln.split())),
                "?",
            )
            raise InvalidInputError(f"RecordIO index {self.idx_path} has a malformed line: {bad!r} (expected 'key<TAB>offset')")
        pairs = values.reshape(-1, 2)
        keys, offsets = pairs[:, 0].copy(), pairs[:, 1].copy()
        if (keys < 0).any() or (offsets < 0).any():
            raise InvalidInputError(f"RecordIO index {self.idx_path} has negative keys or offsets")
        if np.unique(keys).size != keys.size:
            raise InvalidInputError(f"RecordIO index {self.idx_path} lists a key more than once")
        if (offsets + 8 > self.rec_size).any():
            raise InvalidInputError(f"RecordIO index {self.idx_path} points past the end of {self.rec_path}")
        self.keys = keys
        self.offsets = offsets
        order = np.argsort(keys, kind="stable")
        self._sorted_keys = keys[order]
        self._sorted_offsets = offsets[order]
        self._dense = bool(self._sorted_keys[-1] - self._sorted_keys[0] + 1 == len(keys))

    def __len__(self) -> int:
        return int(self.keys.size)

    def __contains__(self, key: int) -> bool:
        try:
            self.offset(key)
            return True
        except KeyError:
            return False

    def offset(self, key: int) -> int:
        """Byte offset of ``key`` in the ``.rec`` file (KeyError if absent)."""
        key = int(key)
        if self._dense:
            i = key - int(self._sorted_keys[0])
            if 0 <= i < len(self._sorted_keys):
                return int(self._sorted_offsets[i])
        else:
            i = int(np.searchsorted(self._sorted_keys, key))
            if i < len(self._sorted_keys) and int(self._sorted_keys[i]) == key:
                return int(self._sorted_offsets[i])
        raise UnknownNameError(f"key {key} is not in RecordIO index {self.idx_path}")

    # -- file access
    def _handle(self):
        pid = os.getpid()
        if self._file is None or self._pid != pid:
            self._file = open(self.rec_path, "rb")
            self._pid = pid
        return self._file

    def _read_part_head(self, f, where: int) -> tuple[int, int]:
        head = f.read(8)
        if len(head) < 8:
            raise RecordIOError(f"record truncated at byte {where} of {self.rec_path}")
        magic, lrecord = struct.unpack("<II", head)
        if magic != MAGIC:
            raise RecordIOError(f"bad magic 0x{magic:08x} at byte {where} of {self.rec_path}")
        return decode_lrecord(lrecord)

    def read_at(self, offset: int) -> bytes:
        """The (joined) payload of the record starting at byte ``offset``."""
        f = self._handle()
        f.seek(offset)
        parts: list[bytes] = []
        pos = offset
        while True:
            cflag, length = self._read_part_head(f, pos)
            if cflag > 3:
                raise RecordIOError(f"invalid continuation flag {cflag} at byte {pos} of {self.rec_path}")
            if not parts and cflag not in (0, 1):
                raise RecordIOError(f"record at byte {offset} starts with a continuation part (cflag {cflag})")
            if parts and cflag not in (2, 3):
                raise RecordIOError(f"multi-part record at byte {offset} is interrupted by cflag {cflag} at byte {pos}")
            padded = (length + 3) & ~3
            data = f.read(padded)
            if len(data) < length:
                raise RecordIOError(f"record at byte {offset} is truncated ({len(data)} of {length} bytes)")
            parts.append(data[:length])
            pos += 8 + padded
            if cflag in (0, 3):
                break
        return MAGIC_BYTES.join(parts)

    def read(self, key: int) -> bytes:
        """The payload of record ``key`` (multi-part records joined)."""
        return self.read_at(self.offset(key))

    def read_idx(self, key: int) -> bytes:
        """Same as :meth:`read` (MXNet's ``MXIndexedRecordIO.read_idx`` name)."""
        return self.read(key)

    def read_header(self, key: int) -> tuple[int, np.ndarray]:
        """(flag, labels) of record ``key``, reading only the header bytes when possible."""
        offset = self.offset(key)
        f = self._handle()
        f.seek(offset)
        cflag, length = self._read_part_head(f, offset)
        if cflag != 0:  # rare: the header may span parts
            flag, labels, *_ = unpack_header(self.read_at(offset))
            return flag, labels
        head = f.read(min(length, IR_SIZE))
        if len(head) < IR_SIZE:
            raise RecordIOError(f"record {key}: payload too short for a header")
        flag = struct.unpack_from("<I", head, 0)[0]
        if flag > 0:
            if IR_SIZE + 4 * flag > length:
                raise RecordIOError(f"record {key}: header announces {flag} labels in a {length}-byte payload")
            head += f.read(4 * flag)
        flag, labels, *_ = unpack_header(head)
        return flag, labels

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None
        self._pid = None

    def __enter__(self) -> "RecordIOReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        return state

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


# ----------------------------------------------------------------------------- writer


class RecordIOWriter:
    """Writes an indexed RecordIO pair in MXNet's format (``key<TAB>offset`` index lines).

    The pair is written to temporary files beside ``rec_path`` and ``idx_path``; :meth:`close` (or
    leaving the ``with`` block normally) fsyncs both and renames them into place, so an earlier pair
    of those names stays whole until the new one is complete. Leaving the ``with`` block by an
    exception (a full disk, a bad record) discards the new pair. ``atomic=False`` writes straight
    to the given paths, for a caller that already writes to temporaries (:func:`pack_image_folder`).
    """

    def __init__(self, rec_path: PathLike, idx_path: PathLike, atomic: bool = True) -> None:
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path)
        for p in (self.rec_path, self.idx_path):
            if not p.parent.is_dir():
                raise InputNotFoundError(f"output folder does not exist: {p.parent}")
        self._commit = contextlib.ExitStack()
        self._rec = self._idx = None
        self._keys: set[int] = set()
        rec, idx = self.rec_path, self.idx_path
        try:
            if atomic:
                rec, idx = self._commit.enter_context(atomic_paths(rec, idx))
            self._rec = open(rec, "wb")
            self._idx = open(idx, "w", encoding="ascii", newline="\n")
        except BaseException as exc:
            if self._rec is not None:
                self._rec.close()
                self._rec = None
            self._commit.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def write(self, key: int, payload: bytes) -> int:
        """Append record ``key``; returns its byte offset."""
        if self._rec is None:
            raise ValueError("RecordIOWriter is closed")
        if isinstance(key, bool) or int(key) != key or key < 0:
            raise InvalidInputError(f"RecordIO keys must be non-negative integers, got {key!r}")
        key = int(key)
        if key in self._keys:
            raise InvalidInputError(f"key {key} was already written")
        offset = self._rec.tell()
        self._rec.write(frame_record(bytes(payload)))
        self._idx.write(f"{key}\t{offset}\n")
        self._keys.add(key)
        return offset

    def overwrite(self, offset: int, payload: bytes) -> None:
        """Rewrite the record at ``offset`` in place (used for a header whose values are
        known only at the end); the new framing must not run past the end of the file."""
        if self._rec is None:
            raise ValueError("RecordIOWriter is closed")
        framed = frame_record(bytes(payload))
        end = self._rec.tell()
        if offset + len(framed) > end:
            raise ValueError("overwrite would run past the end of the file")
        self._rec.seek(offset)
        self._rec.write(framed)
        self._rec.seek(end)

    def close(self) -> None:
        """Finish the pair: flush, fsync and rename both files into place."""
        self._finish(None)

    def _finish(self, error: BaseException | None) -> None:
        if self._rec is None:
            return
        files, stack = (self._rec, self._idx), self._commit
        self._rec = self._idx = None
        from_body = error is not None
        for f in files:
            try:
                f.close()  # flushes: a full disk may only show here
            except OSError as exc:
                error = error or exc
        if error is None:
            stack.close()  # fsync + rename; raises OutputWriteError on failure
            return
        stack.__exit__(type(error), error, error.__traceback__)  # removes the temporaries (may re-raise, wrapped)
        if not from_body:
            raise error

    def __enter__(self) -> "RecordIOWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._finish(exc)


# ----------------------------------------------------------------------------- packing


def pack_image_folder(
    images_dir: PathLike,
    out_dir: PathLike,
    quality: int = 95,
    png: bool = False,
    size: int = INPUT_SIZE,
    progress: bool = True,
) -> dict:
    """Pack ``images_dir/<identity>/<image>`` into ``out_dir/train.rec``, ``train.idx``,
    ``property`` (``num_classes,size,size``) in the insightface layout, plus
    ``classes.txt`` (identity name of label i on line i).

    Identities are labelled 0.. in sorted name order. Record 0 is the header
    (labels ``[num_images + 1, num_images + 1 + num_classes]``), keys 1..num_images the
    images (scalar float labels), then one identity record per class with labels
    ``[first_key, end_key)``. Images are converted to RGB, resized to ``size`` when
    needed (meant for aligned crops) and stored as JPEG (``quality``) or PNG.
    Unreadable source images are skipped with a warning. ``progress``: a progress bar (from 200 images).
    Returns ``dict(num_images, num_classes, skipped)``.
    """
    if not 1 <= int(quality) <= 100:
        raise InvalidInputError(f"JPEG quality must be in 1..100, got {quality}")
    classes, samples = scan_image_folder(images_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The four files are one set: written to temporaries, then renamed together.
    targets = [out / "train.rec", out / "train.idx", out / "property", out / "classes.txt"]
    with atomic_paths(*targets) as (rec, idx, prop, names):
        prop.write_text(f"{len(classes)},{size},{size}\n")
        names.write_text("".join(f"{name}\n" for name in classes), encoding="utf-8")
        with RecordIOWriter(rec, idx, atomic=False) as writer:
            stats = _pack_records(writer, samples, len(classes), images_dir, size, png, quality, progress)
    return stats


def _pack_records(writer: RecordIOWriter, samples, num_classes: int, images_dir, size: int, png: bool, quality: int,
                  progress: bool = True) -> dict:
    """Header, image and identity records of :func:`pack_image_folder`."""
    starts = np.full(num_classes, -1, dtype=np.int64)
    ends = np.full(num_classes, -1, dtype=np.int64)
    skipped = 0
    key = 1
    header_offset = writer.write(0, pack_header([0.0, 0.0]))  # rewritten at the end
    for path, label in tqdm(samples, desc="pack", unit="img", disable=not progress or len(samples) < 200):
        try:
            image = load_image(path, size)
        except UNREADABLE as exc:
            log.warning("pack: skipping unreadable image: %s", exc)
            skipped += 1
            continue
        writer.write(key, pack_header(float(label)) + encode_image(image, png=png, quality=quality))
        if starts[label] < 0:
            starts[label] = key
        key += 1
        ends[label] = key
    num_images = key - 1
    if num_images == 0:
        raise InvalidInputError(f"no readable images under {images_dir}")
    if num_images + 1 + num_classes > 2**24:
        log.warning("pack: more than 2^24 records; the header and identity records store keys as float32 "
                    "(as insightface does), so keys above 16,777,216 may be rounded")
    previous_end = 1
    for c in range(num_classes):
        if starts[c] < 0:  # every image of this identity was unreadable: empty range
            starts[c] = ends[c] = previous_end
        previous_end = ends[c]
        writer.write(num_images + 1 + c, pack_header([float(starts[c]), float(ends[c])]))
    writer.overwrite(header_offset, pack_header([float(num_images + 1), float(num_images + 1 + num_classes)]))
    return {"num_images": num_images, "num_classes": num_classes, "skipped": skipped}


# ----------------------------------------------------------------------------- dataset


def _locate(root_dir: PathLike) -> tuple[Path, Path, Path]:
    root = Path(root_dir)
    if root.is_file() and root.suffix == ".rec":
        rec, idx = root, root.with_suffix(".idx")
        root = root.parent
    else:
        if not root.is_dir():
            raise InputNotFoundError(f"RecordIO folder not found: {root}")
        rec, idx = root / "train.rec", root / "train.idx"
    return root, rec, idx


def _read_property(path: Path) -> int | None:
    if not path.is_file():
        return None
    text = path.read_text().strip()
    try:
        return int(text.split(",")[0])
    except ValueError:
        raise InvalidInputError(f"cannot read the number of classes from {path}: {text!r}") from None


class RecordIODataset(torch.utils.data.Dataset):
    """An insightface RecordIO folder (``train.rec``, ``train.idx``, optional ``property``).

    Items are ``(3x112x112 float tensor, ``(pixel / 255 - 0.5) / 0.5``, int label)``.
    ``transform=None`` gives the image as stored; ``"train"`` adds a random
    horizontal flip; a callable is applied to the normalised tensor.

    ``labels`` holds every image's label, read from the record headers at
    construction (images are not decoded then); a record whose header cannot be
    read gets label -1 and counts as bad. ``num_classes`` comes from ``property``
    when present, else from the labels.

    A corrupt or undecodable record is skipped: the next good record is returned
    instead, a warning is issued once per bad key, and ``bad_records`` counts them.
    Once at least ``min(min_reads, len(self))`` distinct records were read, a
    RuntimeError stops the run when more than ``max_bad_fraction`` of them were bad.
    With DataLoader workers each worker counts the records it read (and warns);
    ``bad_records`` of the main-process object only counts its own reads.

    Reading the labels of a large set (Glint360K: 17 M records) takes minutes;
    ``label_cache`` (a writable ``.npz`` path) stores them for the next run, tied to
    the ``.rec`` file's size and modification time.
    """

    def __init__(
        self,
        root_dir: PathLike,
        transform: Transform = None,
        max_bad_fraction: float = 0.01,
        min_reads: int = 1000,
        label_cache: PathLike | None = None,
    ) -> None:
        self.root, rec, idx = _locate(root_dir)
        self.label_cache = Path(label_cache) if label_cache is not None else None
        self.transform = resolve_transform(transform)
        self.reader = RecordIOReader(rec, idx)
        self.image_keys = self._image_keys()
        n = len(self.image_keys)
        if n == 0:
            raise InvalidInputError(f"RecordIO data set {self.root} holds no image records")
        self.tracker = BadSampleTracker(n, max_bad_fraction, min_reads, f"RecordIO {self.root}")
        self.labels = self._cached_labels()
        max_label = int(self.labels.max()) if (self.labels >= 0).any() else -1
        declared = _read_property(self.root / "property")
        if declared is not None and declared < max_label + 1:
            raise InvalidInputError(f"{self.root / 'property'} declares {declared} classes but labels go up to {max_label}")
        self.num_classes = declared if declared is not None else max_label + 1

    def _image_keys(self) -> np.ndarray:
        reader = self.reader
        if 0 in reader:
            try:
                labels, image = unpack_payload(reader.read(0))
                flag = reader.read_header(0)[0]
            except RecordIOError as exc:
                raise InvalidInputError(f"cannot read record 0 of {reader.rec_path} (header record?): {exc}") from None
            if flag > 0 and len(image) == 0:
                end = int(labels[0])
                keys = np.arange(1, end, dtype=np.int64)
                missing = np.setdiff1d(keys, reader.keys)
                if missing.size:
                    raise InvalidInputError(
                        f"header record of {reader.rec_path} says images are keys 1..{end - 1}, "
                        f"but {missing.size} of them are missing from {reader.idx_path} (first: {missing[0]})"
                    )
                return keys
        return reader.keys.copy()

    def _cache_signature(self) -> np.ndarray:
        st = self.reader.rec_path.stat()
        return np.array([st.st_size, st.st_mtime_ns, len(self.image_keys), int(self.image_keys[0])], dtype=np.int64)

    def _cached_labels(self) -> np.ndarray:
        """Labels from ``label_cache`` when it matches this ``.rec`` (size, mtime, count), else read
        from the headers and saved to ``label_cache`` when given. A file there that is no label cache
        (not a ``.npz`` with labels and signature) is left as it is, with a warning: it may be
        anything a typo pointed at."""
        if self.label_cache is None:
            return self._read_labels()
        signature = self._cache_signature()
        cached = self._load_label_cache(signature) if self.label_cache.is_file() else None
        if isinstance(cached, np.ndarray):
            for i in np.flatnonzero(cached < 0):
                self.tracker.mark_bad(int(i), f"key {int(self.image_keys[i])}", "unreadable header (cached)")
            return cached
        labels = self._read_labels()
        if cached is _UNREADABLE:
            return labels
        try:
            with atomic_open(self.label_cache, "wb") as f:  # a reader never sees half a cache
                np.savez(f, labels=labels, signature=signature)
        except OSError as exc:
            log.warning("cannot write label cache %s: %s", self.label_cache, exc)
        return labels

    def _load_label_cache(self, signature: np.ndarray) -> np.ndarray | None | object:
        """The cached labels when the cache matches ``signature``; None for a label cache of another
        state of the ``.rec`` (rewritten); :data:`_UNREADABLE` for a file that is no label cache."""
        try:
            with open(self.label_cache, "rb") as f:  # closed also when numpy fails on it
                cached = np.load(f, allow_pickle=False)
                if not isinstance(cached, np.lib.npyio.NpzFile):
                    reason = "a .npy array, not a .npz label cache"
                elif not {"labels", "signature"} <= set(cached.files):
                    reason = f"a .npz holding {', '.join(cached.files) or 'nothing'}, not labels and signature"
                elif not np.array_equal(cached["signature"], signature):
                    return None
                else:
                    return cached["labels"].astype(np.int64)
        except OSError as exc:
            reason = f"cannot read it: {exc.strerror or exc}"
        except (ValueError, EOFError, zipfile.BadZipFile):  # numpy's pickle refusal, a damaged archive
            reason = "not a .npz file, or a damaged one"
        log.warning("label cache %s is unreadable (%s): the labels are read from the .rec headers and the file is "
                    "left as it is; delete it (or choose another label_cache path) to have the cache rebuilt",
                    self.label_cache, reason)
        return _UNREADABLE

    def _read_labels(self) -> np.ndarray:
        n = len(self.image_keys)
        labels = np.empty(n, dtype=np.int64)
        bad: list[tuple[int, str]] = []
        for i in tqdm(range(n), desc="read labels", unit="rec", disable=n < 20000):
            key = int(self.image_keys[i])
            try:
                _, lab = self.reader.read_header(key)
            except RecordIOError as exc:
                labels[i] = -1
                bad.append((i, str(exc)))
                continue
            value = float(lab[0])
            if not np.isfinite(value) or value < 0 or value != int(value):
                raise InvalidInputError(f"record {key} of {self.reader.rec_path} has label {value}: expected an integer >= 0")
            labels[i] = int(value)
        for i, reason in bad:
            self.tracker.mark_bad(i, f"key {int(self.image_keys[i])}", reason)
        if bad and len(bad) / n > self.tracker.max_bad_fraction:
            raise TooManyBadSamplesError(
                f"RecordIO {self.root}: {len(bad)} of {n} record headers are corrupt "
                f"(more than max_bad_fraction={self.tracker.max_bad_fraction:.2%})"
            )
        return labels

    @property
    def bad_records(self) -> int:
        return self.tracker.count

    def __len__(self) -> int:
        return len(self.image_keys)

    def load(self, index: int) -> tuple[np.ndarray, int]:
        """Decoded RGB uint8 112x112x3 image and label of ``index`` (errors raised, not skipped)."""
        key = int(self.image_keys[index])
        _, data = unpack_payload(self.reader.read(key))
        return decode_image(data, name=f"record {key}"), int(self.labels[index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = check_index(index, len(self))
        image, label = self.tracker.first_good(
            index,
            self.load,
            (RecordIOError, ImageLoadError),
            lambda j: f"key {int(self.image_keys[j])}",
            f"RecordIO {self.root}: no decodable record left",
        )
        return image_to_sample(image, self.transform), label

    def __repr__(self) -> str:
        return f"RecordIODataset({str(self.root)!r}, images={len(self)}, classes={self.num_classes})"
