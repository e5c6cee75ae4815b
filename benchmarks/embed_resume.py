"""What a killed `facelivt embed` of a big folder costs, before (one file written at the end) and now
(rows streamed into a folder, `--resume`), on real aligned crops (../shared/data/celeba_subset_112).

For each format: a whole run (seconds, peak memory of the process), then a run killed (SIGKILL) once
about half the photos are embedded, then what it takes to finish: `--resume` for the streamed folder,
everything again for the single file (it leaves nothing). Prints a markdown table; the ratios are
against the whole run measured in the same process.

    python benchmarks/embed_resume.py [--identities 25] [--weights W] [--kill-at 0.5]
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALIGNED = REPO.parent / "shared" / "data" / "celeba_subset_112"
#: Runs the command line in argv and prints the process's peak resident memory (KiB) on its last stderr line.
WRAP = ("import resource, sys; from facelivt.cli import main; rc = main(sys.argv[1:]); "
        "print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")


def command(inputs: list[Path], out: Path, weights: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", WRAP, "embed", *map(str, inputs), "--out", str(out), "--aligned", "--quiet",
            "--weights", str(weights), "--threads", "1", *extra]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def whole(cmd: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env())
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    rss = int(proc.stderr.strip().splitlines()[-1].split()[1])
    return time.perf_counter() - start, rss


def killed(cmd: list[str], index: Path | None, want_rows: int, after_s: float) -> int:
    """Start ``cmd`` and SIGKILL it once ``index`` names ``want_rows`` rows (or, without an index to
    watch, after ``after_s`` seconds); the rows it left."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
    start = time.perf_counter()
    while proc.poll() is None:
        rows = index.read_bytes().count(b"\n") - 1 if index is not None and index.exists() else 0
        if (index is not None and rows >= want_rows) or (index is None and time.perf_counter() - start > after_s):
            break
        time.sleep(0.01)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return max(0, index.read_bytes().count(b"\n") - 1) if index is not None and index.exists() else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=25, help="identity folders of celeba_subset_112 (default 25)")
    ap.add_argument("--weights", default=None, help="weights (default: random facelivt_s weights, made here)")
    ap.add_argument("--kill-at", type=float, default=0.5, help="fraction of the photos embedded when killed")
    args = ap.parse_args()
    inputs = sorted(d for d in ALIGNED.iterdir() if d.is_dir())[: args.identities]
    total = sum(len(list(d.iterdir())) for d in inputs)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = Path(args.weights) if args.weights else make_weights(tmp)
        rows = [f"{total} photos, killed at {args.kill_at:.0%}", "",
                "| format | whole run (s) | peak RSS (MiB) | rows left by the kill | to finish after the kill (s) | finish / whole |",
                "| --- | --- | --- | --- | --- | --- |"]
        t_file, rss_file = whole(command(inputs, tmp / "w.safetensors", weights))
        killed(command(inputs, tmp / "k.safetensors", weights), None, 0, after_s=t_file * args.kill_at)
        left = 0  # nothing is written before the end: finishing is the whole run again
        rows.append(f"| one file (.safetensors, before) | {t_file:.1f} | {rss_file / 1024:.0f} | {left} | "
                    f"{t_file:.1f} | 1.00 |")
        t_npy, rss_npy = whole(command(inputs, tmp / "w", weights))
        left = killed(command(inputs, tmp / "k", weights), tmp / "k" / "index.csv", int(total * args.kill_at), 0)
        t_resume, _ = whole(command(inputs, tmp / "k", weights, "--resume"))
        rows.append(f"| streamed folder + --resume (now) | {t_npy:.1f} | {rss_npy / 1024:.0f} | {left} | "
                    f"{t_resume:.1f} | {t_resume / t_npy:.2f} |")
    print("\n".join(rows))


def make_weights(tmp: Path) -> Path:
    sys.path.insert(0, str(REPO))
    from facelivt import create_model
    from facelivt.models import save_weights

    path = tmp / "facelivt_s.safetensors"
    save_weights(create_model("facelivt_s").eval(), path)
    return path


if __name__ == "__main__":
    main()
