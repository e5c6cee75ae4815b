"""A tiny, independent RecordIO writer/reader written from the format description
(dmlc-core's RecordIO), used to check facelivt's implementation against it."""
from __future__ import annotations

import struct

MAGIC = 0xCED7230A


def payload(label, image: bytes, flag_labels=None, id_=0, id2=0) -> bytes:
    """IRHeader '<IfQQ' (+ float32 labels when flag_labels is given) + image bytes."""
    if flag_labels is not None:
        head = struct.pack("<IfQQ", len(flag_labels), 0.0, id_, id2)
        head += b"".join(struct.pack("<f", float(v)) for v in flag_labels)
    else:
        head = struct.pack("<IfQQ", 0, float(label), id_, id2)
    return head + image


def frame(data: bytes) -> bytes:
    """The bytes dmlc::RecordIOWriter::WriteRecord emits for one record."""
    magic = struct.pack("<I", MAGIC)
    out = b""
    start = 0
    for i in range(0, (len(data) // 4) * 4, 4):
        if data[i : i + 4] == magic:
            cflag = 1 if start == 0 else 2
            out += magic + struct.pack("<I", (cflag << 29) | (i - start)) + data[start:i]
            start = i + 4
    cflag = 3 if start != 0 else 0
    out += magic + struct.pack("<I", (cflag << 29) | (len(data) - start)) + data[start:]
    out += b"\x00" * ((4 - len(data) % 4) % 4)
    return out


def write(rec_path, idx_path, records) -> dict:
    """records: iterable of (key, payload). Returns {key: offset}."""
    offsets = {}
    blob = b""
    lines = ""
    for key, data in records:
        offsets[key] = len(blob)
        lines += f"{key}\t{len(blob)}\n"
        blob += frame(data)
    with open(rec_path, "wb") as f:
        f.write(blob)
    with open(idx_path, "w") as f:
        f.write(lines)
    return offsets


def read_all(rec_path) -> list[tuple[list[int], bytes]]:
    """Sequential read of a whole .rec file (no index): [(cflags of the parts, payload)]."""
    with open(rec_path, "rb") as f:
        blob = f.read()
    pos = 0
    records = []
    while pos < len(blob):
        flags, parts = [], []
        while True:
            magic, lrec = struct.unpack_from("<II", blob, pos)
            assert magic == MAGIC, f"bad magic at {pos}"
            cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
            parts.append(blob[pos + 8 : pos + 8 + length])
            flags.append(cflag)
            pos += 8 + ((length + 3) // 4) * 4
            if cflag in (0, 3):
                break
        records.append((flags, struct.pack("<I", MAGIC).join(parts)))
    return records


def unpack(data: bytes):
    """-> (flag, labels list, image bytes)"""
    flag, label, _, _ = struct.unpack_from("<IfQQ", data, 0)
    if flag > 0:
        labels = list(struct.unpack_from(f"<{flag}f", data, 24))
        return flag, labels, data[24 + 4 * flag :]
    return 0, [label], data[24:]
