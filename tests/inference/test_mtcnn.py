"""MTCNN: network shapes, NMS and box helpers, and agreement with the reference detections."""
from __future__ import annotations

import os
import pickle
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from disk_helpers import assert_clean_failure, run_cli
from facelivt.inference.mtcnn_weights import installed_weights_dir
from facelivt.models.checkpoint_io import UnsafeCheckpointError

from facelivt.inference.mtcnn import (
    ONet,
    PNet,
    RNet,
    _greedy_keep,
    _greedy_keep_rows,
    _maxpool,
    crop_and_resize,
    detect_faces,
    integral_image,
    load_mtcnn_nets,
    nms,
    pyramid_plan,
    pyramid_scales,
    regress_boxes,
    square_boxes,
)

from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CELEBA = DATA / "celeba_subset"

SAMPLE_STEP = 100  # every 100th photo of 6,263: 63 photos


def test_network_output_shapes():
    p, r, o = PNet(), RNet(), ONet()
    prob, reg = p(torch.zeros(2, 3, 40, 50))
    assert prob.shape == (2, 15, 20) and reg.shape == (2, 4, 15, 20)
    prob, reg = r(torch.zeros(3, 3, 24, 24))
    assert prob.shape == (3,) and reg.shape == (3, 4)
    prob, reg, marks = o(torch.zeros(3, 3, 48, 48))
    assert prob.shape == (3,) and reg.shape == (3, 4) and marks.shape == (3, 10)
    assert torch.all((prob >= 0) & (prob <= 1))


def test_weights_load_strictly():
    nets = load_mtcnn_nets()
    assert all(not n.training for n in nets)
    # the shipped weights are not the random init: P-Net's first conv has a specific norm
    assert float(nets[0].conv1.weight.abs().sum()) > 0


def test_nms_union_and_min():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 4, 4]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # IoU(0,1) = 81/119 = 0.68; the small box 3 lies inside box 0 (IoU 0.16, min-overlap 1)
    assert nms(boxes, scores, 0.5).tolist() == [3, 0, 2]
    assert nms(boxes, scores, 0.7).tolist() == [3, 0, 1, 2]
    assert nms(boxes, scores, 0.7, mode="min").tolist() == [3, 1, 2]
    assert nms(boxes[:0], scores[:0], 0.5).numel() == 0
    with pytest.raises(ValueError, match="mode"):
        nms(boxes, scores, 0.5, mode="max")


def test_square_regress_and_pyramid():
    sq = square_boxes(torch.tensor([[10.0, 20.0, 30.0, 60.0]]))
    assert sq.tolist() == [[0.0, 20.0, 40.0, 60.0]]
    out = regress_boxes(torch.tensor([[0.0, 0.0, 9.0, 19.0]]), torch.tensor([[0.1, 0.1, -0.1, 0.0]]))
    assert torch.allclose(out, torch.tensor([[1.0, 2.0, 8.0, 19.0]]))
    scales = pyramid_scales(100, 200, 20, 0.709)
    assert scales[0] == pytest.approx(0.6) and all(100 * s >= 12 for s in scales)
    assert 100 * scales[-1] * 0.709 < 12


def test_crop_and_resize_clips_and_drops():
    img = torch.arange(3 * 30 * 40, dtype=torch.float32).reshape(3, 30, 40)
    boxes = torch.tensor([[-5.0, -5.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0], [0.0, 0.0, 40.0, 30.0]])
    crops, valid = crop_and_resize(img, boxes, 24)
    assert valid.tolist() == [0, 2] and crops.shape == (2, 3, 24, 24)
    # box 2 covers the whole image: its crop is the area-resized image, normalised
    whole = torch.nn.functional.interpolate(img[None], size=(24, 24), mode="area")
    assert torch.allclose(crops[1], ((whole - 127.5) * 0.0078125)[0])


def test_detect_faces_rejects_bad_arguments():
    nets = load_mtcnn_nets()
    with pytest.raises(ValueError, match="3xHxW"):
        detect_faces(nets, torch.zeros(40, 40))
    with pytest.raises(ValueError, match="min_size"):
        detect_faces(nets, torch.zeros(3, 40, 40), min_size=5)
    with pytest.raises(ValueError, match="factor"):
        detect_faces(nets, torch.zeros(3, 40, 40), factor=1.2)


