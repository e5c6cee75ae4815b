"""Partial FC: the class-centre matrix sharded over ranks (model parallel), with
optional sampling of negative centres and a distributed softmax cross-entropy.

Every rank holds the centres of classes ``[class_start, class_start + num_local)``.
A forward pass gathers the embeddings and labels of the whole (global) batch from
all ranks, computes the cosine logits against the local centres, applies the
margin to the target logit where the target class is local, and evaluates the
softmax cross-entropy over all classes with two all-reduces (row maximum and sum
of exponentials). The returned loss is the mean over the global batch and is the
same on every rank.

Gradients are exact: the centres get d(loss)/d(centres), and each rank's local
embeddings get the sum over ranks of the gradient that flows into them (the
gather's backward is an all-reduce followed by taking the own slice). If the
backbone is wrapped in DistributedDataParallel, which *averages* gradients over
ranks, the backbone ends up with ``1 / world_size`` of the true gradient of this
loss; pass ``embedding_grad_scale=world_size`` (what insightface does) to undo it.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from facelivt.errors import InvalidInputError
from .margin import margin_loss

_INIT_CHUNK = 65536


def _group_info(process_group) -> tuple[int, int]:
    """(rank, world_size) in ``process_group``; (0, 1) without torch.distributed."""
    if not (dist.is_available() and dist.is_initialized()):
        if process_group is not None:
            raise ValueError("a process_group was given but torch.distributed is not initialised")
        return 0, 1
    return dist.get_rank(process_group), dist.get_world_size(process_group)


def shard_range(num_classes: int, world_size: int, rank: int) -> tuple[int, int]:
    """(class_start, num_local) of ``rank``: classes split as evenly as possible,
    the first ``num_classes % world_size`` ranks taking one more."""
    base, extra = divmod(num_classes, world_size)
    return rank * base + min(rank, extra), base + (1 if rank < extra else 0)


class _AllGather(torch.autograd.Function):
    """Concatenate equal-sized tensors of all ranks; backward sums the incoming
    gradients over ranks and returns each rank its own slice (times ``scale``)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group, world: int, rank: int, scale: float) -> torch.Tensor:
        ctx.group, ctx.rank, ctx.scale, ctx.n = group, rank, scale, tensor.shape[0]
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor, group=group)
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        own = grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]
        if ctx.scale != 1.0:
            own = own * ctx.scale
        return own, None, None, None, None


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; multiplies the gradient by ``scale`` (single-process twin of _AllGather's scale)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


class _DistSoftmaxCrossEntropy(torch.autograd.Function):
    """Mean softmax cross-entropy of logits whose columns are split over ranks.

    ``labels`` index the local columns, -1 where the target class lives on another
    rank. Uses the global row maximum for stability and log-sum-exp for the loss.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor, group, world: int) -> torch.Tensor:
        n = logits.shape[0]
        row_max = logits.max(dim=1, keepdim=True).values
        if world > 1:
            dist.all_reduce(row_max, op=dist.ReduceOp.MAX, group=group)
        shifted = logits - row_max
        exp = shifted.exp()
        sum_exp = exp.sum(dim=1, keepdim=True)
        if world > 1:
            dist.all_reduce(sum_exp, op=dist.ReduceOp.SUM, group=group)
        rows = torch.nonzero(labels != -1, as_tuple=True)[0]
        target = torch.zeros_like(sum_exp)
        target[rows, 0] = shifted[rows, labels[rows]]
        if world > 1:
            dist.all_reduce(target, op=dist.ReduceOp.SUM, group=group)
        loss = (sum_exp.log() - target).mean()
        ctx.save_for_backward(exp.div_(sum_exp), labels)
        ctx.n = n
        return loss

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        prob, labels = ctx.saved_tensors
        grad = prob.clone()
        rows = torch.nonzero(labels != -1, as_tuple=True)[0]
        grad[rows, labels[rows]] -= 1.0
        grad.mul_(grad_loss / ctx.n)
        return grad, None, None, None


class PartialFC(nn.Module):
    """Margin-softmax classification over class centres sharded across ranks.

    Args:
        embedding_size: D, the embedding width.
        num_classes: total number of identities (over all ranks).
        margin_loss: maps (cosine logits, local labels with -1 = not here) to
            scaled logits, e.g. :func:`facelivt.losses.margin_loss`.
        sample_rate: fraction of the local centres used per step in training
            (< 1 samples negatives; the batch's positive classes are always kept).
        process_group: torch.distributed group to shard over (default: the world
            group when initialised, else a single process).
        seed: seeds the centre initialisation (the same full matrix for any world
            size) and the negative sampling (from ``(seed, rank, sample_step)``,
            ``sample_step`` being a buffer in the state dict, so resumed runs draw
            the same samples).
        embedding_grad_scale: multiplies the gradient returned to the local
            embeddings (see the module docstring about DDP).

    ``weight`` is this rank's shard ``[num_local, D]`` of classes
    ``[class_start, class_start + num_local)``. ``forward(local_embeddings [B, D],
    local_labels [B])`` returns the mean loss over the global batch (all ranks must
    pass the same B).
    """

    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        margin_loss: nn.Module,
        sample_rate: float = 1.0,
        process_group=None,
        *,
        seed: int = 0,
        embedding_grad_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if embedding_size < 1:
            raise InvalidInputError(f"embedding_size must be >= 1, got {embedding_size}")
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
        if not callable(margin_loss):
            raise ValueError("margin_loss must be callable (e.g. facelivt.losses.margin_loss('cosface'))")
        self.process_group = process_group
        self.rank, self.world_size = _group_info(process_group)
        if num_classes < self.world_size:
            raise InvalidInputError(f"num_classes ({num_classes}) must be >= the number of ranks ({self.world_size})")
        self.embedding_size = int(embedding_size)
        self.num_classes = int(num_classes)
        self.class_start, self.num_local = shard_range(self.num_classes, self.world_size, self.rank)
        self.sample_rate = float(sample_rate)
        self.num_sample = max(1, int(self.sample_rate * self.num_local))
        self.margin_loss = margin_loss
        self.seed = int(seed)
        self.embedding_grad_scale = float(embedding_grad_scale)
        self.weight = nn.Parameter(self._init_shard())
        self.register_buffer("sample_step", torch.zeros((), dtype=torch.long))
        self.last_index: Optional[torch.Tensor] = None  # local centre rows used by the last forward

    def _init_shard(self) -> torch.Tensor:
        """N(0, 0.01) rows of the full matrix drawn chunk by chunk from one seeded
        generator, keeping only this rank's rows: the same matrix for any world size."""
        g = torch.Generator().manual_seed(self.seed)
        start, end = self.class_start, self.class_start + self.num_local
        shard = torch.empty(self.num_local, self.embedding_size)
        for lo in range(0, end, _INIT_CHUNK):
            hi = min(lo + _INIT_CHUNK, self.num_classes)
            block = torch.normal(0.0, 0.01, (hi - lo, self.embedding_size), generator=g)
            a, b = max(lo, start), min(hi, end)
            if a < b:
                shard[a - start : b - start] = block[a - lo : b - lo]
        return shard

    def extra_repr(self) -> str:
        return (
            f"embedding_size={self.embedding_size}, num_classes={self.num_classes}, "
            f"rank={self.rank}/{self.world_size}, classes=[{self.class_start}, {self.class_start + self.num_local}), "
            f"sample_rate={self.sample_rate}"
        )

    # -- collectives
    def _gather(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.world_size == 1:
            if self.embedding_grad_scale != 1.0 and embeddings.requires_grad:
                embeddings = _ScaleGrad.apply(embeddings, self.embedding_grad_scale)
            return embeddings, labels
        size = torch.tensor([embeddings.shape[0]], device=embeddings.device, dtype=torch.long)
        sizes = [torch.empty_like(size) for _ in range(self.world_size)]
        dist.all_gather(sizes, size, group=self.process_group)
        sizes_list = [int(s) for s in sizes]
        if len(set(sizes_list)) != 1:
            raise ValueError(f"PartialFC needs the same local batch size on every rank, got {sizes_list}")
        gathered = _AllGather.apply(embeddings, self.process_group, self.world_size, self.rank, self.embedding_grad_scale)
        label_parts = [torch.empty_like(labels) for _ in range(self.world_size)]
        dist.all_gather(label_parts, labels.contiguous(), group=self.process_group)
        return gathered, torch.cat(label_parts)

    # -- sampling
    def _sample(self, local_labels: torch.Tensor, is_local: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of the shard to use (sorted) and the labels re-indexed into them."""
        device = self.weight.device
        positive = torch.unique(local_labels[is_local], sorted=True)
        if self.num_sample > positive.numel():
            g = torch.Generator(device=device)
            step = int(self.sample_step)
            g.manual_seed((self.seed * 0x9E3779B1 + self.rank * 0x85EBCA77 + step * 0xC2B2AE3D) % (2**63))
            score = torch.rand(self.num_local, generator=g, device=device)
            score[positive] = 2.0  # positives always win
            index = torch.topk(score, k=self.num_sample).indices.sort().values
        else:
            index = positive
        remapped = local_labels.clone()
        remapped[is_local] = torch.searchsorted(index, local_labels[is_local])
        self.sample_step += 1
        return index, remapped

    def forward(self, local_embeddings: torch.Tensor, local_labels: torch.Tensor) -> torch.Tensor:
        if local_embeddings.ndim != 2 or local_embeddings.shape[1] != self.embedding_size:
            raise InvalidInputError(
                f"expected embeddings of shape [batch, {self.embedding_size}], got {tuple(local_embeddings.shape)}"
            )
        labels = local_labels.reshape(-1).to(device=local_embeddings.device, dtype=torch.long)
        if labels.numel() != local_embeddings.shape[0]:
            raise ValueError(f"{labels.numel()} labels for {local_embeddings.shape[0]} embeddings")
        if labels.numel() == 0:
            raise ValueError("PartialFC got an empty batch")
        embeddings, labels = self._gather(local_embeddings, labels)
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= self.num_classes:
            raise InvalidInputError(f"labels must be in [0, {self.num_classes}), got range [{lo}, {hi}]")

        local = labels - self.class_start
        is_local = (local >= 0) & (local < self.num_local)
        local = torch.where(is_local, local, torch.full_like(local, -1))
        if self.training and self.sample_rate < 1.0:
            index, local = self._sample(local, is_local)
            weight = self.weight[index]
            self.last_index = index
        else:
            weight = self.weight
            self.last_index = None

        # logits and softmax in float32 even inside an autocast region
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            cos = F.linear(F.normalize(embeddings.float(), dim=1), F.normalize(weight.float(), dim=1))
            logits = self.margin_loss(cos.clamp(-1.0, 1.0), local)
            return _DistSoftmaxCrossEntropy.apply(logits.float(), local, self.process_group, self.world_size)

    # -- whole-matrix helpers
    @torch.no_grad()
    def full_weight(self) -> torch.Tensor:
        """The whole ``[num_classes, D]`` centre matrix (collective: call on every rank)."""
        if self.world_size == 1:
            return self.weight.detach().clone()
        largest = shard_range(self.num_classes, self.world_size, 0)[1]
        padded = torch.zeros(largest, self.embedding_size, device=self.weight.device, dtype=self.weight.dtype)
        padded[: self.num_local] = self.weight
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded, group=self.process_group)
        counts = [shard_range(self.num_classes, self.world_size, r)[1] for r in range(self.world_size)]
        return torch.cat([p[:c] for p, c in zip(parts, counts)])

    @torch.no_grad()
    def load_full_weight(self, full: torch.Tensor) -> None:
        """Take this rank's rows from a whole ``[num_classes, D]`` matrix (any world size wrote it)."""
        if tuple(full.shape) != (self.num_classes, self.embedding_size):
            raise InvalidInputError(
                f"expected a centre matrix of shape ({self.num_classes}, {self.embedding_size}), got {tuple(full.shape)}"
            )
        self.weight.copy_(full[self.class_start : self.class_start + self.num_local])


def partial_fc_loss(
    embedding_size: int,
    num_classes: int,
    loss: str = "cosface",
    sample_rate: float = 1.0,
    process_group=None,
    **kwargs,
) -> PartialFC:
    """Convenience: a :class:`PartialFC` with the named margin (see :func:`margin_loss`)."""
    margin_kwargs = {k: kwargs.pop(k) for k in ("s", "m1", "m2", "m3") if k in kwargs}
    return PartialFC(embedding_size, num_classes, margin_loss(loss, **margin_kwargs), sample_rate, process_group, **kwargs)


__all__ = ["PartialFC", "partial_fc_loss", "shard_range"]
