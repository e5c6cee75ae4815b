"""Start-up cost of the command line and the library, against `python -c "import torch"` in the same run.

    python benchmarks/startup.py [--runs 7] [--model facelivtv2_s] [--threads 1]

Rows (each a fresh process, timed from start to exit; the best of ``--runs``, rows interleaved round by
round so that background load touches every row alike):

- ``import torch`` (the baseline): what any PyTorch program pays;
- ``facelivt --help``: the command list (``python -m facelivt``, this checkout);
- ``import facelivt``;
- ``facelivt verify A B``: two real photos of ../shared/data/celeba_subset (two people), with a local
  weights file written first (random ``--model`` weights saved with ``facelivt.save_weights``; nothing
  is downloaded): imports, weights, MTCNN, detection, alignment, two embeddings.

The goals: ``--help`` within 1.04x and ``verify`` within 1.65x of the baseline (on a quiet 2-core machine).
On a busy machine, ``--threads 1`` (passed to ``verify``) keeps its multi-threaded kernels from
waiting on cores that other processes hold, which wall times would otherwise mostly measure.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "data" / "celeba_subset"
BASELINE = "import torch (baseline)"
GOALS = {"facelivt --help": 1.04, "facelivt verify (2 photos)": 1.65}

import facelivt  # noqa: E402  (this checkout: benchmarks/ sits beside the package)
from facelivt.cpu import cpu_capability  # noqa: E402


def two_photos() -> list[str]:
    """The first photo of the first two identities of the shared CelebA subset."""
    folders = sorted(p for p in PHOTOS.iterdir() if p.is_dir())[:2] if PHOTOS.is_dir() else []
    photos = [min(f.glob("*.jpg")) for f in folders if any(f.glob("*.jpg"))]
    if len(photos) < 2:
        raise SystemExit(f"startup.py: needs two identities with photos in {PHOTOS}")
    return [str(p) for p in photos]


def commands(weights: Path, model: str, threads: int | None = None) -> dict[str, list[str]]:
    py = sys.executable
    extra = ["--threads", str(threads)] if threads else []
    return {
        BASELINE: [py, "-c", "import torch"],
        "facelivt --help": [py, "-m", "facelivt", "--help"],
        "import facelivt": [py, "-c", "import facelivt"],
        "facelivt verify (2 photos)": [py, "-m", "facelivt", "verify", *two_photos(), "--model", model,
                                       "--weights", str(weights), "--quiet", *extra],
    }


def wall_time(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"startup.py: {' '.join(cmd[1:])} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def measure(rows: dict[str, list[str]], runs: int) -> dict[str, float]:
    """Best-of-``runs`` wall time of each row, the rows interleaved round by round."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    times: dict[str, list[float]] = {name: [] for name in rows}
    for name, cmd in rows.items():  # one untimed round: file caches warm for every row alike
        wall_time(cmd, env)
    for _ in range(runs):
        for name, cmd in rows.items():
            times[name].append(wall_time(cmd, env))
    return {name: min(t) for name, t in times.items()}


def table(best: dict[str, float]) -> list[str]:
    base = best[BASELINE]
    lines = ["| row | best s | x import torch | goal | within goal |", "|---|---:|---:|---:|---|"]
    for name, seconds in best.items():
        ratio = seconds / base
        goal = GOALS.get(name)
        verdict = "-" if goal is None else ("yes" if ratio <= goal else "no")
        lines.append(f"| {name} | {seconds:.3f} | {ratio:.2f} | {'-' if goal is None else f'<= {goal:.2f}'} | {verdict} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed rounds; each row's best is kept (default 7)")
    parser.add_argument("--model", default="facelivtv2_s", help="model of the verify row (random weights)")
    parser.add_argument("--threads", type=int, default=None, help="verify's --threads (default: its own default)")
    args = parser.parse_args()
    print(f"CPU capability: {cpu_capability().summary()}")
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / f"{args.model}.safetensors"
        facelivt.save_weights(facelivt.create_model(args.model), weights)
        best = measure(commands(weights, args.model, args.threads), args.runs)
    threads = f", verify --threads {args.threads}" if args.threads else ""
    print(f"\nstart-up, best of {args.runs} fresh processes (wall time{threads})")
    print("\n".join(table(best)))


if __name__ == "__main__":
    main()
