"""``facelivt calibrate PAIRS|FOLDER --weights W``: choose the verification threshold of some weights
once and keep it in their model card, where ``verify``, ``identify``, ``enroll`` and
``FaceRecognizer`` find it."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from facelivt.cli.common import add_model_args, make_recognizer
from facelivt.errors import InvalidInputError
from facelivt.evaluation.pairs import generate_pairs, resolve_pairs
from facelivt.files import check_not_input


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="choose the verification threshold of some weights and record it in their model card",
        description="Embed labelled pairs and choose the cosine threshold with the best accuracy (or, with --far, "
                    "the lowest one whose false accept rate stays at or below F), then record it in the model card "
                    "of the weights: inside the .safetensors file (rewritten atomically, tensors unchanged), or in "
                    "the side file WEIGHTS.card.json for weights that must not be rewritten (a pretrained cache "
                    "entry, a read-only file, a .pt checkpoint). verify, identify, enroll and FaceRecognizer then "
                    "use it. PAIRS: a .bin verification set or a pairs list (path_a path_b 1|0 per line); FOLDER: "
                    "root/<identity>/<image>, from which --pairs balanced pairs are drawn (seeded).",
    )
    p.add_argument("pairs", metavar="PAIRS|FOLDER", help=".bin set, pairs list, or image folder root/<identity>/<image>")
    p.add_argument("--far", type=float, default=None, metavar="F",
                   help="threshold at this false accept rate (e.g. 0.001) instead of the best accuracy")
    p.add_argument("--pairs", dest="num_pairs", type=int, default=600, metavar="N",
                   help="with a FOLDER: pairs to draw, half genuine and half impostor (default 600)")
    p.add_argument("--seed", type=int, default=0, help="with a FOLDER: seed of the pair drawing (default 0)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="write a copy of the weights with the card to this .safetensors FILE instead of recording "
                        "it for the weights")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_model_args(p)
    p.set_defaults(func=run)


def labelled_pairs(args: argparse.Namespace) -> tuple[str | list, str]:
    """What to calibrate on (a file for the recognizer, or (a, b, same) pairs drawn from a folder) and its name."""
    source = Path(args.pairs)
    if not source.is_dir():
        return args.pairs, str(source)
    if args.num_pairs < 2 or args.num_pairs % 2:
        raise InvalidInputError(f"--pairs must be an even number of at least 2, got {args.num_pairs}")
    pairs = resolve_pairs(source, generate_pairs(source, args.num_pairs, seed=args.seed, n_folds=1))
    return pairs, f"{source} (pairs drawn with seed {args.seed})"


def check_args(args: argparse.Namespace) -> None:
    if args.far is not None and not 0.0 <= args.far < 1.0:
        raise InvalidInputError(f"--far must be in [0, 1), got {args.far}")
    if args.out is not None:
        if Path(args.out).suffix.lower() != ".safetensors":
            raise InvalidInputError(f"--out {args.out}: the calibrated weights are safetensors, name them *.safetensors")
        check_not_input(args.out, {"--weights": args.weights, "PAIRS": args.pairs})


def run(args: argparse.Namespace) -> int:
    check_args(args)
    pairs, source = labelled_pairs(args)
    rec = make_recognizer(args)
    cal = rec.calibrate(pairs, target_far=args.far, aligned=args.aligned, progress=not args.quiet, name=source)
    written = rec.save_calibration(cal, source, out=args.out)
    result = {"weights": rec.weights_source, "model": rec.model_name, "threshold": round(cal.threshold, 6),
              "threshold_source": rec.threshold_source, "calibration": cal.to_dict(), "written": str(written)}
    if args.json:
        print(json.dumps(result))
        return 0
    far = "" if args.far is None else f" at FAR <= {args.far:g}"
    print(f"threshold {cal.threshold:.4f} (cosine{far}): accuracy {100 * cal.accuracy:.2f}%, TAR {100 * cal.tar:.2f}% "
          f"at FAR {100 * cal.far:.2f}% on {cal.num_pairs} pairs of {source}")
    print(f"recorded in {written}")
    return 0
