"""Partial FC: single process against plain cross-entropy; 2 gloo processes against
1 process on the same global batch (loss, embedding and centre gradients); sampling."""
from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from facelivt.losses import CombinedMarginLoss, PartialFC, margin_loss, shard_range

from net_helpers import free_port

D, C, B, WORLD = 16, 11, 4, 2  # 11 classes: uneven shards (6 + 5)
HEADS = {
    "cosface": lambda: margin_loss("cosface"),
    "arcface": lambda: margin_loss("arcface"),
    "combined": lambda: margin_loss("combined", m1=0.9, m2=0.2, m3=0.1),
}


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    emb = torch.randn(WORLD * B, D, generator=g) * 3
    labels = torch.tensor([0, 10, 5, 6, 3, 10, 7, 1])  # classes on both shards, a repeat
    return emb, labels


def single_process(name: str, scale: float = 1.0):
    emb, labels = global_batch()
    emb.requires_grad_()
    pfc = PartialFC(D, C, HEADS[name](), seed=3, embedding_grad_scale=scale)
    loss = pfc(emb, labels)
    loss.backward()
    return loss.detach(), emb.grad, pfc.weight.grad, pfc.weight.detach()


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        emb, labels = global_batch()
        sl = slice(rank * B, (rank + 1) * B)
        result = {}
        for name in HEADS:
            for scale in ([1.0, 2.0] if name == "cosface" else [1.0]):
                pfc = PartialFC(D, C, HEADS[name](), seed=3, embedding_grad_scale=scale)
                local = emb[sl].clone().requires_grad_()
                loss = pfc(local, labels[sl])
                loss.backward()
                key = f"{name}_{scale}"
                result[key + "_loss"] = loss.detach()
                result[key + "_emb_grad"] = local.grad
                result[key + "_w_grad"] = pfc.weight.grad
                result[key + "_weight"] = pfc.weight.detach().clone()
        result["full_weight"] = pfc.full_weight()
        result["class_start"] = torch.tensor(pfc.class_start)
        result["num_local"] = torch.tensor(pfc.num_local)
        try:  # unequal local batches are refused on every rank
            pfc(emb[: B - rank], labels[: B - rank])
            result["unequal_error"] = torch.tensor(0)
        except ValueError as exc:
            result["unequal_error"] = torch.tensor(int("same local batch size" in str(exc)))
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_equal_one(tmp_path):
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    assert [(int(r["class_start"]), int(r["num_local"])) for r in ranks] == [(0, 6), (6, 5)]
    for name in HEADS:
        for scale in ([1.0, 2.0] if name == "cosface" else [1.0]):
            key = f"{name}_{scale}"
            loss, emb_grad, w_grad, weight = single_process(name, scale)
            # the shards are the rows of the single-process matrix (init independent of world size)
            assert torch.equal(torch.cat([r[key + "_weight"] for r in ranks]), weight)
            for r in ranks:
                assert torch.allclose(r[key + "_loss"], loss, atol=1e-5), (key, r[key + "_loss"], loss)
            assert torch.allclose(torch.cat([r[key + "_emb_grad"] for r in ranks]), emb_grad, atol=1e-5), key
            assert torch.allclose(torch.cat([r[key + "_w_grad"] for r in ranks]), w_grad, atol=1e-5), key
            assert emb_grad.abs().max() > 1e-3 and w_grad.abs().max() > 1e-3  # non-trivial gradients
    for r in ranks:
        assert torch.equal(r["full_weight"], weight)
        assert int(r["unequal_error"]) == 1


def test_single_process_equals_plain_cross_entropy():
    emb, labels = global_batch()
    for name, make in HEADS.items():
        head = make()
        e = emb.clone().requires_grad_()
        pfc = PartialFC(D, C, head, seed=3)
        loss = pfc(e, labels)
        loss.backward()
        e2 = emb.clone().requires_grad_()
        w2 = pfc.weight.detach().clone().requires_grad_()
        cos = F.linear(F.normalize(e2), F.normalize(w2)).clamp(-1, 1)
        ref = F.cross_entropy(head(cos, labels), labels)
        ref.backward()
        assert torch.allclose(loss, ref, atol=1e-5), name
        assert torch.allclose(e.grad, e2.grad, atol=1e-5) and torch.allclose(pfc.weight.grad, w2.grad, atol=1e-5)