def test_blank_and_tiny_images_give_no_face():
    nets = load_mtcnn_nets()
    assert len(detect_faces(nets, torch.full((3, 200, 200), 128.0)).scores) == 0
    assert len(detect_faces(nets, torch.full((3, 10, 10), 128.0)).scores) == 0  # below the smallest face


def _photo(key: str) -> torch.Tensor:
    """A celeba photo as the detector gets it: 3xHxW uint8."""
    return torch.from_numpy(np.array(Image.open(CELEBA / key).convert("RGB"))).permute(2, 0, 1)


@pytest.mark.slow
def test_agrees_with_reference_detections_on_every_photo(reference):
    """Same faces, and boxes and landmarks within a pixel of the reference pipeline's, on every one of
    the 6,263 photos (measured: within 0.006 px, the JSON's rounding)."""
    nets = load_mtcnn_nets()
    assert len(reference) > 6000
    box_err, point_err, score_err, count_mismatch = [], [], [], []
    for key in sorted(reference):
        det = detect_faces(nets, _photo(key))
        ref = reference[key]
        if len(ref) != len(det.scores):
            count_mismatch.append(key)
            continue
        if ref:  # both sorted largest first
            box_err.append(np.abs(det.boxes - np.array([f["box"] for f in ref])).max())
            point_err.append(np.abs(det.points - np.array([f["points"] for f in ref])).max())
            score_err.append(np.abs(det.scores - np.array([f["score"] for f in ref])).max())
    assert not count_mismatch, f"face counts differ on {count_mismatch}"
    assert len(box_err) > 6000
    assert max(box_err) < 1.0 and max(point_err) < 1.0, (max(box_err), max(point_err))
    assert np.median(box_err) < 0.05 and np.median(point_err) < 0.05  # rounding of the JSON only
    assert max(score_err) < 1e-3


def test_float_and_uint8_images_give_the_same_detections(reference):
    """uint8 images are summed in int32, float ones in float64: both exact, so the same detections."""
    nets = load_mtcnn_nets()
    for key in sorted(reference)[::SAMPLE_STEP][:20]:
        as_bytes = detect_faces(nets, _photo(key))
        as_float = detect_faces(nets, _photo(key).float())
        assert np.array_equal(as_bytes.boxes, as_float.boxes) and np.array_equal(as_bytes.points, as_float.points)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_crops_are_torch_area_interpolation_bit_for_bit(dtype):
    """Crops read off the summed-area table equal F.interpolate(mode="area") of each cut-out exactly,
    shrinking and enlarging, whole image and clipped boxes."""
    image = torch.randint(0, 256, (3, 97, 131), generator=torch.Generator().manual_seed(0)).to(dtype)
    boxes = torch.tensor([[0.0, 0.0, 131.0, 97.0], [10.7, 20.2, 57.9, 91.5], [5.0, 5.0, 20.0, 17.0], [-9.0, 40.0, 30.0, 200.0]])
    for size in (24, 48):
        crops, valid = crop_and_resize(image, boxes, size)
        assert valid.tolist() == [0, 1, 2, 3]
        for crop, box in zip(crops, boxes.trunc().long()):
            x1, y1 = max(int(box[0]), 1) - 1, max(int(box[1]), 1) - 1
            x2, y2 = min(int(box[2]), 131), min(int(box[3]), 97)
            cut = image[None, :, y1:y2, x1:x2].float()
            expected = (F.interpolate(cut, size=(size, size), mode="area")[0] - 127.5) * 0.0078125
            assert torch.equal(crop, expected)


