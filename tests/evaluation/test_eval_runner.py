"""evaluate_bin and build_model of facelivt.evaluation.runner, with tiny models (the embedding loop they
use: tests/models/test_embed.py)."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from facelivt.evaluation import embed_bin, evaluate_bin, write_bin


def test_evaluate_bin_with_a_meaningful_model(tmp_path):
    """An embedder of the mean colour: pairs of the same colour (with noise) are 'same'."""

    class MeanColour(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3)) + 2.0  # 3-d, kept off the origin

    rng = np.random.default_rng(0)
    images, issame = [], []
    for k in range(100):
        same = k % 2 == 0
        c1 = rng.integers(0, 256, 3)
        c2 = c1 if same else rng.integers(0, 256, 3)
        for c in (c1, c2):
            img = np.clip(c + rng.normal(0, 2, (112, 112, 3)), 0, 255).astype(np.uint8)
            ok, buf = cv2.imencode(".png", img)
            images.append(buf.tobytes())
        issame.append(same)
    path = write_bin(tmp_path / "colours.bin", images, issame)
    model = MeanColour()
    res = evaluate_bin(model, path, batch_size=32, device="cpu")
    assert res["n_pairs"] == 100
    assert res["accuracy"] >= 0.95 and res["auc"] >= 0.97
    assert set(res) >= {"accuracy", "accuracy_std", "threshold", "fold_thresholds", "distance_thresholds",
                        "tar_at_far", "auc", "eer"}
    assert len(res["distance_thresholds"]) == 10
    # the cosine threshold reported accepts exactly the pairs the protocol's distance threshold accepts
    emb, same = embed_bin(model, path, batch_size=32, device="cpu")
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    cos = np.sum(emb[0::2] * emb[1::2], axis=1)
    assert ((cos >= res["threshold"]) == (2 - 2 * cos < np.mean(res["distance_thresholds"]))).all()


def test_build_model_random_init_is_seeded_and_leaves_rng_alone(caplog, tiny_model):
    import facelivt
    from facelivt.evaluation import build_model
    from facelivt.models.registry import list_models, register_model

    tiny_cls = type(tiny_model)
    name = "tiny_eval_test_model"
    if name not in list_models():
        register_model(name, lambda **kw: tiny_cls(seed=int(torch.randint(0, 10**6, (1,)))))
    state = torch.random.get_rng_state()
    a = build_model(name, None, deploy=False, device="cpu", seed=1)
    b = build_model(name, None, deploy=False, device="cpu", seed=1)
    c = build_model(name, None, deploy=False, device="cpu", seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.fc.weight, b.fc.weight) and not torch.equal(a.fc.weight, c.fc.weight)
    assert not a.training
    # the warning goes to the facelivt logger (the CLI shows it on stderr: tests/cli/test_eval_cli.py)
    assert any("randomly initialised" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert facelivt.list_models()  # the registry is the library's
