"""Training-step throughput on the CPU: plain, with a live teacher, with the teacher cache, against
the released implementation's forward pass and a peer, all in one run.

One optimiser step = student forward + Partial FC (CosFace) + backward + gradient clipping +
AdamW + schedule, exactly the trainer's step (facelivt.training.engine.StepRunner), on a fixed
batch of 112x112 images held in memory (no data loading). Rows:

  plain       the trainer's defaults, float32: the layout and 1x1 form facelivt.cpu.cpu_defaults picks
              for this ISA (model.channels_last=auto, model.linear_1x1=auto)
  cl          channels-last, the 1x1 ConvBNs as F.linear (model.channels_last=true, model.linear_1x1=true)
  cl_conv     channels-last, the 1x1 ConvBNs as convolutions (model.linear_1x1=false)
  live        + distillation, the teacher run on every step
  cached      + distillation, teacher embeddings read from the cache (filled during warm-up,
              as after the first epoch of a real run)
  nchw        plain in the NCHW layout (model.channels_last=false)
  bf16        plain under bfloat16 autocast (train.amp=bf16; only where the CPU has native bf16)
  compile     plain with model.compile=true (torch.compile; compiling happens during warm-up)
  released    the released implementation's forward (per-head-loop MHLA, two-branch RepConv,
              NCHW; benchmarks/baselines.py) in the same step: the baseline of "x released"
  peer        --peer (EdgeFace-XS by default), plain

Each row runs in a process of its own (``--isolation process``), like a training run; the parent
asks the rows in turn for a block of consecutive steps, round after round, so that a change in the
machine's load reaches every row. ``--isolation none`` keeps every row's model in one process.

    python benchmarks/train_throughput.py                    # 2 threads, batch 64, every row
    python benchmarks/train_throughput.py --rows plain,cached --steps 20
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

import facelivt
from facelivt.cpu import cpu_capability, machine_defaults
from facelivt.files import write_json
from facelivt.runtime import tune_allocator
from baselines import released_style  # benchmarks/baselines.py
from facelivt.training import Config
from facelivt.training.distributed import DistEnv
from facelivt.training.engine import build_model, build_step_runner

ROWS = ("plain", "live", "cached", "cl", "cl_conv", "nchw", "bf16", "compile", "released", "peer")


def bf16_native() -> bool:
    """True when oneDNN runs bfloat16 natively here (AVX512-BF16 / AMX); elsewhere bf16 is emulated and slow."""
    return cpu_capability().native_bf16


def make_config(args: argparse.Namespace, row: str) -> Config:
    cfg = Config(output=str(Path("runs") / "bench"))
    cfg.model.name = args.peer if row == "peer" else args.model
    cfg.model.channels_last = {"nchw": False, "released": False, "cl": True, "cl_conv": True}.get(row)  # None: auto, per ISA
    cfg.model.linear_1x1 = {"cl": True, "cl_conv": False}.get(row)
    cfg.train.device = "cpu"
    cfg.train.amp = "bf16" if row == "bf16" else "none"
    cfg.train.batch_size = args.batch
    cfg.model.compile = row == "compile"
    if row in ("live", "cached"):
        cfg.distill.enabled = True
        cfg.distill.teacher = args.teacher
        cfg.distill.allow_random_teacher = True  # weights do not change the cost
        cfg.distill.cache = "memory" if row == "cached" else "none"
    return cfg


def build(args: argparse.Namespace, row: str):
    torch.manual_seed(0)
    cfg = make_config(args, row)
    model = released_style(build_model(cfg)) if row == "released" else None
    total = args.warmup + args.rounds * (1 + -(-args.steps // args.rounds))
    return build_step_runner(cfg, DistEnv(), args.classes, total_steps=total + 1, num_samples=args.batch, model=model)


def make_batch(args: argparse.Namespace) -> list:
    g = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, 112, 112, generator=g).clamp(-1, 1)
    labels = torch.randint(0, args.classes, (args.batch,), generator=g)
    flips = torch.arange(args.batch) % 2
    return [images, labels, torch.arange(args.batch), flips]


class Row:
    """One row's step runner, warmed up; ``block(n)`` runs one untimed step (it re-warms caches after
    the other rows) and then ``n`` timed consecutive steps, as a real run does."""

    def __init__(self, args: argparse.Namespace, row: str):
        self.args, self.row = args, row
        self.batch = make_batch(args)
        self.runner = build(args, row)
        self.steps = 0
        for _ in range(args.warmup):
            self._step()

    def _step(self) -> None:
        self.runner.step([self.batch], self.steps)
        self.steps += 1

    def block(self, n: int) -> list[float]:
        self._step()
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            self._step()
            out.append(time.perf_counter() - t0)
        if self.row == "cached":
            assert self.runner.targets.cache.misses == self.args.batch, "the timed steps must all be cache hits"
        return out


def _row_process(args: argparse.Namespace, row: str, conn) -> None:
    """A row in a process of its own: it answers block requests until told to stop."""
    if args.malloc == "tuned":
        tune_allocator()
    torch.set_num_threads(args.threads)
    try:
        worker = Row(args, row)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while (n := conn.recv()) is not None:
        conn.send(("times", worker.block(n)))


def measure(args: argparse.Namespace, rows: list[str]) -> dict[str, list[float]]:
    """Warm every row up, then time the rows in ``--rounds`` rounds, a block of consecutive steps per
    row and round (see :class:`Row`). Rounds spread a change in the machine's load over all rows alike.

    With ``--isolation process`` (default) every row lives in a process of its own, as a training run
    does, and only one process computes at a time; ``none`` keeps all rows' models in this process."""
    per_round = -(-args.steps // args.rounds)
    times: dict[str, list[float]] = {}
    if args.isolation == "none":
        workers = {}
        for row in rows:
            try:
                workers[row] = Row(args, row)
            except Exception as exc:  # noqa: BLE001 - torch.compile needs a working C++ compiler
                _left_out(row, f"{type(exc).__name__}: {exc}")
                continue
            print(f"# {row}: warmed up", file=sys.stderr)
        times = {row: [] for row in workers}
        for _ in range(args.rounds):
            for row, worker in workers.items():
                times[row] += worker.block(per_round)
        return times

    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = {}
    try:
        for row in rows:  # one at a time, so that no two warm-ups compete for the cores
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_row_process, args=(args, row, child), daemon=True)
            proc.start()
            kind, detail = parent.recv()
            if kind == "failed":
                proc.join()
                _left_out(row, detail)
                continue
            procs[row] = (proc, parent)
            print(f"# {row}: warmed up (process {proc.pid})", file=sys.stderr)
        times = {row: [] for row in procs}
        for _ in range(args.rounds):
            for row, (_, conn) in procs.items():
                conn.send(per_round)
                kind, detail = conn.recv()
                times[row] += detail
    finally:
        for proc, conn in procs.values():
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            proc.join(timeout=30)
    return times