def test_pyramid_canvas_equals_each_scale_alone():
    """The tiled pyramid: each tile holds the area-resampled image bit for bit, and P-Net's output on
    the canvas equals P-Net on that scale alone (tiles touch; the first-layer mask keeps them apart)."""
    pnet = load_mtcnn_nets()[0]
    image = torch.from_numpy(np.array(Image.open(sorted(CELEBA.rglob("*.jpg"))[0]).convert("RGB"))).permute(2, 0, 1)
    _, h, w = image.shape
    plan = pyramid_plan(h, w, 20.0, 0.709)
    assert [t.scale for t in plan.tiles] == pyramid_scales(h, w, 20.0, 0.709)
    canvas = plan.resample(integral_image(image))
    with torch.inference_mode():
        prob, offsets = pnet((canvas[None] - 127.5) * 0.0078125, plan.conv1_mask)
        for t in plan.tiles:
            alone = F.interpolate(image[None].float(), size=(t.height, t.width), mode="area")
            assert torch.equal(canvas[:, t.top : t.top + t.height, t.left : t.left + t.width], alone[0])
            p_alone, o_alone = pnet((alone - 127.5) * 0.0078125)
            rows, cols = t.cells
            assert p_alone.shape[1:] == (rows, cols)
            region = (slice(t.top // 2, t.top // 2 + rows), slice(t.left // 2, t.left // 2 + cols))
            torch.testing.assert_close(prob[0][region], p_alone[0], rtol=0, atol=1e-5)
            torch.testing.assert_close(offsets[0][(slice(None), *region)], o_alone[0], rtol=0, atol=1e-5)
    tiles = [(t.top, t.left, t.top + t.height, t.left + t.width) for t in plan.tiles]
    for i, a in enumerate(tiles):  # inside the canvas, on even offsets, no two overlapping
        assert a[0] % 2 == 0 and a[1] % 2 == 0 and a[2] <= plan.height and a[3] <= plan.width
        assert all(a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1] for b in tiles[i + 1 :])


def test_detection_rate_on_celeba_sample(reference):
    """At least one face on nearly every photo of the sample (the reference misses 30 of 6,263)."""
    nets = load_mtcnn_nets()
    keys = sorted(reference)[SAMPLE_STEP // 2 :: SAMPLE_STEP]
    found = 0
    for key in keys:
        rgb = np.array(Image.open(CELEBA / key).convert("RGB"))
        found += len(detect_faces(nets, torch.from_numpy(rgb).permute(2, 0, 1)).scores) > 0
    assert found / len(keys) >= 0.97


class Planted:
    """Runs ``touch <marker>`` when unpickled by an ordinary unpickler."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_planted_mtcnn_weights_are_refused_and_never_run(tmp_path):
    """A pnet.pt whose pickle asks to run code: refused as unsafe in one line, nothing of it runs."""
    marker, weights, photos = tmp_path / "ran", tmp_path / "mtcnn", tmp_path / "in"
    weights.mkdir()
    photos.mkdir()
    for name in ("rnet", "onet"):
        shutil.copy(installed_weights_dir() / f"{name}.pt", weights / f"{name}.pt")
    torch.save({"conv1.weight": torch.zeros(10, 3, 3, 3), "extra": Planted(marker)}, weights / "pnet.pt")
    shutil.copy(CELEBA / "7201" / sorted(os.listdir(CELEBA / "7201"))[0], photos / "a.jpg")
    pickle.loads(pickle.dumps(Planted(marker)))  # the payload is real: an ordinary unpickler runs it
    assert marker.exists()
    marker.unlink()

    with pytest.raises(UnsafeCheckpointError, match="as unsafe"):
        load_mtcnn_nets(weights)
    proc = run_cli("align", str(photos), "--out", str(tmp_path / "out"), "--quiet", "--mtcnn-weights", str(weights))
    assert_clean_failure(proc)
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"facelivt align: error: refusing to load {weights / 'pnet.pt'} as unsafe: it is not a "
                     f"plain-tensor MTCNN weights file (it asks to run code: {os.system.__module__}.system); "
                     "facelivt never unpickles arbitrary objects"], proc.stderr
    assert "weights_only" not in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 2)])
def test_strided_slice_pooling_equals_torch_max_pooling(kernel, stride):
    """The networks' max pooling (maxima of strided slices, ceil mode) gives torch's values and shapes."""
    pool = torch.nn.MaxPool2d(kernel, stride, ceil_mode=True)
    gen = torch.Generator().manual_seed(0)
    for h in range(kernel, 27):
        for w in (kernel, kernel + 1, 22, 23):
            x = torch.randn(2, 4, h, w, generator=gen)
            expected, got = pool(x), _maxpool(pool, x)
            assert got.shape == expected.shape and torch.equal(got, expected), (h, w)


def test_matrix_and_row_by_row_nms_agree():
    """The n x n overlap-matrix suppression keeps exactly the boxes the one-box-at-a-time loop keeps."""
    gen = torch.Generator().manual_seed(0)
    corner = torch.rand(300, 2, generator=gen) * 100
    boxes = torch.cat([corner, corner + 5 + torch.rand(300, 2, generator=gen) * 40], dim=1).numpy()
    for union in (True, False):
        for threshold in (0.3, 0.5, 0.7):
            matrix = _greedy_keep(boxes, threshold, union)
            assert 0 < matrix.sum() < len(boxes)
            assert np.array_equal(matrix, _greedy_keep_rows(boxes, threshold, union))
