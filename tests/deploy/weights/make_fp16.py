"""Turn a training run's deploy-form weights into the float16 file the int8 test reads (see README.md here).

    python tests/deploy/weights/make_fp16.py RUN/model_deploy.safetensors tests/deploy/weights/facelivt_s_celeba.fp16.safetensors

The metadata keeps the model's own (name, form, deploy options) and adds the identities held out of
training (``data.held_out_fraction=0.2, data.split_seed=0`` over ../shared/data/celeba_subset_112), so the
test can check that it verifies only faces the weights never saw.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from facelivt.data.folder import scan_image_folder
from facelivt.data.loader import split_identities
from facelivt.models.weights import atomic_save_file, read_checkpoint

CROPS = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "celeba_subset_112"


def main(src: str, dst: str) -> None:
    tensors, meta = read_checkpoint(src)
    if meta.get("form") != "deploy":
        raise SystemExit(f"{src} is not deploy-form weights (model_deploy.safetensors of a run)")
    classes, samples = scan_image_folder(CROPS)
    labels = np.array([label for _, label in samples])
    _, held = split_identities(labels, 0.2, 0)
    meta["heldout_identities"] = json.dumps(sorted({classes[labels[i]] for i in held}))
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
    atomic_save_file(half, dst, meta)
    print(f"{dst}: {len(half)} tensors, {sum(v.numel() for v in half.values()) / 1e6:.2f} M values")


if __name__ == "__main__":
    main(*sys.argv[1:])
