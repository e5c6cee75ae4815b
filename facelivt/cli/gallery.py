"""``facelivt gallery ACTION GALLERY``: look after a gallery folder without a model.

Actions (each one function pair: ``add_ACTION`` builds its parser, ``run_ACTION`` runs it; add new ones
to :data:`ACTIONS`):

- ``check GALLERY [--repair]``: report rows that make the gallery unusable (embeddings of deleted
  identities, unusable embeddings, identities without embeddings, SQLite damage); ``--repair`` deletes
  the inconsistent rows in one transaction. Exit code 0: nothing wrong (or all of it repaired);
  1: problems remain; 2: not a gallery, or it cannot be read or written.
"""
from __future__ import annotations

import argparse
import json

from facelivt.cli.options import add_json
from facelivt.inference import GalleryCheck, check_gallery


def add_check(actions) -> None:
    p = actions.add_parser(
        "check",
        help="report (and with --repair remove) inconsistent rows of a gallery",
        description="Check a gallery folder for rows left by editing its database with other tools: embeddings "
                    "whose identity was deleted (the sqlite3 tool leaves foreign keys off), embeddings that are not "
                    "finite vectors of the gallery's size, identities without embeddings; and damage SQLite finds. "
                    "Read-only unless --repair. Exit code 0: no problem (or all repaired), 1: problems remain.",
    )
    p.add_argument("gallery", help="gallery folder (holds gallery.sqlite)")
    p.add_argument("--repair", action="store_true", help="delete the inconsistent rows (one transaction)")
    add_json(p, "print the outcome (counts, problems, rows removed) as JSON on stdout")
    p.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    result = check_gallery(args.gallery, repair=args.repair)
    if args.json:
        print(json.dumps({"gallery": args.gallery, "identities": result.identities, "embeddings": result.embeddings,
                          "problems": [_problem(p) for p in result.problems],
                          "repaired": [_problem(p) for p in result.repaired]}))
        return 1 if result.problems else 0
    for problem in result.repaired:
        print(f"removed: {problem}")
    for problem in result.problems:
        print(f"problem: {problem}")
    print(summary(result, args.gallery))
    if result.problems and any(p.table for p in result.problems):
        print(f"run `facelivt gallery check {args.gallery} --repair` to remove the inconsistent rows")
    return 1 if result.problems else 0


def _problem(problem) -> dict:
    return {"kind": problem.kind, "count": problem.count, "description": problem.description}


def summary(result: GalleryCheck, folder: str) -> str:
    state = f"{len(result.problems)} problem(s)" if result.problems else "no problems"
    return f"gallery {folder}: {result.identities} identities, {result.embeddings} embeddings; {state}"


#: The actions of ``facelivt gallery``, in the order --help lists them.
ACTIONS = (add_check,)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "gallery",
        help="look after a gallery folder (check, repair)",
        description="Look after a gallery folder made by `facelivt enroll`; no model is loaded.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for add in ACTIONS:
        add(actions)
