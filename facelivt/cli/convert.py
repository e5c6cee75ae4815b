"""``facelivt convert``: the authors' released checkpoint (or any torch checkpoint) -> safetensors."""
from __future__ import annotations

import argparse

import torch

from facelivt.models import load_model, save_weights


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model, args.input, deploy=args.deploy)
    save_weights(model, args.output)
    form = "deploy" if args.deploy else "train"
    n = sum(t.numel() for t in model.state_dict().values() if isinstance(t, torch.Tensor))
    print(f"wrote {args.output}: {args.model}, {form} form, {len(model.state_dict())} tensors, {n / 1e6:.3f} M values")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("convert", help="convert a released .pt checkpoint to this project's safetensors")
    p.add_argument("input", metavar="IN", help="checkpoint (.pt/.pth, the authors' layout or ours) or safetensors")
    p.add_argument("output", metavar="OUT", help="output .safetensors")
    p.add_argument("--model", required=True, help="model name, e.g. facelivt_s")
    p.add_argument("--deploy", action="store_true", help="write the reparameterized deploy form instead of the train form")
    p.set_defaults(func=run)
