"""Time from a cold cache to a first verified pair with a pretrained model, against a local server speaking
the Hugging Face resolve protocol (tests/hf_server.py) on 127.0.0.1, next to the same `facelivt verify`
with a warm cache and with a local weights file (the baseline), all in this run.

    python benchmarks/pretrained_cold_start.py [--runs 3] [--model facelivtv2_s]

The served files are built from ../shared/reference (the authors' released layout, random weights): the
scores mean nothing, the times are what is measured. Each row is a whole `facelivt verify` process
(interpreter start, imports, model, MTCNN, two photos); the cold row also downloads, checks and converts.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO / "tests"))

from hf_server import HubServer, released_bytes  # noqa: E402

from facelivt.cpu import cpu_capability  # noqa: E402
from facelivt.models.pretrained import AUTHORS_REPO, PRETRAINED  # noqa: E402

REFERENCES = {"facelivt_s": "official_facelivt_s.pt", "facelivtv2_s": "official_facelivtv2_s.pt"}


def verify(env: dict, *extra: str) -> float:
    photos = sorted((SHARED / "data" / "celeba_subset" / "7201").glob("*.jpg"))[:2]
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "facelivt", "verify", *map(str, photos), "--threads", "2", "--quiet",
                           *extra], capture_output=True, text=True, env={**os.environ, **env})
    if proc.returncode != 0:
        raise SystemExit(f"verify failed: {proc.stderr}")
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default="facelivtv2_s", choices=sorted(REFERENCES))
    args = parser.parse_args()
    print(f"CPU capability: {cpu_capability(2).summary()}")
    rows: dict[str, list[float]] = {"local file (baseline)": [], "cold cache": [], "warm cache": []}
    with HubServer() as hub:
        hub.add_file(AUTHORS_REPO, PRETRAINED[args.model].filename, released_bytes(SHARED / "reference" / REFERENCES[args.model]))
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": f"{tmp}/hf", "FACELIVT_HOME": f"{tmp}/facelivt"}
                rows["cold cache"].append(verify(env, "--model", args.model))
                rows["warm cache"].append(verify(env, "--model", args.model))
                local = Path(tmp) / "facelivt" / "weights" / f"{args.model}.safetensors"
                rows["local file (baseline)"].append(verify(env, "--weights", str(local)))
    base = statistics.median(rows["local file (baseline)"])
    print(f"\nfacelivt verify of two photos, {args.model}, median of {args.runs} runs (2 threads)")
    print(f"{'row':<24}{'median s':>10}{'x baseline':>12}")
    for name, times in rows.items():
        print(f"{name:<24}{statistics.median(times):>10.2f}{statistics.median(times) / base:>12.2f}")


if __name__ == "__main__":
    main()
