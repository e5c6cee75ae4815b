"""``facelivt download NAME... [--out DIR]``: fetch pretrained or remote weights into the cache, e.g.
to carry them to a machine without internet."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from facelivt.cli.common import WEIGHTS_HELP
from facelivt.cli.options import add_json, add_out_dir, add_quiet
from facelivt.files import check_not_input
from facelivt.models import facelivt_home, fetch_weights


def run(args: argparse.Namespace) -> int:
    home = Path(args.out) if args.out else facelivt_home()
    check_not_input(home, {"NAME": args.names}, holds_input=True)  # a local NAME (refused anyway) kept in the cache
    fetched = []
    for ref in args.names:
        cached = fetch_weights(ref, args.model, progress=not args.quiet, home=home)
        fetched.append({"name": ref, "path": str(cached.path), "sha256": cached.record["sha256"],
                        "revision": cached.record.get("revision")})
        if not args.json:
            print(f"{ref}: {cached.path} ({cached.describe()}, sha256 {cached.record['sha256']})")
    if args.json:
        print(json.dumps({"cache": str(home), "weights": fetched}))
    elif args.out:
        print(f"copy {home} to the other machine and set FACELIVT_HOME to it there, or pass "
              f"--weights {home / 'weights'}/NAME.safetensors")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "download", help="fetch pretrained or remote weights into the cache (for offline machines: --out DIR)",
        description="Download, check (size, sha256, safe loading, strict shapes, finite values) and convert each "
                    "NAME once to safetensors in the facelivt cache (FACELIVT_HOME, default ~/.cache/facelivt), or in "
                    "DIR with --out. Hugging Face settings apply: HF_HOME, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE.")
    p.add_argument("names", nargs="+", metavar="NAME", help=WEIGHTS_HELP.replace("model weights: a file (this project's "
                   ".safetensors or the authors' released .pt), ", "weights to fetch: "))
    add_out_dir(p, "the cache folder to fill instead of FACELIVT_HOME (then copy it and set FACELIVT_HOME=DIR on "
                "the machine without internet)")
    p.add_argument("--model", default=None, help="the model a remote .pt must fit (default: from the file)")
    add_quiet(p)
    add_json(p, "print where each weights file is (path, sha256, revision) as JSON on stdout")
    p.set_defaults(func=run)
