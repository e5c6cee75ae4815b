"""Photos through the recognizer: one photo at a time (the path before the pipeline, ``--workers 0``)
against the pipeline (photos decoded, detected and aligned on worker threads, crops embedded in
batches), on raw photos and on aligned crops, in the same run.

    python benchmarks/photo_pipeline.py [--photos 1000] [--model facelivtv2_s] [--batch-size 32]
                                        [--workers 2] [--threads 2]

Inputs: ``../shared/data/celeba_subset`` (raw photos, longest side 320 px) and
``../shared/data/celeba_subset_112`` (aligned crops), sorted, the list repeated up to ``--photos``.
The model is ``--model`` in its deploy form with random weights (nothing is downloaded); the
recognizer embeds with the flip-sum (two forward images per photo), as the commands do.

The first table (raw photos) and the second (aligned crops) give photos/s and milliseconds per photo:
``decode`` (the one decoder, :mod:`facelivt.data.decode`), ``detect+align`` (MTCNN and the warp) and
``embed`` (the network), summed over the threads that ran them, and ``total``, the wall time per
photo. In the pipeline the stages overlap, so they add up to more than the total. The aligned table's
first row is the model's own speed: ``embed_aligned`` on the crops already in memory, 32 at a time
(the same flip-sum): the goal is the pipeline at >= 80 % of it. Each table starts from a warm-up pass
over a few photos.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RAW = REPO.parent / "shared" / "data" / "celeba_subset"
ALIGNED = REPO.parent / "shared" / "data" / "celeba_subset_112"

import facelivt  # noqa: E402  (this checkout: benchmarks/ sits beside the package)
from facelivt.cpu import cpu_capability  # noqa: E402
from facelivt.inference import FaceDetector, FaceRecognizer, load_image  # noqa: E402

RAW_HEADER = ("| path | photos/s | decode ms | detect+align ms | embed ms | total ms | x one at a time |\n"
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
ALIGNED_HEADER = ("| path | photos/s | decode ms | embed ms | total ms | x model batch 32 |\n"
                  "| --- | ---: | ---: | ---: | ---: | ---: |")


def photos(root: Path, count: int) -> list[Path]:
    """The first ``count`` photos under ``root`` (sorted), the list repeated when it has fewer."""
    files = sorted(root.rglob("*.jpg"))
    if not files:
        raise SystemExit(f"photo_pipeline.py: no photos in {root}")
    return list(itertools.islice(itertools.cycle(files), count))


class Stages:
    """Seconds spent in each wrapped call, summed over threads (list.append is atomic under the GIL)."""

    def __init__(self) -> None:
        self.spent: dict[str, list[float]] = defaultdict(list)

    def wrap(self, owner: object, attribute: str, stage: str) -> None:
        inner: Callable = getattr(owner, attribute)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.spent[stage].append(time.perf_counter() - start)

        setattr(owner, attribute, timed)

    def ms(self, stage: str, n: int) -> float:
        return 1000.0 * sum(self.spent[stage]) / n


def recognizer(model: torch.nn.Module, detector: FaceDetector | None, batch_size: int, workers: int,
               stages: Stages) -> FaceRecognizer:
    """A recognizer whose decode, detect+align and embed calls are timed into ``stages``."""
    det = None
    if detector is not None:  # a detector of its own, sharing the nets, so that the wrappers stay local
        det = copy.copy(detector)
        stages.wrap(det, "load", "decode")
        stages.wrap(det, "align", "prepare")
    rec = FaceRecognizer(model, detector=det, batch_size=batch_size, workers=workers, progress=False)
    stages.wrap(rec, "_aligned_crop", "decode")
    stages.wrap(rec, "embed_aligned", "embed")
    return rec


def run(rec: FaceRecognizer, files: list[Path], aligned: bool) -> tuple[float, int]:
    """Wall seconds to embed ``files`` and the photos that failed (no face)."""
    start = time.perf_counter()
    failed = sum(r.error is not None for r in rec.iter_faces(files, aligned=aligned))
    return time.perf_counter() - start, failed


def raw_table(model, detector: FaceDetector, files: list[Path], batch_size: int, workers: int) -> list[str]:
    rows, base = [RAW_HEADER], None
    for name, w in (("one photo at a time (--workers 0, old path)", 0), (f"pipeline (--workers {workers})", workers)):
        stages = Stages()
        rec = recognizer(model, detector, batch_size, w, stages)
        run(rec, files[:4], aligned=False)  # warm-up
        stages.spent.clear()
        seconds, failed = run(rec, files, aligned=False)
        n = len(files)
        base = base or seconds
        decode, prepare = stages.ms("decode", n), stages.ms("prepare", n)
        rows.append(f"| {name} | {n / seconds:.1f} | {decode:.1f} | {prepare - decode:.1f} | {stages.ms('embed', n):.1f} | "
                    f"{1000 * seconds / n:.1f} | {base / seconds:.2f}x |")
    rows.append(f"\n{failed} of {len(files)} photos had no face (their time counts, their crops do not).")
    return rows


def aligned_table(model, files: list[Path], batch_size: int, workers: int) -> list[str]:
    crops = np.stack([load_image(f) for f in files])
    stages = Stages()
    own = recognizer(model, None, 32, 0, stages)
    own.embed_aligned(crops[:32])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(crops), 32):
        own.embed_aligned(crops[i : i + 32])
    model_s = time.perf_counter() - start
    n = len(files)
    rows = [ALIGNED_HEADER, f"| model's own batch 32 (crops in memory) | {n / model_s:.1f} | - | {1000 * model_s / n:.1f} | "
                            f"{1000 * model_s / n:.1f} | 1.00x |"]
    for name, w in (("one photo at a time (--workers 0, old path)", 0), ("pipeline (one worker for crops)", workers)):
        stages = Stages()
        rec = recognizer(model, None, batch_size, w, stages)
        run(rec, files[:batch_size], aligned=True)  # warm-up
        stages.spent.clear()
        seconds, _ = run(rec, files, aligned=True)
        rows.append(f"| {name} | {n / seconds:.1f} | {stages.ms('decode', n):.2f} | {stages.ms('embed', n):.1f} | "
                    f"{1000 * seconds / n:.1f} | {model_s / seconds:.2f}x |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=1000, help="photos per table (default 1000)")
    ap.add_argument("--model", default="facelivtv2_s", help="model, random weights, deploy form (default facelivtv2_s)")
    ap.add_argument("--batch-size", type=int, default=32, help="crops per forward pass of the pipeline (default 32)")
    ap.add_argument("--workers", type=int, default=2, help="worker threads of the pipeline (default 2)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("facelivt").setLevel(logging.ERROR)  # not the random weights' warning, once per recognizer
    print(f"CPU capability: {cpu_capability().summary()}")
    torch.manual_seed(0)
    model = facelivt.reparameterize_model(facelivt.create_model(args.model).eval())
    raw, crops = photos(RAW, args.photos), photos(ALIGNED, args.photos)
    print(f"\n{args.model} (deploy form, random weights), batch size {args.batch_size}, torch threads {args.threads}; "
          "ms per photo (stages summed over threads)")
    print(f"\nraw photos: {len(raw)} of {RAW.name} ({len(set(raw))} distinct)\n")
    print("\n".join(raw_table(model, FaceDetector(), raw, args.batch_size, args.workers)))
    print(f"\naligned crops: {len(crops)} of {ALIGNED.name} ({len(set(crops))} distinct)\n")
    print("\n".join(aligned_table(model, crops, args.batch_size, args.workers)))


if __name__ == "__main__":
    main()
