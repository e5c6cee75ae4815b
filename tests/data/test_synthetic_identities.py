"""SyntheticIdentities: determinism, contract, and that identities are separable."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from facelivt.data import SyntheticIdentities


def test_contract_and_determinism():
    a = SyntheticIdentities(5, 3, seed=1)
    b = SyntheticIdentities(5, 3, seed=1)
    assert len(a) == 15 and a.num_classes == 5
    assert a.labels.tolist() == [i // 3 for i in range(15)]
    for i in [0, 7, 14, -1]:
        assert np.array_equal(a.image(i), b.image(i))
    x, y = a[7]
    assert x.shape == (3, 112, 112) and x.dtype == torch.float32 and y == 2
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    img = a.image(7)
    assert img.dtype == np.uint8 and img.shape == (112, 112, 3)
    assert torch.allclose(x, (torch.from_numpy(img).permute(2, 0, 1).float() / 255 - 0.5) / 0.5)
    # order of access does not matter; other seeds give other faces; views differ
    c = SyntheticIdentities(5, 3, seed=1)
    assert np.array_equal(c.image(14), a.image(14))
    assert not np.array_equal(SyntheticIdentities(5, 3, seed=2).image(0), a.image(0))
    assert not np.array_equal(a.image(0), a.image(1))
    with pytest.raises(IndexError):
        a.image(15)
    with pytest.raises(ValueError, match="num_identities"):
        SyntheticIdentities(0)
    with pytest.raises(ValueError, match="images_per_identity"):
        SyntheticIdentities(3, 0)


def test_identities_are_separable_views_vary():
    """Nearest class mean on 16x16 thumbnails of the face region tells 32 identities
    apart on views it has not seen (the set is learnable), while the whole image
    does not (the background changes per view: no background shortcut)."""
    ds = SyntheticIdentities(32, 8, seed=0)
    images = [ds.image(i) for i in range(len(ds))]
    view = np.arange(len(ds)) % 8
    train, test = view < 4, view >= 4

    def nearest_mean_accuracy(lo: int, hi: int) -> float:
        feats = np.stack(
            [cv2.resize(im[lo:hi, lo:hi], (16, 16), interpolation=cv2.INTER_AREA).reshape(-1) for im in images]
        ).astype(np.float32)
        feats -= feats.mean(axis=1, keepdims=True)
        feats /= np.linalg.norm(feats, axis=1, keepdims=True)
        means = np.stack([feats[train & (ds.labels == k)].mean(0) for k in range(32)])
        return float(((feats[test] @ means.T).argmax(1) == ds.labels[test]).mean())

    face, whole = nearest_mean_accuracy(28, 84), nearest_mean_accuracy(0, 112)
    assert face > 0.9, face
    assert whole < 0.6, whole
    # views of one identity are not copies of each other
    assert np.abs(ds.image(0).astype(int) - ds.image(1).astype(int)).mean() > 5


def test_train_transform():
    ds = SyntheticIdentities(2, 2, transform="train")
    plain = SyntheticIdentities(2, 2)
    torch.manual_seed(0)
    outs = [ds[0][0] for _ in range(12)]
    x = plain[0][0]
    assert any(torch.equal(o, torch.flip(x, dims=[2])) for o in outs)
    assert any(torch.equal(o, x) for o in outs)
