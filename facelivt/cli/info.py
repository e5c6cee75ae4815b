"""``facelivt info``: parameters and MACs of model variants, train and deploy form."""
from __future__ import annotations

import argparse
import json

from facelivt.cli.options import add_json
from facelivt.deploy.counting import complexity
from facelivt.errors import InvalidInputError
from facelivt.models import V2_VARIANTS, VARIANTS, create_model, list_models, reparameterize_model
from facelivt.models.registry import model_config


def model_info_rows(names: list[str], input_size: int = 112) -> list[dict]:
    rows = []
    for name in names:
        model = create_model(name).eval()
        train = complexity(model, input_size)
        deploy = complexity(reparameterize_model(model), input_size)
        cfg = model_config(name)
        ref = cfg.reference_counts if cfg is not None and input_size == 112 else None
        rows.append(
            {
                "model": name,
                "train_params_m": train.params_m,
                "train_macs_m": train.macs_m,
                "deploy_params_m": deploy.params_m,
                "deploy_macs_m": deploy.macs_m,
                "paper_params_m": ref[0] if ref else None,
                "paper_macs_m": ref[1] if ref else None,
            }
        )
    return rows


def format_info(rows: list[dict], input_size: int) -> str:
    head = f"{'model':<22}{'train params M':>15}{'train MACs M':>13}{'deploy params M':>16}{'deploy MACs M':>14}{'paper params/MACs':>19}{'diff %':>15}"
    lines = [f"FaceLiVT complexity at {input_size}x{input_size} (MACs counted as ptflops does)", head, "-" * len(head)]
    for r in rows:
        paper = diff = "-"
        if r["paper_params_m"] is not None:
            paper = f"{r['paper_params_m']:.3f}/{r['paper_macs_m']:.1f}"
            dp = 100 * (r["deploy_params_m"] / r["paper_params_m"] - 1)
            dm = 100 * (r["deploy_macs_m"] / r["paper_macs_m"] - 1)
            diff = f"{dp:+.2f}/{dm:+.2f}"
        lines.append(
            f"{r['model']:<22}{r['train_params_m']:>15.3f}{r['train_macs_m']:>13.1f}{r['deploy_params_m']:>16.3f}{r['deploy_macs_m']:>14.1f}{paper:>19}{diff:>15}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    names = args.names or list(VARIANTS) + list(V2_VARIANTS)
    for n in names:
        if n not in list_models():
            raise InvalidInputError(f"unknown model {n!r}; available models: {', '.join(list_models())}")
    rows = model_info_rows(names, args.input_size)
    print(json.dumps(rows, indent=1) if args.json else format_info(rows, args.input_size))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "info", help="parameters and MACs of model variants (train and deploy form)",
        description="Build each model (no weights are read) and count its parameters and multiply-accumulates "
                    "(as ptflops counts them) in the train form and in the reparameterized deploy form, beside the "
                    "paper's figures where it gives them.")
    p.add_argument("names", nargs="*", metavar="NAME", help="model names (default: every FaceLiVT and FaceLiVTv2 variant)")
    p.add_argument("--input-size", type=int, default=112, metavar="PIXELS", help="input side (default 112)")
    add_json(p, "print the rows as JSON on stdout")

    p.set_defaults(func=run)
