"""``facelivt models``: the pretrained model zoo: what each is, the authors' published accuracy, its
licence, and whether (and where) it is cached here."""
from __future__ import annotations

import argparse
import json

from facelivt.models import PRETRAINED, cached_weights, facelivt_home, list_models
from facelivt.models.pretrained import BENCHMARK_TITLES, BENCHMARKS, DEFAULT_PRETRAINED
from facelivt.models.registry import model_config

COLUMNS = ("lfw", "cfp_fp", "agedb_30", "ijbb", "ijbc")


def zoo_rows() -> list[dict]:
    """One row per pretrained entry: name, counts (deploy form at 112x112), published accuracy, licence,
    cache state (path, revision and sha256 of what was accepted)."""
    rows = []
    for name in list_models(pretrained=True):
        entry, cfg = PRETRAINED[name], model_config(name)
        cached = cached_weights(name)
        rows.append({
            "name": name, "variant": entry.variant, "default": name == DEFAULT_PRETRAINED,
            "params_m": cfg.reference_counts[0] if cfg and cfg.reference_counts else None,
            "macs_m": cfg.reference_counts[1] if cfg and cfg.reference_counts else None,
            "published": entry.accuracy.figures(), "accuracy_source": entry.accuracy.source,
            "trained_on": entry.trained_on, "licence": entry.licence, "reference": entry.reference,
            "pinned_sha256": entry.sha256,
            "cached": cached is not None, "path": str(cached.path) if cached else None,
            "revision": cached.record.get("revision") if cached else None,
            "sha256": cached.record.get("sha256") if cached else None,
        })
    return rows


def format_zoo(rows: list[dict]) -> str:
    head = (f"{'name':<15}{'params M':>9}{'MACs M':>8}" + "".join(f"{BENCHMARK_TITLES[k]:>9}" for k in COLUMNS)
            + f"  {'licence':<13}cached")
    lines = [head, "-" * (len(head) + 40)]
    for r in rows:
        acc = "".join(f"{r['published'][k]:>9g}" if k in r["published"] else f"{'-':>9}" for k in COLUMNS)
        where = f"yes: {r['path']} (revision {r['revision'][:12] if r['revision'] else '?'}, sha256 {r['sha256'][:12]})" \
            if r["cached"] else "no"
        star = "*" if r["default"] else " "
        lines.append(f"{r['name'] + star:<15}{r['params_m'] or 0:>9.3f}{r['macs_m'] or 0:>8.1f}{acc}  {r['licence']:<13}{where}")
    lines += [
        "",
        f"* the default of verify / embed / enroll / identify and FaceRecognizer() ({DEFAULT_PRETRAINED}).",
        "Accuracy (%): the authors' published figures, trained on Glint360K (FaceLiVT: the ICIP 2025 paper; "
        "FaceLiVTv2: the authors' README); IJB-B/C are TAR at FAR=1e-4; '-': not published. Not measured here.",
        "Params and MACs: deploy form at 112x112, as `facelivt info` counts them.",
        f"Weights: {rows[0]['reference'].rsplit('/', 1)[0] if rows else ''}/...; cache: {facelivt_home() / 'weights'} "
        "(FACELIVT_HOME); fetch with `facelivt download NAME`.",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    rows = zoo_rows()
    print(json.dumps(rows, indent=1) if args.json else format_zoo(rows))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "models", help="the pretrained models: published accuracy, licence, cache state",
        description="List the pretrained models (the authors' Glint360K checkpoints): parameters, MACs, the "
                    "accuracy the authors publish (" + ", ".join(BENCHMARK_TITLES[k] for k in BENCHMARKS) +
                    " where given), the weights' licence, and whether each is in the cache and where.")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=run)