def test_embedding_grad_scale():
    loss1, grad1, wgrad1, _ = single_process("arcface", 1.0)
    loss3, grad3, wgrad3, _ = single_process("arcface", 3.0)
    assert torch.equal(loss1, loss3) and torch.equal(wgrad1, wgrad3)
    assert torch.allclose(grad3, 3 * grad1)


def test_softmax_is_stable_for_huge_logits():
    emb, labels = global_batch()
    pfc = PartialFC(D, C, CombinedMarginLoss(s=5000.0, m3=0.4), seed=0)
    loss = pfc(emb, labels)
    cos = F.linear(F.normalize(emb), F.normalize(pfc.weight.detach())).clamp(-1, 1)
    ref = F.cross_entropy(CombinedMarginLoss(s=5000.0, m3=0.4)(cos, labels), labels)
    assert torch.isfinite(loss) and loss.item() > 100
    assert torch.allclose(loss, ref, rtol=1e-4)


def test_negative_sampling():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(6, D, generator=g)
    labels = torch.tensor([3, 17, 3, 29, 17, 3])
    pfc = PartialFC(D, 40, margin_loss(), sample_rate=0.25, seed=5)
    assert pfc.num_sample == 10
    e = emb.clone().requires_grad_()
    loss = pfc(e, labels)
    loss.backward()
    index = pfc.last_index
    assert index.numel() == 10 and torch.equal(index, index.sort().values) and index.unique().numel() == 10
    assert {3, 17, 29} <= set(index.tolist())
    unused = torch.ones(40, dtype=torch.bool)
    unused[index] = False
    assert pfc.weight.grad[unused].abs().max() == 0 and pfc.weight.grad[index].abs().max() > 0
    # the loss is the cross-entropy over the sampled centres only
    sub = F.normalize(pfc.weight.detach()[index])
    remapped = torch.searchsorted(index, labels)
    ref = F.cross_entropy(margin_loss()(F.linear(F.normalize(emb), sub).clamp(-1, 1), remapped), remapped)
    assert torch.allclose(loss, ref, atol=1e-5)
    assert int(pfc.sample_step) == 1 and "sample_step" in pfc.state_dict()

    # reproducible: same seed and step -> same samples; a resumed module continues the stream
    other = PartialFC(D, 40, margin_loss(), sample_rate=0.25, seed=5)
    other(emb, labels)
    assert torch.equal(other.last_index, index)
    pfc(emb, labels)
    second = pfc.last_index
    assert not torch.equal(second, index)
    resumed = PartialFC(D, 40, margin_loss(), sample_rate=0.25, seed=5)
    resumed.load_state_dict(other.state_dict())
    resumed(emb, labels)
    assert torch.equal(resumed.last_index, second)

    # more positives than the sample size: exactly the positives; eval mode: all centres
    few = PartialFC(D, 40, margin_loss(), sample_rate=0.05, seed=5)
    few(emb, labels)
    assert few.last_index.tolist() == [3, 17, 29]
    few.eval()
    few(emb, labels)
    assert few.last_index is None


def test_shards_and_full_weight_helpers():
    assert [shard_range(11, 3, r) for r in range(3)] == [(0, 4), (4, 4), (8, 3)]
    pfc = PartialFC(D, C, margin_loss(), seed=1)
    full = torch.randn(C, D)
    pfc.load_full_weight(full)
    assert torch.equal(pfc.full_weight(), full)
    with pytest.raises(ValueError, match="shape"):
        pfc.load_full_weight(torch.zeros(C + 1, D))


def test_errors():
    pfc = PartialFC(D, C, margin_loss())
    with pytest.raises(ValueError, match="labels must be in"):
        pfc(torch.randn(2, D), torch.tensor([0, C]))
    with pytest.raises(ValueError, match="embeddings of shape"):
        pfc(torch.randn(2, D + 1), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels for"):
        pfc(torch.randn(2, D), torch.tensor([0]))
    with pytest.raises(ValueError, match="sample_rate"):
        PartialFC(D, C, margin_loss(), sample_rate=0.0)
    with pytest.raises(ValueError, match="num_classes"):
        PartialFC(D, 0, margin_loss())


def test_float32_inside_autocast():
    emb, labels = global_batch()
    pfc = PartialFC(D, C, margin_loss(), seed=3)
    ref = pfc(emb, labels)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = pfc(emb.bfloat16(), labels)
    assert loss.dtype == torch.float32
    assert torch.allclose(loss, ref, rtol=2e-2)
