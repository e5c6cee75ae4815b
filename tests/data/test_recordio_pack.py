"""``facelivt pack`` round trip on real aligned faces (../shared/data/celeba_subset_112)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import recordio_handmade as hand
from facelivt.cli import main
from facelivt.data import RecordIODataset, SyntheticIdentities, pack_image_folder
from log_helpers import logs_warning

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
CELEBA = SHARED / "data" / "celeba_subset_112"
IDENTITIES = ["7201", "7202", "7203"]


@pytest.fixture()
def faces(tmp_path):
    """A folder of 3 real identities (symlinks into the shared data, never copies)."""
    if not CELEBA.is_dir():
        pytest.fail(f"shared test data missing: {CELEBA}")
    root = tmp_path / "faces"
    root.mkdir()
    for name in IDENTITIES:
        (root / name).symlink_to((CELEBA / name).resolve(), target_is_directory=True)
    return root


def originals(root: Path) -> list[tuple[np.ndarray, int]]:
    out = []
    for label, name in enumerate(sorted(p.name for p in root.iterdir())):
        for f in sorted((root / name).iterdir()):
            out.append((np.asarray(Image.open(f).convert("RGB")), label))
    return out


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x * 0.5 + 0.5) * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


@pytest.mark.parametrize("png", [False, True])
def test_pack_cli_round_trip(faces, tmp_path, png, capsys):
    out = tmp_path / ("rec_png" if png else "rec_jpg")
    argv = ["pack", str(faces), "--out", str(out)] + (["--png"] if png else [])
    assert main(argv) == 0
    expected = originals(faces)
    n, c = len(expected), len(IDENTITIES)
    assert f"packed {n} images of {c} identities" in capsys.readouterr().out
    assert (out / "property").read_text().strip() == f"{c},112,112"
    assert (out / "classes.txt").read_text().split() == IDENTITIES

    # an independent sequential reader sees the insightface layout
    records = hand.read_all(out / "train.rec")
    assert len(records) == 1 + n + c
    flag, lab, img = hand.unpack(records[0][1])
    assert flag == 2 and lab == [n + 1, n + 1 + c] and img == b""
    ranges = [hand.unpack(records[n + 1 + k][1])[1] for k in range(c)]
    counts = [sum(1 for _, y in expected if y == k) for k in range(c)]
    assert ranges[0][0] == 1 and ranges[-1][1] == n + 1
    assert [int(b - a) for a, b in ranges] == counts
    idx_keys = [int(line.split("\t")[0]) for line in (out / "train.idx").read_text().splitlines()]
    assert idx_keys == list(range(1 + n + c))
    fmt = b"\x89PNG" if png else b"\xff\xd8"
    assert all(hand.unpack(r[1])[2].startswith(fmt) for r in records[1 : n + 1])

    ds = RecordIODataset(out)
    assert len(ds) == n and ds.num_classes == c and ds.bad_records == 0
    assert ds.labels.tolist() == [y for _, y in expected]
    for i in [0, n // 2, n - 1]:
        x, y = ds[i]
        assert y == expected[i][1] and x.shape == (3, 112, 112)
        diff = np.abs(to_uint8(x).astype(int) - expected[i][0].astype(int))
        if png:
            assert diff.max() <= 1  # lossless (decoder rounding only)
        else:
            assert diff.mean() < 3.0  # JPEG quality 95 re-encode


def test_pack_library_resizes_and_converts(tmp_path, caplog):
    src = tmp_path / "src"
    syn = SyntheticIdentities(2, 2, seed=3)
    for i in range(4):
        d = src / f"person{syn.labels[i]}"
        d.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(syn.image(i))
        if i == 0:
            img = img.convert("L").resize((92, 112))  # grey, not square
        img.save(d / f"{i}.png")
    (src / "person1" / "broken.jpg").write_bytes(b"not an image")
    with logs_warning(caplog, "broken.jpg"):
        stats = pack_image_folder(src, tmp_path / "out", png=True)
    assert stats == {"num_images": 4, "num_classes": 2, "skipped": 1}
    ds = RecordIODataset(tmp_path / "out")
    x, _ = ds[0]
    assert x.shape == (3, 112, 112)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])  # grey -> RGB
    assert np.abs(to_uint8(ds[2][0]).astype(int) - syn.image(2).astype(int)).max() <= 1


def test_pack_cli_errors(tmp_path, capsys, caplog):
    assert main(["pack", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "image folder not found" in capsys.readouterr().err
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with logs_warning(caplog, "without images"):
        assert main(["pack", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no images found" in capsys.readouterr().err
    assert main(["pack", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--quality", "0"]) == 2
    assert "quality" in capsys.readouterr().err
