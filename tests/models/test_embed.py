"""The embedding loop (batched flip-sum) and the embedding-width probe, with a tiny model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facelivt.data.transforms import to_tensor_batch
from facelivt.devices import resolve_device
from facelivt.models.embed import embed_batches, embed_images, embedding_dim


def _imgs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)


def test_flip_sum_matches_manual(tiny_model):
    imgs = _imgs(7)
    tiny_model.eval()
    with torch.no_grad():
        x = to_tensor_batch(imgs)
        ref = (tiny_model(x) + tiny_model(torch.flip(x, dims=[3]))).numpy()
        plain = tiny_model(x).numpy()
    out = embed_images(tiny_model, imgs, batch_size=3, device="cpu", progress=False)
    assert out.shape == (7, 16) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(embed_images(tiny_model, imgs, batch_size=7, device="cpu", flip=False, progress=False), plain, atol=1e-5)
    # batch size does not change the result; a normalised tensor input gives the same as uint8 images
    np.testing.assert_allclose(embed_images(tiny_model, imgs, batch_size=1, device="cpu", progress=False), ref, atol=1e-5)
    np.testing.assert_allclose(embed_images(tiny_model, to_tensor_batch(imgs), batch_size=4, device="cpu", progress=False), ref, atol=1e-5)
    # the model is asymmetric, so the flip matters (the check above is not vacuous)
    assert np.abs(ref - 2 * plain).max() > 1e-3


def test_mode_restored_and_eval_used(tiny_model):
    imgs = _imgs(4)
    tiny_model.train()
    before = tiny_model.bn.running_mean.clone()
    a = embed_images(tiny_model, imgs, batch_size=2, device="cpu", progress=False)
    assert tiny_model.training  # mode restored
    assert torch.equal(tiny_model.bn.running_mean, before)  # ran in eval mode: BN statistics untouched
    tiny_model.eval()
    b = embed_images(tiny_model, imgs, batch_size=4, device="cpu", progress=False)
    assert not tiny_model.training
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_input_and_device_errors(tiny_model):
    with pytest.raises(ValueError, match="uint8"):
        embed_images(tiny_model, _imgs(2).astype(np.float32), device="cpu", progress=False)
    with pytest.raises(ValueError, match="NxHxWx3"):
        embed_images(tiny_model, _imgs(2)[..., :1], device="cpu", progress=False)
    with pytest.raises(ValueError, match="ambiguous"):
        embed_images(tiny_model, torch.zeros(2, 3, 112, 112, dtype=torch.uint8), device="cpu", progress=False)
    with pytest.raises(ValueError, match="no images"):
        embed_images(tiny_model, _imgs(0), device="cpu", progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        embed_images(tiny_model, _imgs(2), batch_size=0, device="cpu", progress=False)
    with pytest.raises(ValueError, match="invalid device"):
        resolve_device("warp-drive")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(RuntimeError, match="CUDA was asked for"):  # says why and what to use
            resolve_device("cuda")


def test_bad_model_output_is_reported():
    class Bad(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3)).reshape(-1)  # 1-d output

    with pytest.raises(RuntimeError, match="expected N x D"):
        embed_batches(Bad(), [_imgs(2)], device="cpu", progress=False)


def test_embedding_dim_probe_leaves_the_model_as_it_was(tiny_model):
    tiny_model.train()
    before = tiny_model.bn.running_mean.clone()
    assert embedding_dim(tiny_model) == embed_images(tiny_model, _imgs(1), device="cpu", progress=False).shape[1]
    assert tiny_model.training and torch.equal(tiny_model.bn.running_mean, before)

    class Flat(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(1, 2, 3))  # 1-d output

    with pytest.raises(ValueError, match=r"\[batch, dim\]"):
        embedding_dim(Flat())
