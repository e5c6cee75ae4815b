"""Detector speed: detection + 5 landmarks + alignment of a CelebA photo (../shared/data/celeba_subset,
up to 320 px), ms per photo, this checkout's FaceDetector against facenet-pytorch's reference MTCNN in the
same run, then where our time goes (per-stage profile).

    python benchmarks/detector_speed.py                      # 40 photos, best of 3 passes, 2 threads
    python benchmarks/detector_speed.py --photos 5 --passes 1

Photos are decoded once before timing (decoding is not counted). Each row detects every photo and
aligns its largest face (facelivt.data.align.align_face, the same warp for both rows); ``x ours`` is a
row's time over ours. facenet-pytorch's code imports two things from torchvision, which does not load
beside this CPU-only torch: here (and only here) a stand-in module provides them, ``batched_nms`` as
greedy IoU suppression per image with facelivt's ``nms`` and ``transforms.functional`` (not used by
detection). Its package ``__init__`` (which needs ``requests``) is skipped, its MTCNN code runs as
shipped. To time the code before a change, run this script with PYTHONPATH pointing at that checkout.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

from facelivt.cpu import cpu_capability
from facelivt.data.align import align_face
from facelivt.inference import FaceDetector
from facelivt.inference import mtcnn as mtcnn_module
from facelivt.inference.images import load_image

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
STAGES = ("pyramid+P-Net", "NMS", "R-Net", "O-Net", "alignment", "other")


def load_photos(count: int) -> list[np.ndarray]:
    """``count`` photos spread evenly over celeba_subset, decoded (uint8 RGB) by the detector's reader."""
    files = sorted((SHARED / "data" / "celeba_subset").rglob("*.jpg"))
    if not files:
        raise SystemExit(f"no photos under {SHARED / 'data' / 'celeba_subset'}")
    step = max(1, len(files) // count)
    return [load_image(f) for f in files[::step][:count]]


def ours(detector: FaceDetector, rgb: np.ndarray) -> None:
    faces = detector.detect_array(rgb)
    if faces:
        align_face(rgb, faces[0].points)


def stand_in_torchvision() -> None:
    """torchvision.ops.boxes.batched_nms and torchvision.transforms.functional for facenet-pytorch."""

    def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou: float) -> torch.Tensor:
        if boxes.numel() == 0:
            return torch.zeros(0, dtype=torch.long)
        shift = idxs.to(boxes) * (boxes.max() + 1)  # boxes of different images never overlap
        return mtcnn_module.nms(boxes + shift[:, None], scores, iou)

    tv = {name: types.ModuleType(name) for name in ("torchvision", "torchvision.ops", "torchvision.ops.boxes",
                                                     "torchvision.transforms", "torchvision.transforms.functional")}
    tv["torchvision.ops.boxes"].batched_nms = batched_nms
    tv["torchvision.ops"].boxes = tv["torchvision.ops.boxes"]
    tv["torchvision.transforms"].functional = tv["torchvision.transforms.functional"]
    sys.modules.update(tv)


def reference_mtcnn():
    """facenet-pytorch's MTCNN (its weights, its cascade), or None when the package is not installed."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    stand_in_torchvision()
    root = Path(list(spec.submodule_search_locations)[0])
    for name, path in (("facenet_pytorch", root), ("facenet_pytorch.models", root / "models")):
        package = types.ModuleType(name)
        package.__path__ = [str(path)]  # a bare package: its __init__ imports requests and more
        sys.modules[name] = package
    from facenet_pytorch.models.mtcnn import MTCNN

    return MTCNN(device="cpu")


def reference(mtcnn, rgb: np.ndarray) -> None:
    boxes, _, points = mtcnn.detect(rgb, landmarks=True)
    if boxes is not None:
        align_face(rgb, points[0])


def best_ms(fn, photos: list[np.ndarray], passes: int) -> float:
    fn(photos[0])  # warm-up
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        for rgb in photos:
            fn(rgb)
        best = min(best, time.perf_counter() - start)
    return best / len(photos) * 1e3


class StageClock:
    """Times the cascade's stage functions (``_proposals``, ``_refine``, ``_output``: the names of this
    checkout and of the code before the change) and every ``nms`` call inside them, by wrapping the
    module's functions while it is installed; a stage's own time excludes its NMS."""

    WRAPPED = {"_proposals": "pyramid+P-Net", "_refine": "R-Net", "_output": "O-Net", "nms": "NMS"}

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.saved: dict = {}

    def _wrap(self, fn, stage: str):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                self.seconds[stage] += spent
                self.nested += spent if stage == "NMS" else 0.0
                if stage != "NMS":
                    self.seconds[stage] -= self.nested
                    self.nested = 0.0

        return timed

    def __enter__(self) -> "StageClock":
        self.nested = 0.0
        for name, stage in self.WRAPPED.items():
            self.saved[name] = getattr(mtcnn_module, name)
            setattr(mtcnn_module, name, self._wrap(self.saved[name], stage))
        return self

    def __exit__(self, *exc) -> None:
        for name, fn in self.saved.items():
            setattr(mtcnn_module, name, fn)


def profile(detector: FaceDetector, photos: list[np.ndarray]) -> dict[str, float]:
    """ms per photo in each stage of ours (one pass)."""
    with StageClock() as clock:
        start = time.perf_counter()
        for rgb in photos:
            faces = detector.detect_array(rgb)
            if faces:
                t = time.perf_counter()
                align_face(rgb, faces[0].points)
                clock.seconds["alignment"] += time.perf_counter() - t
        total = time.perf_counter() - start
    clock.seconds["other"] = total - sum(v for k, v in clock.seconds.items() if k != "other")
    return {k: v / len(photos) * 1e3 for k, v in clock.seconds.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40, help="photos spread over celeba_subset (default 40)")
    parser.add_argument("--passes", type=int, default=3, help="timed passes over the photos, best kept (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"CPU capability: {cpu_capability(args.threads).summary()}")
    photos = load_photos(args.photos)
    detector = FaceDetector()
    rows = {"facelivt FaceDetector (ours)": best_ms(lambda rgb: ours(detector, rgb), photos, args.passes)}
    mtcnn = reference_mtcnn()
    if mtcnn is not None:
        rows["facenet-pytorch MTCNN (reference)"] = best_ms(lambda rgb: reference(mtcnn, rgb), photos, args.passes)
    base = rows["facelivt FaceDetector (ours)"]
    print(f"\n{len(photos)} photos, best of {args.passes} passes, {args.threads} threads; detection + 5 landmarks"
          " + alignment of the largest face\n")
    print("| detector | ms / photo | x ours |\n|---|---:|---:|")
    for name, ms in rows.items():
        print(f"| {name} | {ms:.1f} | {ms / base:.2f} |")
    if mtcnn is None:
        print("| facenet-pytorch MTCNN (reference) | not installed | |")
    stages = profile(detector, photos)
    print(f"\nper-stage profile of ours (one pass, ms / photo; total {sum(stages.values()):.1f})\n")
    print("| stage | ms / photo | share |\n|---|---:|---:|")
    for stage, ms in stages.items():
        print(f"| {stage} | {ms:.2f} | {ms / sum(stages.values()):.0%} |")


if __name__ == "__main__":
    main()
