"""``facelivt convert IN --out FILE.safetensors``: the authors' released checkpoint (or any torch checkpoint) -> safetensors.

The output carries a model card (:mod:`facelivt.models.card`): the input's, if it has one, plus
where it was converted from. The input's format is told by its content (:func:`facelivt.models.checkpoint_io.sniff_format`). The
output is always safetensors, so its name (``--out``) must end in ``.safetensors``: a ``.pt`` name would make
every other tool expect a torch pickle. It is written atomically (:mod:`facelivt.files`): a full
disk leaves no partial file and an existing output unchanged.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from facelivt.cli.common import model_name_for
from facelivt.cli.options import add_json, add_out_file, add_quiet
from facelivt.errors import FaceLiVTError
from facelivt.files import check_not_input, cleanup_new_folders
from facelivt.models import ModelCard, load_model, save_weights

OUTPUT_SUFFIX = ".safetensors"


def check_output_name(path: str | Path) -> Path:
    """``path`` if it ends in ``.safetensors``; otherwise a :class:`FaceLiVTError` before any work."""
    path = Path(path)
    if path.suffix.lower() != OUTPUT_SUFFIX:
        given = f"'{path.suffix}'" if path.suffix else "no suffix"
        raise FaceLiVTError(
            f"refusing to write {path}: convert writes safetensors, so --out must end in {OUTPUT_SUFFIX} "
            f"(it has {given}; other tools take a file by its suffix)"
        )
    return path


def converted_card(model, name: str, source: str) -> ModelCard:
    """The card of the converted weights: the input's (its training, result and threshold kept), with
    where they were converted from; an input without a card records only that."""
    card = getattr(model, "model_card", None) or ModelCard(model=name)
    origin = getattr(model, "weights_source", source)
    provenance = f"converted by facelivt convert from {origin}" + (f"; {card.provenance}" if card.provenance else "")
    return replace(card, model=name, provenance=provenance)


def run(args: argparse.Namespace) -> int:
    with cleanup_new_folders(args.out):  # a run that fails before writing leaves no empty folder behind
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    out = check_output_name(args.out)
    check_not_input(out, {"IN": args.input})  # also through a link: `convert w --out w --deploy` rewrote it in place
    name = model_name_for(args.model, args.input, None, progress=not args.quiet)
    model = load_model(name, args.input, deploy=args.deploy, progress=not args.quiet)
    save_weights(model, out, card=converted_card(model, name, args.input))
    state = model.state_dict()
    form = "deploy" if args.deploy else "train"
    n = sum(t.numel() for t in state.values() if isinstance(t, torch.Tensor))
    if args.json:
        print(json.dumps({"out": str(out), "model": name, "form": form, "tensors": len(state), "values": n}))
    else:
        print(f"wrote {out}: {name}, {form} form, {len(state)} tensors, {n / 1e6:.3f} M values")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="convert a released .pt checkpoint to this project's safetensors",
        description="Read a checkpoint (the authors' released .pt, a torch checkpoint in this project's layout, or "
                    "safetensors; the format is told by the content, not the name), check that it fits the model, and "
                    "write its weights as safetensors (the train form, or the reparameterized deploy form with "
                    "--deploy) with the model name in the metadata. The output is written atomically.")
    p.add_argument("input", metavar="IN", help="checkpoint (.pt/.pth, the authors' layout or ours) or safetensors, "
                                               "the format read from the content, not the name; or a pretrained "
                                               "name, hf://owner/repo/file or https://...")
    add_out_file(p, "the weights to write, named *.safetensors", metavar="FILE.safetensors", required=True)
    p.add_argument("--model", default=None, help="model name, e.g. facelivt_s (default: the one IN holds)")
    p.add_argument("--deploy", action="store_true", help="write the reparameterized deploy form instead of the train form")
    add_quiet(p, "no download progress bar")
    add_json(p, "print what was written as JSON on stdout")
    p.set_defaults(func=run)
