"""``facelivt serve``: the face-recognition service. Placeholder of helper KEYS holding the ``keys``
sub-command only (:mod:`facelivt.cli.serve_keys`); helper SERVER's module replaces it."""
from __future__ import annotations

from facelivt.cli import serve_keys


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="the face-recognition HTTP service and its API keys",
                              description="Run the face-recognition HTTP service; `facelivt serve keys` manages its "
                                          "API keys.")
    actions = p.add_subparsers(dest="serve_command", metavar="ACTION")
    actions.required = True
    serve_keys.register(actions)
