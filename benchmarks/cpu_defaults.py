"""The inference measurements behind facelivt.cpu.cpu_defaults: each per-machine choice's alternatives,
timed interleaved in one run on this machine (training layout and bf16: benchmarks/train_throughput.py,
rows plain / nchw / bf16).

Rows, per model and batch (the deploy form, eval mode, no autograd):

  eager CL linear1x1   channels-last, 1x1 convs as F.linear while batch*h*w <= 1024 (PointwiseConv)
  eager CL conv1x1     channels-last, every 1x1 conv a convolution (PointwiseConv.LINEAR_MAX_ROWS = 0)
  eager NCHW           the default layout
  torchscript CL       optimize_for_inference(backend="torchscript"), channels-last
  torchscript NCHW     the same, NCHW
  onnxruntime          optimize_for_inference(backend="onnxruntime")

    python benchmarks/cpu_defaults.py                       # facelivt_s, batch 1 and 32, 2 threads
    python benchmarks/cpu_defaults.py --isa avx2            # the same with the AVX2 kernels (see --help)

``x best``: each row's time over the fastest row of its model and batch.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys

import torch
from torch import nn

import facelivt
from facelivt.cpu import APPROX_AVX2_ENV, CpuCapability, cpu_capability
from facelivt.files import write_json
from facelivt.models.layers import PointwiseConv
from facelivt.runtime import tune_allocator
from latency import measure  # benchmarks/latency.py: the interleaved median timing of every row


def add_isa_arg(parser: argparse.ArgumentParser) -> None:
    """The ``--isa native|avx2`` option of the scripts that :func:`reexec_with_isa` restarts."""
    parser.add_argument("--isa", choices=("native", "avx2"), default="native",
                        help="avx2: re-run with " + " ".join(f"{k}={v}" for k, v in APPROX_AVX2_ENV.items()))


def reexec_with_isa(isa: str | None, argv: list[str]) -> None:
    """``--isa avx2``: start this script again with the AVX2 kernels selected (the variables are read at
    process start); ``--isa native`` or none: run as is."""
    if isa != "avx2" or all(os.environ.get(k) == v for k, v in APPROX_AVX2_ENV.items()):
        return
    env = {**os.environ, **APPROX_AVX2_ENV}
    os.execve(sys.executable, [sys.executable, *argv], env)


def start_run(args: argparse.Namespace, script: str, argv: list[str] | None) -> CpuCapability:
    """The start the ``--isa`` scripts share: re-run with the AVX2 kernels when asked, tune the allocator,
    set ``--threads``, and print (and return) the CPU capability this run has."""
    reexec_with_isa(args.isa, [script, *(sys.argv[1:] if argv is None else argv)])
    tune_allocator()
    torch.set_num_threads(args.threads)
    cap = cpu_capability()
    print(f"CPU capability: {cap.summary()}")
    return cap


def conv_pointwise(model: nn.Module) -> nn.Module:
    out = copy.deepcopy(model)
    for m in out.modules():
        if isinstance(m, PointwiseConv):
            m.LINEAR_MAX_ROWS = 0
    return out


def candidates(name: str) -> dict[str, nn.Module]:
    deploy = facelivt.reparameterize_model(facelivt.create_model(name).eval())
    cl = copy.deepcopy(deploy).to(memory_format=torch.channels_last)

    def eager_cl(m: nn.Module):
        return lambda x: m(x.contiguous(memory_format=torch.channels_last))

    return {
        "eager CL linear1x1": eager_cl(cl),
        "eager CL conv1x1": eager_cl(conv_pointwise(cl)),
        "eager NCHW": deploy,
        "torchscript CL": facelivt.optimize_for_inference(deploy, backend="torchscript", channels_last=True),
        "torchscript NCHW": facelivt.optimize_for_inference(deploy, backend="torchscript", channels_last=False),
        "onnxruntime": facelivt.optimize_for_inference(deploy, backend="onnxruntime"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["facelivt_s"], help="registry names")
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=60, help="timed runs at batch 1 (batch b: runs // b, at least 8)")
    add_isa_arg(ap)
    ap.add_argument("--out", help="also write the results as JSON here")
    args = ap.parse_args(argv)
    cap = start_run(args, __file__, argv)
    results = []
    for name in args.models:
        rows = candidates(name)
        for b in args.batches:
            x = torch.randn(b, 3, 112, 112)
            ms = measure(rows, x, 3 if b > 1 else 10, max(8, args.runs // b) if b > 1 else args.runs)
            best = min(ms.values())
            results += [{"model": name, "batch": b, "row": r, "ms": t, "x_best": t / best} for r, t in ms.items()]
    print("| model | batch | row | ms | x best |")
    print("| --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['model']} | {r['batch']} | {r['row']} | {r['ms']:.2f} | {r['x_best']:.2f} |")
    if args.out:
        write_json(args.out, {"cpu_capability": cap.to_dict(), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
