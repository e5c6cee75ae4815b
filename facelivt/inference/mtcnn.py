"""MTCNN face detector (Zhang et al., 2016): a P-Net / R-Net / O-Net cascade giving boxes and 5 landmarks.

The module trees match the state_dicts shipped in facenet-pytorch 2.6.0 (``conv1``, ``prelu1``, ...,
``dense6_3``) so those files load directly. The cascade follows the published method and the
conventions of the pipeline that produced the project's reference detections: float RGB input in
0..255 scaled as ``(x - 127.5) / 128``, an image pyramid from ``12 / min_size`` by ``factor``, resampling
by area averaging, P-Net cells of 12 px at stride 2, non-maximum suppression (IoU 0.5 per scale, 0.7
across scales and after R-Net, intersection-over-minimum 0.7 after O-Net), box regression and squaring
between stages, 24x24 and 48x48 crops of the clipped boxes.

How it runs fast with the same answers: every pyramid scale is a tile of one canvas and P-Net runs
once over it (a -inf mask after its first layer keeps the tiles apart, so each tile's output is P-Net's
on that scale alone); the canvas and all crops are area-resampled from one summed-area table of the
photo (exact integer sums divided as torch divides: bit for bit torch's area interpolation); the
networks run channels-last; NMS works on the whole overlap matrix. ``benchmarks/detector_speed.py``
gives the per-stage profile.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facelivt.errors import InvalidInputError
from facelivt.inference.mtcnn_weights import NET_NAMES, locate_mtcnn_weights
from facelivt.models.checkpoint_io import safe_torch_load

_CELL = 12
_STRIDE = 2


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """The networks run channels-last end to end (weights converted in :func:`load_mtcnn_nets`): on CPU
    their convolutions, PReLUs and poolings then need no layout reorders (R-Net 1.5x faster measured)."""
    return x.contiguous(memory_format=torch.channels_last)


def _window_max(x: torch.Tensor, dim: int, kernel: int, stride: int) -> torch.Tensor:
    """Maxima of ``kernel``-long windows every ``stride`` along ``dim``, ceil mode (a last window that
    starts inside but runs past the end covers what is there), as torch's max pooling counts them."""
    size = x.shape[dim]
    out = -(-(size - kernel) // stride) + 1
    if (out - 1) * stride >= size:
        out -= 1
    result = x.narrow(dim, 0, (out - 1) * stride + 1)[(slice(None),) * dim + (slice(None, None, stride),)].clone()
    for j in range(1, kernel):
        part = x.narrow(dim, j, size - j)[(slice(None),) * dim + (slice(None, None, stride),)]
        part = part.narrow(dim, 0, min(out, part.shape[dim]))
        head = result.narrow(dim, 0, part.shape[dim])
        torch.maximum(head, part, out=head)
    return result


def _maxpool(pool: nn.MaxPool2d, x: torch.Tensor) -> torch.Tensor:
    """``pool`` (no padding, ceil mode) as maxima of strided slices of the channels-last map, rows then
    columns: the same values as ``pool(x)``, 3x faster on CPU than torch's pooling kernel (which also
    computes the argmax indices)."""
    if x.requires_grad:  # the in-place maxima below are for inference only
        return pool(_channels_last(x))
    kernel, stride = pool.kernel_size, pool.stride
    nhwc = _channels_last(x).permute(0, 2, 3, 1)
    return _window_max(_window_max(nhwc, 1, kernel, stride), 2, kernel, stride).permute(0, 3, 1, 2)


def _flatten_wh(x: torch.Tensor) -> torch.Tensor:
    """Flatten a BxCxHxW map in (width, height, channel) order, the layout the dense weights expect."""
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class PNet(nn.Module):
    """Proposal network: fully convolutional, 12x12 receptive field per output cell."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, 3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, 3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, 3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor, conv1_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns face probability (BxH'xW') and box offsets (Bx4xH'xW').

        ``conv1_mask`` (0 or -inf, broadcast onto the first layer's output) hides the cells of a tiled
        pyramid canvas that straddle two tiles or a gap: max pooling then sees only each tile's own
        cells, so every tile's output equals P-Net run on that tile alone."""
        x = self.prelu1(self.conv1(_channels_last(x)))
        if conv1_mask is not None:
            x = x + conv1_mask
        x = _maxpool(self.pool1, x)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        prob = torch.softmax(self.conv4_1(x), dim=1)[:, 1]
        return prob, self.conv4_2(x)


class RNet(nn.Module):
    """Refinement network on 24x24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, 3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, 3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, 2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns face probability (B) and box offsets (Bx4)."""
        x = _maxpool(self.pool1, self.prelu1(self.conv1(_channels_last(x))))
        x = _maxpool(self.pool2, self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(_flatten_wh(x)))
        return torch.softmax(self.dense5_1(x), dim=1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """Output network on 48x48 crops: probability, box offsets and 5 landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, 2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns probability (B), box offsets (Bx4) and landmarks (Bx10: 5 x then 5 y, box-relative)."""
        x = _maxpool(self.pool1, self.prelu1(self.conv1(_channels_last(x))))
        x = _maxpool(self.pool2, self.prelu2(self.conv2(x)))
        x = _maxpool(self.pool3, self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(_flatten_wh(x)))
        return torch.softmax(self.dense6_1(x), dim=1)[:, 1], self.dense6_2(x), self.dense6_3(x)


def load_mtcnn_nets(folder: str | os.PathLike | None = None) -> tuple[PNet, RNet, ONet]:
    """Build the three networks and load their weights (see :func:`locate_mtcnn_weights`), in eval mode."""
    root = locate_mtcnn_weights(folder)
    nets = (PNet(), RNet(), ONet())
    for name, net in zip(NET_NAMES, nets):
        path = Path(root) / f"{name}.pt"
        state = safe_torch_load(path, what="MTCNN weights file")  # code in the pickle: refused, never run
        if not isinstance(state, dict):
            raise InvalidInputError(f"MTCNN weights {path} are not a state_dict")
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise InvalidInputError(f"MTCNN weights {path} do not fit the {name} network: {exc}") from exc
        net.eval().requires_grad_(False).to(memory_format=torch.channels_last)
    return nets


# ----------------------------------------------------------------------------------------------
# Box utilities (boxes are Nx4 float tensors x1, y1, x2, y2)


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, mode: str = "union") -> torch.Tensor:
    """Greedy non-maximum suppression; returns kept indices, best score first.

    ``mode="union"``: intersection over union with areas ``(x2-x1)*(y2-y1)``.
    ``mode="min"``: intersection over the smaller box, pixel-inclusive areas ``(x2-x1+1)*(y2-y1+1)``.
    A box is dropped when its overlap with a kept box exceeds ``threshold``.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    if mode not in ("union", "min"):
        raise InvalidInputError(f"nms mode must be 'union' or 'min', got {mode!r}")
    # Equal scores (saturated probabilities are common) are taken in the order the reference
    # pipeline used: torch's default descending sort for IoU, and for the final
    # intersection-over-minimum stage numpy's default ascending sort read from the end. The overlaps
    # are computed in float32 numpy, the same arithmetic as the reference's.
    if mode == "min":
        order = np.argsort(scores.detach().cpu().numpy())[::-1]
    else:
        order = torch.sort(scores, descending=True).indices.cpu().numpy()
    b = boxes.detach().cpu().numpy().astype(np.float32, copy=False)[order]
    keep = _greedy_keep(b, threshold, mode == "union") if len(b) <= MATRIX_NMS_MAX else _greedy_keep_rows(b, threshold, mode == "union")
    return torch.as_tensor(order[keep].astype(np.int64), device=boxes.device)


MATRIX_NMS_MAX = 1024  # above this many boxes the n x n overlap matrix costs more than it saves


def _overlap(b: np.ndarray, i, j, union: bool) -> np.ndarray:
    """Overlap of boxes ``b[i]`` with ``b[j]`` (indices or broadcastable index arrays), float32."""
    one = np.float32(0.0 if union else 1.0)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    area = (x2 - x1 + one) * (y2 - y1 + one)
    iw = np.maximum(np.minimum(x2[i], x2[j]) - np.maximum(x1[i], x1[j]) + one, np.float32(0))
    ih = np.maximum(np.minimum(y2[i], y2[j]) - np.maximum(y1[i], y1[j]) + one, np.float32(0))
    inter = iw * ih
    if union:
        return inter / (area[i] + area[j] - inter)
    return inter / np.minimum(area[i], area[j])


def _greedy_keep(b: np.ndarray, threshold: float, union: bool) -> np.ndarray:
    """Greedy suppression of boxes sorted best first, from their whole overlap matrix at once: a box is
    kept unless a kept box before it overlaps it by more than ``threshold``. Boolean mask."""
    n = len(b)
    idx = np.arange(n)
    suppresses = _overlap(b, idx[:, None], idx[None, :], union) > threshold
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if keep[i]:
            keep[i + 1 :] &= ~suppresses[i, i + 1 :]
    return keep


def _greedy_keep_rows(b: np.ndarray, threshold: float, union: bool) -> np.ndarray:
    """The same as :func:`_greedy_keep`, one kept box at a time (memory linear in the number of boxes)."""
    keep = np.zeros(len(b), dtype=bool)
    rest = np.arange(len(b))
    while rest.size > 0:
        keep[rest[0]] = True
        rest = rest[1:][_overlap(b, rest[0], rest[1:], union) <= threshold]
    return keep


def square_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each box to a square of side max(w, h) with the same centre."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x1 = boxes[:, 0] + w * 0.5 - side * 0.5
    y1 = boxes[:, 1] + h * 0.5 - side * 0.5
    return torch.stack([x1, y1, x1 + side, y1 + side], dim=1)


def regress_boxes(boxes: torch.Tensor, offsets: torch.Tensor, inclusive: bool = True) -> torch.Tensor:
    """Apply regression offsets scaled by the box size (``+1`` pixel-inclusive size when ``inclusive``)."""
    one = 1.0 if inclusive else 0.0
    w = boxes[:, 2] - boxes[:, 0] + one
    h = boxes[:, 3] - boxes[:, 1] + one
    return boxes + offsets * torch.stack([w, h, w, h], dim=1)


def integral_image(image: torch.Tensor) -> torch.Tensor:
    """The summed-area table ((H+1)x(W+1)xC, channels last) of a CxHxW image: int32 for uint8 images,
    float64 otherwise; exact for integer pixel values either way."""
    c, h, w = image.shape
    dtype = torch.int32 if image.dtype == torch.uint8 and h * w < 2**31 // 255 else torch.float64
    table = torch.zeros((h + 1, w + 1, c), dtype=dtype, device=image.device)
    table[1:, 1:] = image.permute(1, 2, 0).to(dtype).cumsum(0, dtype=dtype).cumsum(1, dtype=dtype)
    return table


def area_windows(start: torch.Tensor, length: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Input windows of area resampling (adaptive average pooling) of the spans ``start`` ..
    ``start + length`` (N each) onto ``size`` cells: first and one-past-last index, Nx``size`` each."""
    i = torch.arange(size, device=start.device)
    lo = start[:, None] + (i * length[:, None]) // size
    hi = start[:, None] + ((i + 1) * length[:, None] + size - 1) // size
    return lo, hi


def window_sums(table: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """Sums of windows given by the flat table indices of their corners (4 x ...: r1c1, r0c1, r1c0,
    r0c0), channels last: ... x C, in the table's dtype (exact)."""
    flat = table.reshape(-1, table.shape[2])
    g = flat.index_select(0, corners.reshape(-1)).view(*corners.shape, table.shape[2])
    return g[0] - g[1] - g[2] + g[3]


def area_means(table: torch.Tensor, rows: tuple[torch.Tensor, torch.Tensor], cols: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Window means (NxSxTxC float32) read off a summed-area table for N row windows (NxS) and column
    windows (NxT). Exact sums divided as torch's area interpolation divides (``sum / kh / kw``), so
    integer images give the same float32 values bit for bit."""
    (r0, r1), (c0, c1) = rows, cols
    stride = table.shape[1]
    corners = torch.stack([r[:, :, None] * stride + c[:, None, :] for r, c in ((r1, c1), (r0, c1), (r1, c0), (r0, c0))])
    total = window_sums(table, corners).float()
    return total / (r1 - r0)[:, :, None, None].float() / (c1 - c0)[:, None, :, None].float()


def crop_and_resize(
    image: torch.Tensor, boxes: torch.Tensor, size: int, table: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut each box (truncated to integers, clipped to the image) out of ``image`` (3xHxW, 0..255) and
    resize it to ``size`` x ``size`` by area averaging, all boxes at once from the image's summed-area
    ``table`` (computed when not given). Returns the normalised crops and the indices of boxes that
    overlap the image (the others are dropped)."""
    _, h, w = image.shape
    b = boxes.trunc().long()
    x1 = b[:, 0].clamp(min=1) - 1
    y1 = b[:, 1].clamp(min=1) - 1
    x2 = b[:, 2].clamp(max=w)
    y2 = b[:, 3].clamp(max=h)
    valid = ((x2 > x1) & (y2 > y1)).nonzero().flatten()
    if valid.numel() == 0:
        return torch.zeros((0, 3, size, size), device=image.device), valid
    table = integral_image(image) if table is None else table
    x1, y1, x2, y2 = x1[valid], y1[valid], x2[valid], y2[valid]
    crops = area_means(table, area_windows(y1, y2 - y1, size), area_windows(x1, x2 - x1, size))
    return (crops.permute(0, 3, 1, 2) - 127.5) * 0.0078125, valid  # channels-last NCHW


def pyramid_scales(height: int, width: int, min_size: float, factor: float) -> list[float]:
    """Scales at which P-Net (12 px cells) sees faces from ``min_size`` px up to the image's short side."""
    scale = 12.0 / min_size
    short = min(height, width) * scale
    scales = []
    while short >= 12:
        scales.append(scale)
        scale *= factor
        short *= factor
    return scales


# ----------------------------------------------------------------------------------------------
# The pyramid on one canvas: every scale is a tile of one image, so P-Net runs once per photo.


@dataclass(frozen=True)
class PyramidTile:
    """One pyramid scale on the canvas: the image resampled to ``height`` x ``width`` at (``top``, ``left``),
    both even so that P-Net's stride-2 pooling lines up with the tile's own."""

    scale: float
    height: int
    width: int
    top: int
    left: int

    @property
    def cells(self) -> tuple[int, int]:
        """P-Net output cells of the tile (rows, columns): conv 3, pool 2 (ceil), conv 3, conv 3."""
        return (self.height - 1) // 2 - 4, (self.width - 1) // 2 - 4


@dataclass(frozen=True)
class PyramidPlan:
    """Where each scale goes on the canvas, the summed-area-table indices that resample the image into
    every tile at once, and P-Net's first-layer mask (see :meth:`PNet.forward`)."""

    tiles: tuple[PyramidTile, ...]
    height: int
    width: int
    corners: torch.Tensor  # 4 x (height * width) flat table indices: r1c1, r0c1, r1c0, r0c0
    divisors: tuple[torch.Tensor, torch.Tensor]  # window heights and widths, (height * width) each
    conv1_mask: torch.Tensor  # 1 x 1 x (height - 2) x (width - 2): 0 inside a tile, -inf elsewhere

    def resample(self, table: torch.Tensor) -> torch.Tensor:
        """The 3 x height x width canvas (channels-last strides) of area-resampled scales (0 outside the
        tiles), from the image's summed-area table: the same float32 values as resampling each scale alone."""
        kh, kw = self.divisors
        canvas = window_sums(table, self.corners).float() / kh[:, None] / kw[:, None]
        return canvas.reshape(self.height, self.width, table.shape[2]).permute(2, 0, 1)


def _even(n: int) -> int:
    return n + (n & 1)


def _place_tiles(height: int, width: int, scales: list[float]) -> tuple[list[PyramidTile], int, int]:
    """Columns of tiles, largest first, each column filled top-down while the tiles fit the first's height."""
    sizes = [(int(height * s + 1), int(width * s + 1)) for s in scales]
    if not sizes:  # the image is smaller than the smallest face
        return [], 2, 2
    canvas_h = _even(sizes[0][0])
    tiles, top, left, col_w = [], 0, 0, 0
    for scale, (h, w) in zip(scales, sizes):
        if top and top + h > canvas_h:
            top, left, col_w = 0, left + _even(col_w), 0
        tiles.append(PyramidTile(scale, h, w, top, left))
        top, col_w = top + _even(h), max(col_w, w)
    return tiles, canvas_h, left + _even(col_w)


def _span_windows(length: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    lo, hi = area_windows(torch.zeros(1, dtype=torch.long), torch.tensor([length]), size)
    return lo[0], hi[0]


@functools.lru_cache(maxsize=4)  # a plan holds ~24 bytes per canvas pixel: few are kept
def pyramid_plan(height: int, width: int, min_size: float, factor: float, device: str = "cpu") -> PyramidPlan:
    """The canvas layout of :func:`pyramid_scales` for a ``height`` x ``width`` image (cached per size)."""
    tiles, ch, cw = _place_tiles(height, width, pyramid_scales(height, width, min_size, factor))
    corners = torch.zeros((4, ch, cw), dtype=torch.int32 if (height + 1) * (width + 1) < 2**31 else torch.long)
    kh, kw = torch.ones((ch, cw)), torch.ones((ch, cw))
    mask = torch.full((1, 1, ch - 2, cw - 2), float("-inf"))
    stride = width + 1  # flat index of (row, column) in the (H+1)x(W+1) table
    for t in tiles:
        (r0, r1), (c0, c1) = _span_windows(height, t.height), _span_windows(width, t.width)
        rows, cols = slice(t.top, t.top + t.height), slice(t.left, t.left + t.width)
        for k, (r, c) in enumerate(((r1, c1), (r0, c1), (r1, c0), (r0, c0))):
            corners[k, rows, cols] = r[:, None] * stride + c[None, :]
        kh[rows, cols] = (r1 - r0).float()[:, None]
        kw[rows, cols] = (c1 - c0).float()[None, :]
        mask[..., t.top : t.top + t.height - 2, t.left : t.left + t.width - 2] = 0.0
    return PyramidPlan(
        tuple(tiles), ch, cw, corners.reshape(4, -1).to(device),
        (kh.reshape(-1).to(device), kw.reshape(-1).to(device)), mask.to(device),
    )


# ----------------------------------------------------------------------------------------------


@dataclass
class Detections:
    """Raw cascade output for one image: boxes (Nx4), scores (N), points (Nx5x2), largest box first."""

    boxes: np.ndarray
    scores: np.ndarray
    points: np.ndarray

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))


def _run_batched(net: nn.Module, crops: torch.Tensor, batch: int) -> tuple[torch.Tensor, ...]:
    outs = [net(crops[i : i + batch]) for i in range(0, crops.shape[0], batch)]
    return tuple(torch.cat(parts) for parts in zip(*outs))


@torch.inference_mode()
def detect_faces(
    nets: tuple[PNet, RNet, ONet],
    image: torch.Tensor,
    min_size: float = 20.0,
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
    factor: float = 0.709,
    batch_size: int = 512,
) -> Detections:
    """Run the MTCNN cascade on one image: a 3xHxW tensor of RGB values in 0..255 (uint8 is fastest;
    float values are read as they are).

    Returns boxes ``[x1, y1, x2, y2]``, scores and landmarks in image pixels (points in the order
    left eye, right eye, nose, left mouth corner, right mouth corner, as seen in the image),
    sorted by box area, largest first.
    """
    pnet, rnet, onet = nets
    if image.ndim != 3 or image.shape[0] != 3:
        raise InvalidInputError(f"expected a 3xHxW image tensor, got shape {tuple(image.shape)}")
    if min_size < 12:
        raise InvalidInputError(f"min_size must be at least 12 pixels, got {min_size}")
    if not 0 < factor < 1:
        raise InvalidInputError(f"pyramid factor must be in (0, 1), got {factor}")
    table = integral_image(image)  # every resampling below (pyramid, 24 and 48 px crops) reads this
    boxes = _proposals(pnet, image, table, min_size, thresholds[0], factor)
    if boxes is not None:
        boxes = _refine(rnet, image, table, boxes, thresholds[1], batch_size)
    if boxes is None:
        return Detections.empty()
    return _output(onet, image, table, boxes, thresholds[2], batch_size)


def _proposals(
    pnet: PNet, image: torch.Tensor, table: torch.Tensor, min_size: float, threshold: float, factor: float
) -> torch.Tensor | None:
    """Stage 1: P-Net once over the pyramid canvas -> square candidate boxes (None when there are none)."""
    _, h, w = image.shape
    plan = pyramid_plan(h, w, float(min_size), float(factor), str(image.device))
    if not plan.tiles:
        return None
    prob, offsets = pnet((plan.resample(table)[None] - 127.5) * 0.0078125, plan.conv1_mask)
    found = [_tile_candidates(t, prob[0], offsets[0], threshold) for t in plan.tiles]
    found = [f for f in found if f is not None]
    if not found:
        return None
    boxes, scores, offsets = (torch.cat(parts) for parts in zip(*found))
    keep = nms(boxes, scores, 0.7)
    return square_boxes(regress_boxes(boxes[keep], offsets[keep], inclusive=False))


def _tile_candidates(
    tile: PyramidTile, prob: torch.Tensor, offsets: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The P-Net cells of one scale over ``threshold`` as boxes in image pixels, scores and offsets,
    after non-maximum suppression within the scale (IoU 0.5); None when no cell passes."""
    top, left = tile.top // 2, tile.left // 2
    rows, cols = tile.cells
    ys, xs = (prob[top : top + rows, left : left + cols] >= threshold).nonzero(as_tuple=True)
    if ys.numel() == 0:
        return None
    cell = torch.stack([xs, ys], dim=1).to(prob.dtype)
    top_left = ((_STRIDE * cell + 1) / tile.scale).floor()
    bottom_right = ((_STRIDE * cell + _CELL) / tile.scale).floor()
    boxes = torch.cat([top_left, bottom_right], dim=1)
    ys, xs = ys + top, xs + left
    scores = prob[ys, xs]
    keep = nms(boxes, scores, 0.5)
    return boxes[keep], scores[keep], offsets[:, ys, xs].T[keep]


def _refine(
    rnet: RNet, image: torch.Tensor, table: torch.Tensor, boxes: torch.Tensor, threshold: float, batch_size: int
) -> torch.Tensor | None:
    """Stage 2: R-Net on 24x24 crops -> the boxes that pass, regressed and squared (None when none)."""
    crops, valid = crop_and_resize(image, boxes, 24, table)
    if valid.numel() == 0:
        return None
    boxes = boxes[valid]
    scores, offsets = _run_batched(rnet, crops, batch_size)
    passed = scores > threshold
    boxes, scores, offsets = boxes[passed], scores[passed], offsets[passed]
    keep = nms(boxes, scores, 0.7)
    boxes = square_boxes(regress_boxes(boxes[keep], offsets[keep]))
    return None if boxes.shape[0] == 0 else boxes


def _output(
    onet: ONet, image: torch.Tensor, table: torch.Tensor, boxes: torch.Tensor, threshold: float, batch_size: int
) -> Detections:
    """Stage 3: O-Net on 48x48 crops -> final boxes, scores and landmarks, largest box first."""
    crops, valid = crop_and_resize(image, boxes, 48, table)
    if valid.numel() == 0:
        return Detections.empty()
    boxes = boxes[valid]
    scores, offsets, marks = _run_batched(onet, crops, batch_size)
    passed = scores > threshold
    boxes, scores, offsets, marks = boxes[passed], scores[passed], offsets[passed], marks[passed]
    bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
    bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
    px = bw * marks[:, :5] + boxes[:, :1] - 1
    py = bh * marks[:, 5:] + boxes[:, 1:2] - 1
    points = torch.stack([px, py], dim=2)
    boxes = regress_boxes(boxes, offsets)
    keep = nms(boxes, scores, 0.7, mode="min")
    boxes, scores, points = boxes[keep], scores[keep], points[keep]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = torch.argsort(area, descending=True)
    return Detections(
        boxes[order].cpu().numpy().astype(np.float32),
        scores[order].cpu().numpy().astype(np.float32),
        points[order].cpu().numpy().astype(np.float32),
    )
