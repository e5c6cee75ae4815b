"""``facelivt serve``: the face-recognition HTTP service (:mod:`facelivt.serve`), and ``facelivt serve keys``
(:mod:`facelivt.cli.serve_keys`), its API keys."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from facelivt.cli import serve_keys
from facelivt.cli.options import add_device, add_json, add_quiet
from facelivt.deploy.optimize import BACKENDS
from facelivt.serve.config import ServeConfig
from facelivt.serve.runner import Listening, serve


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="the face-recognition HTTP service (API, web page) and its API keys",
        description="Serve detect / embed / verify / galleries / identify over HTTP (OpenAPI docs at /docs, a web "
                    "page at /, Prometheus metrics at /metrics), the model loaded once per worker and the faces of "
                    "concurrent requests embedded in one model call. Without an active API key (`facelivt serve "
                    "keys create`) it needs none and listens on this machine only. `facelivt serve keys` manages "
                    "the keys.")
    p.add_argument("--model", default=None, help="model variant, see `facelivt models` (default: the weights' model)")
    p.add_argument("--weights", default=None, metavar="WEIGHTS",
                   help="model weights: a file, a pretrained name or a remote reference (default: the pretrained "
                        "weights of --model)")
    p.add_argument("--gallery", default="galleries", metavar="ROOT",
                   help="the galleries: a folder holding one folder per gallery, or a postgresql:// URL (default: "
                        "./galleries)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; any other needs an "
                                                        "active API key)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: a free one, printed)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="server processes, each with its own model (default 1)")
    p.add_argument("--max-batch", type=int, default=32, help="most face crops in one model call (default 32; 1: no "
                                                             "micro-batching)")
    p.add_argument("--max-wait-ms", type=float, default=20.0,
                   help="under load, how long a batch waits for the requests it expects (those in flight when the last "
                        "model call ended), in ms from when the model is free (default 20); an idle server does not wait")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request body in MiB (default 20)")
    p.add_argument("--max-pixels", type=int, default=40_000_000,
                   help="largest image in pixels, refused from its header before decoding (default 40000000)")
    p.add_argument("--max-faces", type=int, default=20, help="most faces in one photo (default 20)")
    p.add_argument("--request-timeout", type=float, default=30.0, help="seconds before a request gets 504 (default 30)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow browser pages from ORIGIN (repeatable; default: CORS off)")
    p.add_argument("--keys", metavar="FILE", default=None,
                   help="the API key store (default: serve-keys.sqlite in FACELIVT_HOME)")
    p.add_argument("--audit-log", metavar="FILE", default=None,
                   help="append a JSON line per enrol / rename / delete / refused key to FILE (default: the log only)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="how the model runs (optimize_for_inference; default auto: the fastest that works here)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per worker (default: torch's choice)")
    add_device(p)
    add_quiet(p, "no start-up line and no log lines below warnings")
    add_json(p, "print the start-up record {url, host, port, pid, workers, keys} as one JSON line on stdout")
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="serve_command", metavar="ACTION")
    actions.required = False
    serve_keys.register(actions)


def config_of(args: argparse.Namespace) -> ServeConfig:
    return ServeConfig(
        model=args.model, weights=args.weights, gallery=args.gallery, host=args.host, port=args.port,
        workers=args.workers, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_upload_mb=args.max_upload_mb,
        max_pixels=args.max_pixels, max_faces=args.max_faces, request_timeout=args.request_timeout,
        cors_origins=tuple(args.cors_origin), keys=args.keys, audit_log=args.audit_log, backend=args.backend,
        device=args.device, threads=args.threads, quiet=args.quiet, json=args.json)


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    if not config.quiet:
        logging.getLogger("facelivt.serve").setLevel(logging.INFO)
        _log_to_stderr()

    def announce(where: Listening) -> None:
        if config.json:
            print(json.dumps(where.to_dict()), flush=True)
        elif not config.quiet:
            keys = "API keys required" if where.keys else "no API key: this machine only"
            print(f"facelivt serve: listening on {where.url} ({config.workers} worker(s), {keys}; docs at "
                  f"{where.url}/docs)", flush=True)

    return serve(config, announce)


def _log_to_stderr() -> None:
    """The service's info lines (model, audit) on stderr."""
    logger = logging.getLogger("facelivt.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        logger.addHandler(handler)
        logger.propagate = False  # its warnings once, here
