"""``facelivt verify A B``: are two photos of the same person?"""
from __future__ import annotations

import argparse
import json

from facelivt.cli.common import add_model_args, check_threshold_option, make_recognizer, print_several_faces
from facelivt.errors import InvalidInputError
from facelivt.inference.calibration import UNRELIABLE


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "verify",
        help="compare the faces of two images",
        description="Embed the largest face of A and of B and compare them: prints the cosine score and "
                    "whether it reaches the threshold (given, calibrated here on labelled pairs, recorded in the "
                    "weights' model card by `facelivt calibrate`, or the uncalibrated default). A verdict of weights "
                    "with no record of training on real faces and an uncalibrated threshold is marked UNRELIABLE. "
                    "With --face all every face of A is compared with every face of B and the best pair is "
                    "reported (is someone in both photos?).",
    )
    p.add_argument("a", help="first image")
    p.add_argument("b", help="second image")
    p.add_argument("--threshold", type=float, default=None, help="cosine threshold for 'same person'")
    p.add_argument("--calibrate", default=None, metavar="PAIRS",
                   help="choose the threshold on a .bin verification set or a pairs list (path_a path_b 1|0 per line)")
    p.add_argument("--target-far", type=float, default=None,
                   help="with --calibrate: threshold at this false accept rate instead of best accuracy")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_model_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.threshold is not None and args.calibrate is not None:
        raise InvalidInputError("give either --threshold or --calibrate, not both")
    if args.target_far is not None and args.calibrate is None:
        raise InvalidInputError("--target-far needs --calibrate")
    check_threshold_option(args)
    rec = make_recognizer(args, threshold=args.threshold)
    calibration = None
    if args.calibrate is not None:
        calibration = rec.calibrate(args.calibrate, target_far=args.target_far, aligned=args.aligned,
                                    progress=not args.quiet)
    cmp = rec.compare(args.a, args.b, aligned=args.aligned, face=args.face)
    score, same = cmp.score, cmp.same
    if args.face == "largest":
        print_several_faces([(p, n) for p, n in ((args.a, cmp.found_a), (args.b, cmp.found_b)) if n > 1], "largest")
    result = {
        "a": args.a, "b": args.b, "score": round(score, 6), "same": bool(same),
        "model": rec.model_name, "weights": rec.weights_source,
        "threshold": round(rec.threshold, 6), "threshold_source": rec.threshold_source,
        "face_a": cmp.face_a, "face_b": cmp.face_b, "faces_found_a": cmp.found_a, "faces_found_b": cmp.found_b,
        "reliable": rec.reliable, "warning": rec.warning,
    }
    if calibration is not None:
        result["calibration"] = calibration.to_dict()
    if args.json:
        print(json.dumps(result))
    else:
        verdict = ("same person" if same else "different people") + ("" if rec.reliable else f" ({UNRELIABLE})")
        faces = f" (face {cmp.face_a} of A, face {cmp.face_b} of B)" if args.face == "all" else ""
        print(f"score {score:.4f}: {verdict}{faces} (threshold {rec.threshold:.4f}, {rec.threshold_source})")
        if calibration is not None:
            print(f"calibration: {calibration.num_pairs} pairs, accuracy {100 * calibration.accuracy:.2f}%, "
                  f"TAR {100 * calibration.tar:.2f}% at FAR {100 * calibration.far:.2f}%")
    return 0
