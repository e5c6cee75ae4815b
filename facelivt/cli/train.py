"""``facelivt train CONFIG [key=value ...]``: train (or resume) a run described by a YAML config.

Works alone or under ``torchrun --nproc_per_node N`` (NCCL on GPUs, gloo on CPUs)."""
from __future__ import annotations

import argparse
import json
import os
import sys

from facelivt.cli.options import add_json, add_quiet
from facelivt.files import cleanup_new_folders
from facelivt.settings import valid_keys
from facelivt.training import Config, load_config, train


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model from a YAML config (key=value overrides; resumes from OUTPUT/checkpoints)",
        description=(
            "Train as CONFIG says (see configs/*.yaml). Overrides use dotted keys, e.g. optim.lr=0.001 "
            "model.name=facelivt_m output=runs/x train.max_minutes=10. A run whose output folder holds a "
            "checkpoint continues from it (train.resume=auto), also with more epochs or another number of "
            "processes; one run at a time may use an output folder. Writes OUTPUT/model.safetensors (train form), "
            "OUTPUT/model_deploy.safetensors (deploy form), log.jsonl, result.json, tensorboard/ and checkpoints/ "
            "(see configs/README.md)."
        ),
    )
    p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (dotted keys)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--list-keys", action="store_true", help="print every config key and exit")
    add_quiet(p, "no progress bar (train.progress=false)")
    add_json(p, "print the outcome (steps, weights, held-out results) as JSON on stdout at the end")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.list_keys:
        print("\n".join(valid_keys(Config)))
        return 0
    quiet = ["train.progress=false"] if args.quiet else []
    cfg = load_config(args.config, [*quiet, *args.overrides])
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    with cleanup_new_folders(cfg.output):  # a run refused before writing leaves no empty run folder behind
        result = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0 and args.json:
        print(json.dumps(result_record(result)))
    elif int(os.environ.get("RANK", "0")) == 0:
        lines = [f"stopped: {result.stopped} after {result.steps}/{result.total_steps} steps ({result.elapsed_s / 60:.1f} min)"]
        if result.loss_history:
            lines.append(f"final loss: {result.loss_history[-1]:.4f}")
        if result.bad_records:
            lines.append(f"unreadable records skipped: {result.bad_records}")
        for name, m in result.metrics.items():
            lines.append(f"{name}: accuracy {m['accuracy'] * 100:.2f} +- {m['accuracy_std'] * 100:.2f}%")
        lines.append(f"weights: {result.weights} (deploy form: {result.deploy_weights})")
        print("\n".join(lines), file=sys.stderr)
    return 0


def result_record(result) -> dict:
    """The facts of the run's closing lines, for ``--json``."""
    return {
        "stopped": result.stopped, "steps": result.steps, "total_steps": result.total_steps,
        "elapsed_s": round(result.elapsed_s, 3),
        "final_loss": result.loss_history[-1] if result.loss_history else None,
        "bad_records": result.bad_records, "metrics": result.metrics,
        "output": str(result.output_dir), "weights": str(result.weights) if result.weights else None,
        "deploy_weights": str(result.deploy_weights) if result.deploy_weights else None,
    }

