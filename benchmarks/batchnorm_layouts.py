"""BatchNorm2d in training, channels-last against NCHW, for every BatchNorm input shape of a network.

Why the stem's first RepConv of a channels-last model runs NCHW (facelivt.models.layers.RepConv,
``nchw=True``): ATen's channels-last BatchNorm backward is several times slower than its NCHW one where
a map has few channels, while its forward is faster. Each shape is timed forward (``native_batch_norm``,
training) and backward (``native_batch_norm_backward``) in both layouts, interleaved, median of --runs.

    python benchmarks/batchnorm_layouts.py                    # facelivt_s, batch 64, 2 threads
    python benchmarks/batchnorm_layouts.py --isa avx2         # with the AVX2 kernels (see cpu_defaults.py)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter

import torch

import facelivt
from cpu_defaults import add_isa_arg, start_run  # benchmarks/cpu_defaults.py
from facelivt.files import write_json


def bn_shapes(model_name: str, batch: int) -> Counter:
    """Input shapes of every BatchNorm2d of ``model_name`` at ``batch`` (train form), with their counts."""
    model = facelivt.create_model(model_name).train()
    shapes: Counter = Counter()
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.update([tuple(i[0].shape)]))
             for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        s = model.preprocess.input_size
        model(torch.randn(batch, 3, s, s))
    for h in hooks:
        h.remove()
    return shapes


def time_layout(shape: tuple[int, ...], layout: torch.memory_format, runs: int) -> tuple[float, float]:
    """Median forward and backward ms of one training-mode BatchNorm on ``shape`` in ``layout``."""
    c = shape[1]
    x = torch.randn(shape).contiguous(memory_format=layout)
    g = torch.randn(shape).contiguous(memory_format=layout)
    w, b, rm, rv = torch.rand(c) + 0.5, torch.randn(c), torch.zeros(c), torch.ones(c)
    _, mean, invstd = torch.ops.aten.native_batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5)
    fwd, bwd = [], []
    for _ in range(runs + 2):
        t0 = time.perf_counter()
        torch.ops.aten.native_batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5)
        t1 = time.perf_counter()
        torch.ops.aten.native_batch_norm_backward(g, x, w, rm, rv, mean, invstd, True, 1e-5, [True, True, True])
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
    return statistics.median(fwd[2:]) * 1e3, statistics.median(bwd[2:]) * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="facelivt_s")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    add_isa_arg(p)
    p.add_argument("--out", help="also write the results as JSON here")
    args = p.parse_args(argv)
    cap = start_run(args, __file__, argv)
    print(f"{args.model}, batch {args.batch}: every BatchNorm2d input shape, training mode, median ms of {args.runs}")
    print("| shape | count | CL fwd | CL bwd | NCHW fwd | NCHW bwd | CL bwd / NCHW bwd | CL fwd+bwd / NCHW fwd+bwd |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for shape, count in sorted(bn_shapes(args.model, args.batch).items(), key=lambda kv: (kv[0][1], -kv[0][2])):
        cl = time_layout(shape, torch.channels_last, args.runs)
        nchw = time_layout(shape, torch.contiguous_format, args.runs)
        rows.append({"shape": shape, "count": count, "cl_ms": cl, "nchw_ms": nchw})
        print(f"| {'x'.join(map(str, shape))} | {count} | {cl[0]:.2f} | {cl[1]:.2f} | {nchw[0]:.2f} | {nchw[1]:.2f} | "
              f"{cl[1] / nchw[1]:.2f}x | {sum(cl) / sum(nchw):.2f}x |")
    if args.out:
        write_json(args.out, {"cpu_capability": cap.to_dict(), "args": vars(args), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
