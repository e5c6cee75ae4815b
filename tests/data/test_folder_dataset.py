"""ImageFolderDataset: layout, labels, mode/size conversion, bad files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facelivt.data import ImageFolderDataset, to_uint8
from log_helpers import logs_warning

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
ORL = SHARED / "data" / "orl_faces"


def rgb(seed: int, size=(112, 112)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


@pytest.fixture()
def folder(tmp_path):
    root = tmp_path / "faces"
    (root / "bob").mkdir(parents=True)
    (root / "alice").mkdir()
    (root / "carol").mkdir()
    (root / "empty").mkdir()
    Image.fromarray(rgb(0)).save(root / "alice" / "a.png")
    Image.fromarray(rgb(1)).convert("L").save(root / "alice" / "b.PNG")  # grey, upper-case extension
    rgba = np.concatenate([rgb(2), np.full((112, 112, 1), 128, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(root / "bob" / "c.png")
    Image.fromarray(rgb(3, (200, 160))).save(root / "bob" / "d.jpg", quality=95)  # other size
    (root / "bob" / "notes.txt").write_text("not an image")
    Image.fromarray(rgb(4)).save(root / "carol" / "e.png")
    (root / "carol" / "f.jpg").write_bytes(b"\xff\xd8 broken")
    return root


def test_layout_and_items(folder, caplog):
    with logs_warning(caplog, "empty"):
        ds = ImageFolderDataset(folder)
    assert ds.classes == ["alice", "bob", "carol"] and ds.num_classes == 3
    assert [Path(p).name for p, _ in ds.samples] == ["a.png", "b.PNG", "c.png", "d.jpg", "e.png", "f.jpg"]
    assert ds.labels.tolist() == [0, 0, 1, 1, 2, 2] and len(ds) == 6
    x, y = ds[0]
    assert x.shape == (3, 112, 112) and x.dtype == torch.float32 and y == 0
    assert torch.allclose(x, (torch.from_numpy(rgb(0)).permute(2, 0, 1).float() / 255 - 0.5) / 0.5)
    grey, _ = ds[1]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    rgba, _ = ds[2]  # alpha 128: composited over white, not dropped
    over_white = (rgb(2).astype(np.float64) * 128 + 255.0 * 127) / 255
    assert np.abs(to_uint8(rgba).astype(np.float64) - over_white).max() <= 1.0
    resized, y = ds[3]
    assert resized.shape == (3, 112, 112) and y == 1
    assert float(resized.min()) >= -1.0 and float(resized.max()) <= 1.0


def test_unreadable_file_is_skipped(folder, caplog):
    with logs_warning(caplog, "without images"):
        ds = ImageFolderDataset(folder, max_bad_fraction=0.5)
    with logs_warning(caplog, "skipping bad sample .*f.jpg"):
        x, y = ds[5]  # broken -> wraps to index 0
    assert y == 0 and ds.bad_records == 1
    with logs_warning(caplog, "without images"):
        strict = ImageFolderDataset(folder, max_bad_fraction=0.0, min_reads=1)
    with logs_warning(caplog, "f.jpg"), pytest.raises(RuntimeError, match="max_bad_fraction"):
        strict[5]


def test_extensions_and_errors(folder, tmp_path, caplog):
    with logs_warning(caplog, "without images"):
        ds = ImageFolderDataset(folder, extensions=[".jpg"])
    assert ds.classes == ["bob", "carol"]
    with pytest.raises(FileNotFoundError, match="not found"):
        ImageFolderDataset(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    Image.fromarray(rgb(0)).save(tmp_path / "flat" / "x.png")  # images not in identity folders
    with pytest.raises(ValueError, match="no images found"):
        ImageFolderDataset(tmp_path / "flat")


def test_real_grey_faces():
    if not ORL.is_dir():
        pytest.fail(f"shared test data missing: {ORL}")
    ds = ImageFolderDataset(ORL, transform="train")
    assert ds.num_classes == 40 and len(ds) == 400
    x, y = ds[11]
    assert x.shape == (3, 112, 112) and y == ds.labels[11]
