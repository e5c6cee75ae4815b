"""RecordIO: reader against an independent hand-written writer, writer bytes against
MXNet's framing, multi-part records, corrupt records, header record, workers."""
from __future__ import annotations

import struct
import warnings

import cv2
import numpy as np
import pytest
import torch

import recordio_handmade as hand
from facelivt.data import RecordIODataset, RecordIOReader, RecordIOWriter, pack_header, unpack_payload
from facelivt.data.recordio import RecordIOError, frame_record, split_payload
from log_helpers import logs_no_warning, logs_warning

MAGIC = struct.pack("<I", 0xCED7230A)


def make_image(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (7, 7, 3), dtype=np.uint8)
    return cv2.resize(small, (112, 112), interpolation=cv2.INTER_LINEAR)


def png_bytes(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def jpeg_with_magic(image: np.ndarray) -> bytes:
    """A valid JPEG whose comment segment holds the RecordIO magic twice at 4-byte
    aligned payload offsets (32 and 40, once the 24-byte header is in front) and
    once unaligned (45), which must not split."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    jpg = buf.tobytes()
    assert MAGIC not in jpg
    # payload offsets: SOI 24-25, COM marker 26-27, length 28-29, data from 30
    data = b"\x00\x01" + MAGIC + b"abcd" + MAGIC + b"x" + MAGIC + b"yyy"
    com = b"\xff\xfe" + struct.pack(">H", len(data) + 2) + data
    return jpg[:2] + com + jpg[2:]


def decoded(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def expected_tensor(image: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(image).permute(2, 0, 1).float() / 255 - 0.5) / 0.5


@pytest.fixture()
def handmade_set(tmp_path):
    """insightface layout by the independent writer: header, 6 images (3 ids), 3 identity records.
    Key 2 is the multi-part JPEG, key 4 has a corrupt (undecodable) image."""
    images = {k: make_image(k) for k in range(1, 7)}
    labels = {1: 0, 2: 0, 3: 1, 4: 1, 5: 2, 6: 2}
    records = [(0, hand.payload(0, b"", flag_labels=[7, 10]))]
    for k in range(1, 7):
        if k == 2:
            img = jpeg_with_magic(images[k])
        elif k == 4:
            img = b"\xff\xd8\xff\xe0 this is not a jpeg at all" + bytes(100)
        else:
            img = png_bytes(images[k])
        records.append((k, hand.payload(labels[k], img)))
    for c, (a, b) in enumerate([(1, 3), (3, 5), (5, 7)]):
        records.append((7 + c, hand.payload(0, b"", flag_labels=[a, b])))
    root = tmp_path / "set"
    root.mkdir()
    hand.write(root / "train.rec", root / "train.idx", records)
    (root / "property").write_text("3,112,112")
    return root, images, labels, dict(records)


def test_handmade_file_really_has_multipart_record(handmade_set):
    root, *_ = handmade_set
    flags = [f for f, _ in hand.read_all(root / "train.rec")]
    assert [1, 2, 3] in flags  # record 2 split at offsets 32 and 40, not at 45
    assert sum(len(f) > 1 for f in flags) == 1


def test_reader_reads_handmade_records(handmade_set):
    root, images, labels, records = handmade_set
    reader = RecordIOReader(root / "train.rec", root / "train.idx")
    assert list(reader.keys) == list(range(10))
    for key, data in records.items():
        assert reader.read(key) == data
        assert reader.read_idx(key) == data
    lab, img = unpack_payload(reader.read(2))
    assert lab.tolist() == [0.0]
    assert img.count(MAGIC) == 3
    assert np.abs(decoded(img).astype(int) - images[2]).mean() < 4  # JPEG q95
    flag, lab0 = reader.read_header(0)
    assert flag == 2 and lab0.tolist() == [7.0, 10.0]
    assert reader.read_header(2)[1].tolist() == [0.0]  # header of a multi-part record
    with pytest.raises(KeyError):
        reader.read(99)


def test_writer_bytes_match_mxnet_framing(tmp_path, handmade_set):
    root, _, _, records = handmade_set
    with RecordIOWriter(tmp_path / "w.rec", tmp_path / "w.idx") as writer:
        for key, data in records.items():
            writer.write(key, data)
    assert (tmp_path / "w.rec").read_bytes() == (root / "train.rec").read_bytes()
    assert (tmp_path / "w.idx").read_text() == (root / "train.idx").read_text()
    for data in records.values():
        assert frame_record(data) == hand.frame(data)


def test_split_payload_edge_cases():
    assert split_payload(b"") == [(0, b"")]
    assert split_payload(MAGIC) == [(1, b""), (3, b"")]
    assert split_payload(MAGIC + MAGIC) == [(1, b""), (2, b""), (3, b"")]
    assert split_payload(b"ab" + MAGIC + b"cd") == [(0, b"ab" + MAGIC + b"cd")]  # unaligned: kept
    assert split_payload(b"abcd" + MAGIC[:3]) == [(0, b"abcd" + MAGIC[:3])]
    for data in [b"", MAGIC, MAGIC * 3 + b"z", b"1234" + MAGIC + b"56"]:
        assert frame_record(data) == hand.frame(data)


def test_pack_header_matches_mxnet_layout():
    assert pack_header(3) == struct.pack("<IfQQ", 0, 3.0, 0, 0)
    assert pack_header([1.5, 2.0], id=7) == struct.pack("<IfQQff", 2, 0.0, 7, 0, 1.5, 2.0)
    lab, img = unpack_payload(pack_header(5.0) + b"IMG")
    assert lab.tolist() == [5.0] and img == b"IMG"
    lab, img = unpack_payload(pack_header([4, 9]) + b"xyz")
    assert lab.tolist() == [4.0, 9.0] and img == b"xyz"
    with pytest.raises(RecordIOError, match="shorter"):
        unpack_payload(b"\x00" * 10)
    with pytest.raises(RecordIOError, match="labels"):
        unpack_payload(struct.pack("<IfQQ", 50, 0.0, 0, 0) + b"\x00" * 8)
    with pytest.raises(ValueError, match="empty"):
        pack_header([])


def test_dataset_header_layout_and_skipping(handmade_set, caplog):
    root, images, labels, _ = handmade_set
    ds = RecordIODataset(root, max_bad_fraction=0.5)
    assert len(ds) == 6  # keys 1..6; identity records 7..9 are not images
    assert ds.num_classes == 3
    assert ds.labels.tolist() == [labels[k] for k in range(1, 7)]
    x, y = ds[0]
    assert x.shape == (3, 112, 112) and x.dtype == torch.float32 and y == 0
    assert torch.allclose(x, expected_tensor(images[1]))  # PNG: lossless
    x, y = ds[1]  # the multi-part JPEG
    assert y == 0 and (x - expected_tensor(images[2])).abs().mean() < 0.03
    assert ds.bad_records == 0
    with logs_warning(caplog, "skipping bad sample key 4"):
        x, y = ds[3]  # corrupt -> the next record (key 5)
    assert y == 2 and torch.allclose(x, expected_tensor(images[5]))
    assert ds.bad_records == 1
    with logs_no_warning(caplog):  # warned once per key: no second warning
        x2, _ = ds[3]
    assert torch.equal(x, x2) and ds.bad_records == 1
    with pytest.raises(IndexError):
        ds[6]


def test_dataset_stops_when_too_many_bad(handmade_set, caplog):
    root, *_ = handmade_set
    ds = RecordIODataset(root, max_bad_fraction=0.1, min_reads=3)
    ds[0], ds[1]
    with logs_warning(caplog, "key 4"), pytest.raises(RuntimeError, match="max_bad_fraction"):
        ds[3]  # 1 bad of 3 seen > 10 %
    # below min_reads nothing is decided yet
    ds = RecordIODataset(root, max_bad_fraction=0.1, min_reads=100)
    with logs_warning(caplog, "key 4"):
        ds[3]  # reads index 3 (bad) and 4
    ds[0], ds[1], ds[2]  # 1 of 5 bad, but min(100, 6) = 6 distinct reads not reached
    with pytest.raises(RuntimeError, match="max_bad_fraction"):
        ds[5]  # the sixth distinct read reaches the threshold


def test_corrupt_framing_is_skipped(tmp_path, caplog):
    root = tmp_path / "noheader"
    root.mkdir()
    imgs = [make_image(10 + k) for k in range(4)]
    offsets = hand.write(root / "train.rec", root / "train.idx",
                         [(k, hand.payload(k % 2, png_bytes(imgs[k]))) for k in range(4)])
    raw = bytearray((root / "train.rec").read_bytes())
    raw[offsets[1] : offsets[1] + 4] = b"JUNK"  # destroy record 1's magic
    (root / "train.rec").write_bytes(bytes(raw))
    reader = RecordIOReader(root / "train.rec", root / "train.idx")
    with pytest.raises(RecordIOError, match="bad magic"):
        reader.read(1)
    with logs_warning(caplog, "key 1"), pytest.raises(RuntimeError, match="corrupt"):
        RecordIODataset(root)  # 1 of 4 headers unreadable > 1 %
    with logs_warning(caplog, "key 1"):
        ds = RecordIODataset(root, max_bad_fraction=0.3)
    assert len(ds) == 4  # no header record: every key is an image
    assert ds.labels.tolist() == [0, -1, 0, 1] and ds.bad_records == 1
    assert ds.num_classes == 2  # no property file: from the labels
    x, y = ds[1]
    assert y == 0 and torch.allclose(x, expected_tensor(imgs[2]))


def test_truncated_file(tmp_path):
    root = tmp_path / "trunc"
    root.mkdir()
    hand.write(root / "train.rec", root / "train.idx", [(0, hand.payload(0, png_bytes(make_image(0))))])
    raw = (root / "train.rec").read_bytes()
    (root / "train.rec").write_bytes(raw[:40])
    reader = RecordIOReader(root / "train.rec", root / "train.idx")
    with pytest.raises(RecordIOError, match="truncated"):
        reader.read(0)


def test_train_transform_flips(handmade_set):
    root, images, *_ = handmade_set
    plain = RecordIODataset(root, transform=None, max_bad_fraction=0.5)
    aug = RecordIODataset(root, transform="train", max_bad_fraction=0.5)
    x = plain[0][0]
    torch.manual_seed(0)
    outs = [aug[0][0] for _ in range(20)]
    flips = [torch.equal(o, torch.flip(x, dims=[2])) for o in outs]
    same = [torch.equal(o, x) for o in outs]
    assert all(a or b for a, b in zip(flips, same)) and any(flips) and any(same)
    assert all(torch.equal(plain[0][0], x) for _ in range(5))
    custom = RecordIODataset(root, transform=lambda t: t * 0, max_bad_fraction=0.5)
    assert custom[0][0].abs().sum() == 0
    with pytest.raises(ValueError, match="transform"):
        RecordIODataset(root, transform="bogus")


def test_multi_worker_loading(handmade_set):
    root, _, labels, _ = handmade_set
    ds = RecordIODataset(root, max_bad_fraction=0.5)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    got = torch.cat([y for _, y in loader]).tolist()
    assert got == [0, 0, 1, 2, 2, 2]  # index 3 (corrupt) replaced by the next record


def test_bad_paths_and_index(tmp_path, handmade_set):
    root, *_ = handmade_set
    with pytest.raises(FileNotFoundError, match="not found"):
        RecordIODataset(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="train.rec"):
        RecordIODataset(empty)
    bad = tmp_path / "badidx"
    bad.mkdir()
    (bad / "train.rec").write_bytes((root / "train.rec").read_bytes())
    (bad / "train.idx").write_text("0\t0\n1\tnope\n")
    with pytest.raises(ValueError, match="malformed"):
        RecordIODataset(bad)
    (bad / "train.idx").write_text("0\t0\n1\t99999999\n")
    with pytest.raises(ValueError, match="past the end"):
        RecordIODataset(bad)
    (bad / "train.idx").write_text("0\t0\n")  # header says keys 1..6, index lacks them
    with pytest.raises(ValueError, match="missing"):
        RecordIODataset(bad)
    with pytest.raises(ValueError, match="max_bad_fraction"):
        RecordIODataset(root, max_bad_fraction=2.0)


def test_writer_rejects_bad_keys(tmp_path):
    with RecordIOWriter(tmp_path / "a.rec", tmp_path / "a.idx") as w:
        w.write(0, b"x")
        with pytest.raises(ValueError, match="already"):
            w.write(0, b"y")
        with pytest.raises(ValueError, match="non-negative"):
            w.write(-1, b"y")
    with pytest.raises(FileNotFoundError):
        RecordIOWriter(tmp_path / "no" / "a.rec", tmp_path / "no" / "a.idx")


def test_label_cache(tmp_path, handmade_set):
    root, _, labels, _ = handmade_set
    cache = tmp_path / "labels.npz"
    first = RecordIODataset(root, max_bad_fraction=0.5, label_cache=cache)
    assert cache.is_file()
    # a cache that matches is used instead of the headers: prove it by editing it
    with np.load(cache) as c:
        sig, lab = c["signature"], c["labels"].copy()
    lab[0] = 2
    np.savez(cache, labels=lab, signature=sig)
    assert RecordIODataset(root, max_bad_fraction=0.5, label_cache=cache).labels[0] == 2
    # a stale cache (other file size) is ignored and rewritten
    sig[0] += 1
    np.savez(cache, labels=lab, signature=sig)
    again = RecordIODataset(root, max_bad_fraction=0.5, label_cache=cache)
    assert again.labels.tolist() == first.labels.tolist() == [labels[k] for k in range(1, 7)]


def test_a_file_that_is_no_label_cache_is_named_and_left_alone(tmp_path, handmade_set, caplog):
    """A garbage label_cache (text, a damaged zip, another .npz, the set's own .idx by a typo): one
    logged warning saying it is unreadable and how to have it rebuilt; the labels come from the
    headers; the file is not overwritten; no Python warning, no numpy 'allow_pickle' advice."""
    root, _, labels, _ = handmade_set
    other = tmp_path / "other.npz"
    np.savez(other, foo=np.zeros(3))
    (tmp_path / "text.npz").write_text("garbage\n")
    (tmp_path / "zip.npz").write_bytes(b"PK\x03\x04" + bytes(40))
    for cache in (tmp_path / "text.npz", tmp_path / "zip.npz", other, next(root.glob("*.idx"))):
        before = cache.read_bytes()
        caplog.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with caplog.at_level("WARNING", logger="facelivt"):
                ds = RecordIODataset(root, max_bad_fraction=0.5, label_cache=cache)
        assert ds.labels.tolist() == [labels[k] for k in range(1, 7)]
        assert cache.read_bytes() == before, cache
        messages = [r.getMessage() for r in caplog.records if r.name == "facelivt.data.recordio"]
        assert len(messages) == 1 and messages[0].startswith(f"label cache {cache} is unreadable ("), messages
        assert messages[0].endswith("delete it (or choose another label_cache path) to have the cache rebuilt")
        assert "allow_pickle" not in messages[0]
