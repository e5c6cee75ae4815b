"""build_dataset, split_identities, build_loader."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facelivt.data import (
    ImageFolderDataset,
    RecordIODataset,
    ResumableSampler,
    SyntheticIdentities,
    build_dataset,
    build_loader,
    pack_image_folder,
    split_identities,
)
from PIL import Image


def test_build_each_type(tmp_path):
    syn = build_dataset({"type": "synthetic", "num_identities": 3, "images_per_identity": 2, "seed": 4})
    assert isinstance(syn, SyntheticIdentities) and len(syn) == 6
    for i in range(6):
        d = tmp_path / "imgs" / f"id{syn.labels[i]}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(syn.image(i)).save(d / f"{i}.png")
    folder = build_dataset({"type": "folder", "root": str(tmp_path / "imgs"), "transform": "train"})
    assert isinstance(folder, ImageFolderDataset) and folder.num_classes == 3
    pack_image_folder(tmp_path / "imgs", tmp_path / "rec")
    rec = build_dataset({"type": "recordio", "root": tmp_path / "rec", "max_bad_fraction": 0.0})
    assert isinstance(rec, RecordIODataset) and rec.labels.tolist() == folder.labels.tolist()


def test_build_errors(tmp_path):
    with pytest.raises(ValueError, match="dataset type"):
        build_dataset({"type": "lmdb", "root": "x"})
    with pytest.raises(ValueError, match="needs 'root'"):
        build_dataset({"type": "folder"})
    with pytest.raises(ValueError, match="no 'root'"):
        build_dataset({"type": "synthetic", "root": "x"})
    with pytest.raises(ValueError, match="bad options"):
        build_dataset({"type": "synthetic", "colour": "red"})
    with pytest.raises(FileNotFoundError):
        build_dataset({"type": "recordio", "root": tmp_path / "none"})


def test_split_identities():
    labels = np.repeat(np.arange(20), 5)
    labels[3] = -1  # unreadable record
    train, held = split_identities(labels, 0.25, seed=1)
    assert len(set(labels[held])) == 5 and not set(labels[held]) & set(labels[train])
    assert len(train) + len(held) == 99 and 3 not in train and 3 not in held
    assert np.array_equal(split_identities(labels, 0.25, seed=1)[1], held)
    assert not np.array_equal(split_identities(labels, 0.25, seed=2)[1], held)
    tr, he = split_identities(labels, 0.0, 0)
    assert len(he) == 0 and len(tr) == 99
    assert len(set(labels[split_identities(labels, 0.001, 0)[1]])) == 1  # at least one
    with pytest.raises(ValueError, match="held_out_fraction"):
        split_identities(labels, 1.0, 0)
    with pytest.raises(ValueError, match="2 identities"):
        split_identities(np.zeros(5), 0.5, 0)


def test_build_loader_with_workers_and_sampler():
    ds = SyntheticIdentities(4, 3)
    sampler = ResumableSampler(ds, seed=0)
    loader = build_loader(ds, 4, sampler=sampler, num_workers=2, drop_last=False)
    seen = torch.cat([y for _, y in loader])
    assert sorted(seen.tolist()) == sorted(ds.labels.tolist())
    with pytest.raises(ValueError, match="batch_size"):
        build_loader(ds, 0)
