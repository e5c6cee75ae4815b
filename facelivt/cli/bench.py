"""``facelivt bench``: latency tables measured on this machine in one run: the FaceLiVT paper's Tables III
and IV, FaceLiVT against its peers, or the user's own model (``--weights`` / ``--onnx``)."""
from __future__ import annotations

import argparse
import sys

from facelivt.cli.common import WEIGHTS_HELP, model_name_for
from facelivt.cli.options import add_device, add_json, add_out_dir, add_quiet
from facelivt.cpu import check_threads
from facelivt.deploy.bench_report import save_result, to_markdown
from facelivt.deploy.benchmark import DEFAULT_TABLES, PEER_TABLE_MODELS, YOURS, BenchConfig, run_bench
from facelivt.devices import resolve_device
from facelivt.errors import InvalidInputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="latency tables of FaceLiVT against EdgeFace-XS / MobileFaceNet, or of your own weights / ONNX file",
        description="Measure params, MACs and latency (PyTorch eager and ONNX Runtime, batch 1 and 32) of the "
                    "deploy forms on this machine, with ratios against FaceLiVT-S; prints the markdown and writes "
                    "bench.md + bench.json into --out. With --weights and/or --onnx it times your own model "
                    "beside FaceLiVT-S (random weights) instead.",
    )
    add_out_dir(p, "bench.md and bench.json (default bench_results)", default="bench_results")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch and ONNX Runtime (default 2)")
    add_device(p, "device (on a GPU: eager on the GPU, ONNX Runtime with CUDA if available)")
    p.add_argument("--tables", default=None,
                   help="comma-separated subset of table3 (the paper's Table III: reparameterization), table4 (its "
                        "Table IV: MHLA heads), peers, yours (default: table3,table4,peers; with --weights / --onnx: yours)")
    p.add_argument("--weights", default=None, metavar="WEIGHTS",
                   help="time your own weights (deploy form, PyTorch eager and ONNX Runtime): " + WEIGHTS_HELP)
    p.add_argument("--model", default=None, help="the model of --weights (default: the one the weights name)")
    p.add_argument("--onnx", default=None, metavar="FILE",
                   help="time your own ONNX file in ONNX Runtime at --batch-sizes (its input shape is read from the file)")
    p.add_argument("--models", default=None, help=f"comma-separated models of the peer table (default: {','.join(PEER_TABLE_MODELS)})")
    p.add_argument("--batch-sizes", default=None, help="comma-separated batch sizes (default 1,32; quick: 1,4)")
    p.add_argument("--runs", type=int, default=None, help="timed runs at batch 1 (default 30; quick 2)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up runs at batch 1 (default 10; quick 1)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; quick 1)")
    p.add_argument("--torch-only", action="store_true", help="PyTorch eager only (no ONNX Runtime timings)")
    p.add_argument("--clock", default="wall", choices=("wall", "thread"),
                   help="wall (default) or thread: CPU time of the calling thread, robust on a busy machine (needs --threads 1)")
    p.add_argument("--optimized", action="store_true",
                   help="also time facelivt.optimize_for_inference (TorchScript freeze + oneDNN fusions) of every model")
    p.add_argument("--quick", action="store_true", help="few runs, small batches: checks that everything runs")
    add_quiet(p, "no progress lines")
    add_json(p, "print the result (as in bench.json) as JSON on stdout instead of the markdown")
    p.set_defaults(func=run)


def _csv(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if not items:
        raise InvalidInputError(f"empty list: {text!r}")
    return items


def _tables(args: argparse.Namespace) -> tuple[str, ...]:
    """``--tables``, by default the paper's tables and the peers, or only yours with --weights / --onnx."""
    yours = args.weights is not None or args.onnx is not None
    if args.tables is None:
        return (YOURS,) if yours else DEFAULT_TABLES
    tables = _csv(args.tables)
    return tables + (YOURS,) if yours and YOURS not in tables else tables


def run(args: argparse.Namespace) -> int:
    check_threads(args.threads, "--threads")
    device = str(resolve_device(args.device, option="--device"))
    kw = {"threads": args.threads, "device": device, "tables": _tables(args), "onnx": not args.torch_only, "clock": args.clock,
          "optimized": args.optimized, "onnx_file": args.onnx}
    if args.model is not None and args.weights is None:
        raise InvalidInputError("--model names the model of --weights: give --weights too (the peer table's models: --models)")
    if args.weights is not None:
        kw["weights"] = args.weights
        kw["weights_model"] = model_name_for(args.model, args.weights, None, progress=False)
    if args.models:
        kw["models"] = _csv(args.models)
    if args.batch_sizes:
        try:
            kw["batch_sizes"] = tuple(int(b) for b in _csv(args.batch_sizes))
        except ValueError:
            raise InvalidInputError(f"--batch-sizes must be integers, got {args.batch_sizes!r}") from None
    for k in ("runs", "warmup", "rounds"):
        if getattr(args, k) is not None:
            kw[k] = getattr(args, k)
    cfg = BenchConfig.quick_config(**kw) if args.quick else BenchConfig(**kw)
    result = run_bench(cfg, progress=None if args.quiet else lambda s: print(f"[bench] {s}", file=sys.stderr, flush=True))
    md, js = save_result(result, args.out)
    if args.json:
        print(js.read_text(encoding="utf-8"))
        return 0
    print(to_markdown(result))

    print(f"wrote {md} and {js}")
    return 0
