"""``facelivt export``: the deploy form as ONNX / TorchScript / Core ML, checked against PyTorch on face crops
(``--data DIR`` of real aligned crops; without it the bundled synthetic faces).

The output is named by its format (:data:`OUTPUT_SUFFIXES`): ``.onnx``; ``.pt``, ``.pth`` or ``.torchscript``
(the names torch and its tools give a TorchScript archive); a ``.mlpackage`` folder. An output that is one
of the inputs (the weights, the crops folder) is refused before any work.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facelivt.cli.common import WEIGHTS_HELP, model_name_for
from facelivt.cli.options import add_json, add_out_file, add_quiet
from facelivt.cpu import check_threads
from facelivt.deploy.crops import load_crops
from facelivt.deploy.export import export_model
from facelivt.deploy.interface import parse_batch
from facelivt.deploy.quantize import MIN_CALIBRATION_IMAGES
from facelivt.errors import InvalidInputError
from facelivt.files import check_not_input, check_writable, cleanup_new_folders
from facelivt.models import load_model, preprocess_of

OUTPUT_SUFFIXES = {"onnx": (".onnx",), "torchscript": (".pt", ".pth", ".torchscript"), "coreml": (".mlpackage",)}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a model (deploy form) to ONNX, TorchScript or Core ML and check it on face crops",
        description="Export the reparameterized model. ONNX: input 'input' (Bx3xHxW, (x/255-0.5)/0.5), output "
                    "'embedding', dynamic batch unless --batch-size N. After export the file is run (ONNX Runtime / "
                    "TorchScript) on aligned face crops (--data DIR; without it, bundled synthetic faces) and "
                    "compared with PyTorch: max |diff| and minimum cosine (fp32 needs >= 0.9999). --int8 (ONNX) "
                    "quantises statically, calibrated on the real crops of --data, where int8 measured faster and "
                    "as accurate for the model on this CPU class (else the fp32 model is written and the reason "
                    "printed); --force-int8 quantises regardless.",
    )
    p.add_argument("--model", default=None, help="model name (default: the one the --weights hold, else facelivt_s; "
                   "see `facelivt models`)")
    p.add_argument("--weights", metavar="WEIGHTS", help=WEIGHTS_HELP + "; without it the model keeps its random "
                   "initial weights (for trying the pipeline only)")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript", "coreml"), help="output format")
    add_out_file(p, "FILE.onnx (onnx), FILE.pt, .pth or .torchscript (torchscript), FILE.mlpackage (coreml: "
                 "a package folder)", required=True)
    p.add_argument("--batch-size", default="dynamic", metavar="N|dynamic",
                   help="batch size of the exported model: 'dynamic' (default) or a fixed N")
    p.add_argument("--int8", action="store_true", help="ONNX only: int8 static quantisation (QDQ, per-channel) where "
                   "it measured faster for this model on this CPU class (see README, int8)")
    p.add_argument("--force-int8", action="store_true", help="int8 even where it did not measure faster (implies --int8)")
    p.add_argument("--data", metavar="DIR", help="aligned 112x112 face crops for the checks and the int8 calibration "
                   "(default: bundled synthetic faces for the checks; --int8 needs real crops)")
    p.add_argument("--check-images", type=int, default=64, help="crops for the parity check (default 64)")
    p.add_argument("--calib-images", type=int, default=128, help="crops for int8 calibration (default 128, at least "
                   f"{MIN_CALIBRATION_IMAGES})")
    p.add_argument("--opset", type=int, default=20, help="ONNX opset (default 20)")
    p.add_argument("--exporter", default="torchscript", choices=("torchscript", "dynamo"),
                   help="torch.onnx exporter (default torchscript: the tracing exporter)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads for the checks")
    add_quiet(p, "no download progress bar")
    add_json(p)
    p.set_defaults(func=run)


def check_output_name(path: str | Path, fmt: str) -> Path:
    """``path`` if its suffix is one of ``fmt``'s (:data:`OUTPUT_SUFFIXES`); otherwise an error before any work."""
    path = Path(path)
    allowed = OUTPUT_SUFFIXES[fmt]
    if path.suffix.lower() not in allowed:
        given = f"'{path.suffix}'" if path.suffix else "no suffix"
        names = " or ".join(", ".join(allowed).rsplit(", ", 1))
        raise InvalidInputError(
            f"refusing to write {path}: --format {fmt} needs --out ending in {names} "
            f"(it has {given}; other tools take a file by its suffix)"
        )
    return path