def _left_out(row: str, why: str) -> None:
    if row != "compile":
        raise RuntimeError(f"row {row} failed: {why}")
    print(f"# compile row left out: torch.compile failed here ({why})", file=sys.stderr)


def describe(args: argparse.Namespace, row: str) -> str:
    return {
        "plain": f"{args.model}, {layout()} fp32 (defaults)",
        "cl": f"{args.model}, channels-last fp32, 1x1 as linear",
        "cl_conv": f"{args.model}, channels-last fp32, 1x1 as conv",
        "live": f"{args.model} + live teacher {args.teacher}",
        "cached": f"{args.model} + teacher cache",
        "nchw": f"{args.model}, NCHW fp32",
        "bf16": f"{args.model}, {layout()} bf16 autocast",
        "compile": f"{args.model}, {layout()} fp32, torch.compile",
        "released": f"{args.model}, released forward, NCHW fp32",
        "peer": f"{args.peer}, {layout()} fp32",
    }[row]


def layout() -> str:
    d = machine_defaults()
    return ("channels-last" + (" (1x1 as linear)" if d.train_linear_1x1 else "")) if d.train_channels_last else "NCHW"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="facelivt_s")
    p.add_argument("--teacher", default="facelivt_l_mhsa", help="teacher variant (default: the paper's)")
    p.add_argument("--peer", default="edgeface_xs", help="model of the peer row")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=12, help="timed steps per row (rounded up to a multiple of --rounds)")
    p.add_argument("--rounds", type=int, default=3, help="rounds over the rows; each runs a block of steps per round")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (fill the cache, warm oneDNN)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--classes", type=int, default=1000, help="identities in the Partial FC layer")
    p.add_argument("--malloc", choices=("tuned", "default"), default="tuned",
                   help="tuned (as `facelivt train` runs): keep freed activation memory for reuse, see facelivt/runtime.py; "
                        "default: glibc as it comes")
    p.add_argument("--isolation", choices=("process", "none"), default="process",
                   help="process (default): every row in a process of its own, one computing at a time; "
                        "none: all rows' models in this one process")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma list of {', '.join(ROWS)}")
    p.add_argument("--out", help="also write the results (and the CPU capability) as JSON here")
    args = p.parse_args(argv)
    rows = [m.strip() for m in args.rows.split(",") if m.strip()]
    bad = [m for m in rows if m not in ROWS]
    if bad or not rows:
        p.error(f"--rows takes a comma list of {', '.join(ROWS)}; got {args.rows!r}")
    if args.model not in facelivt.list_models() or args.peer not in facelivt.list_models():
        p.error(f"--model and --peer must be among {', '.join(facelivt.list_models())}")
    if args.warmup < 1 or args.steps < 1 or args.rounds < 1 or args.batch < 2:
        p.error("--warmup, --steps and --rounds must be >= 1, --batch >= 2")
    if "bf16" in rows and not bf16_native():
        print("# bf16 row left out: this CPU has no native bfloat16 (AVX512-BF16/AMX), where it would only be emulated", file=sys.stderr)
        rows.remove("bf16")
    tuned = args.malloc == "tuned" and tune_allocator()
    torch.set_num_threads(args.threads)
    cap = cpu_capability()
    print(f"# {cap.summary()}", file=sys.stderr)
    print(f"# per-machine defaults (facelivt.cpu): {machine_defaults().summary()}", file=sys.stderr)
    print(f"# torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, {args.classes} classes, "
          f"{args.warmup} warm-up steps, then {args.rounds} rounds of 1 + {-(-args.steps // args.rounds)} steps per row "
          f"(the first of each block untimed), median step time, rows isolated: {args.isolation}, "
          f"allocator {'tuned' if tuned else 'as it comes'}", file=sys.stderr)
    results = measure(args, rows)
    med = {row: statistics.median(t) for row, t in results.items()}
    print(f"CPU capability: {cap.summary()}")
    print("| row | what | median s/step | min s/step | images/s | time vs plain | speed vs released |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    table = []
    for row, times in results.items():
        vs_plain = med[row] / med["plain"] if "plain" in med else None
        vs_released = med["released"] / med[row] if "released" in med else None
        table.append({"row": row, "what": describe(args, row), "median_s": med[row], "min_s": min(times),
                      "images_per_s": args.batch / med[row], "time_vs_plain": vs_plain, "speed_vs_released": vs_released})
        print(f"| {row} | {describe(args, row)} | {med[row]:.3f} | {min(times):.3f} | {args.batch / med[row]:.1f} | "
              f"{_x(vs_plain)} | {_x(vs_released)} |")
    if args.out:
        write_json(args.out, {"cpu_capability": cap.to_dict(), "args": vars(args), "rows": table})
    return 0


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


if __name__ == "__main__":
    sys.exit(main())