def run(args: argparse.Namespace) -> int:
    with cleanup_new_folders(args.out):  # a run that fails before writing leaves no empty folder behind
        return _run(args)


def _check_args(args: argparse.Namespace) -> None:
    args.int8 = args.int8 or args.force_int8
    parse_batch(args.batch_size, option="--batch-size")
    check_threads(args.threads, "--threads")
    if args.int8 and args.format != "onnx":
        raise InvalidInputError("--int8 is only available with --format onnx")
    if args.int8 and args.data is None:
        raise InvalidInputError("--int8 calibrates on real faces: give --data DIR, a folder of aligned 112x112 face "
                                "crops (e.g. made by `facelivt align IMAGES --out DIR`)")
    if args.check_images < 1 or args.calib_images < 1:
        raise InvalidInputError("--check-images and --calib-images must be positive")
    if args.int8 and args.calib_images < MIN_CALIBRATION_IMAGES:
        raise InvalidInputError(f"--calib-images must be at least {MIN_CALIBRATION_IMAGES} for int8 calibration "
                                f"(activation ranges of fewer faces do not cover other people's), got {args.calib_images}")


def _run(args: argparse.Namespace) -> int:
    _check_args(args)
    out = check_output_name(args.out, args.format)
    # the weights or the crops as the output: refused before they are overwritten (a .mlpackage replaces its folder)
    check_not_input(out, {"--weights": args.weights, "--data": args.data}, holds_input=args.format == "coreml")
    if args.format != "coreml":  # a folder in the way, no permission: say so before the export's work
        check_writable(args.out)
    if args.weights is None:
        print("warning: no --weights given: exporting randomly initialised weights", file=sys.stderr)
    name = model_name_for(args.model, args.weights, "facelivt_s", progress=not args.quiet)
    model = load_model(name, args.weights, deploy=True, progress=not args.quiet)
    pre = preprocess_of(model)
    images = None if args.format == "coreml" else load_crops(args.data, args.check_images, offset=1 if args.int8 else 0, preprocess=pre)
    calibration = load_crops(args.data, args.calib_images, offset=0, preprocess=pre) if args.int8 else None
    int8 = "force" if args.force_int8 else args.int8
    report = export_model(model, args.format, args.out, batch=args.batch_size, images=images, int8=int8,
                          calibration=calibration, exporter=args.exporter, opset=args.opset, threads=args.threads,
                          speed_batches=(1, 32))
    if args.json:
        print(json.dumps({**report.to_dict(), "crops": args.data or "synthetic"}, indent=2))
        return 0
    print(f"wrote {report.path} ({report.format}, batch {report.batch}, {report.size_bytes / 1e6:.2f} MB)")
    if report.parity is not None:
        what = "fp32 ONNX Runtime" if args.format == "onnx" else "TorchScript"
        faces = "synthetic faces (give --data DIR for real crops)" if args.data is None else args.data
        print(f"parity {what} vs PyTorch on {report.parity.describe()}; crops: {faces}")
    if report.parity_note:

        print(report.parity_note)
        if report.graph:
            print(f"spec: input {report.graph['input']['name']} {report.graph['input']['shape']} "
                  f"(ranges {report.graph['input']['ranges']}), output {report.graph['output']['name']}, "
                  f"{sum(report.graph['ops'].values())} ops")
    choice = report.int8_choice
    if choice is not None and not choice.use:
        print(f"int8 skipped, wrote the fp32 model: {choice.reason} (--force-int8 quantises anyway)")
    elif choice is not None:
        print(f"int8: {choice.reason}")
    if report.int8:
        q = report.int8
        print(f"int8: {q.int8_bytes / 1e6:.2f} MB (fp32 {q.fp32_bytes / 1e6:.2f} MB); cosine vs fp32 on "
              f"{q.images} held-out crops: min {q.min_cosine:.5f}, mean {q.mean_cosine:.5f}"
              + ("" if q.meets_target else "  (below the 0.99 target)"))
        threads = f"{q.threads} threads" if q.threads else "default threads"
        for s in q.speed:
            print(f"int8 speed (ONNX Runtime, {threads}, batch {s.batch}): {s.int8_ms:.2f} ms vs fp32 "
                  f"{s.fp32_ms:.2f} ms ({s.speedup:.2f}x)")
    return 0
