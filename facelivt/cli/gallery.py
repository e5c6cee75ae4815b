"""``facelivt gallery ACTION GALLERY``: look after a gallery (a folder, or a PostgreSQL URL) without a model.

Actions (each one function pair: ``add_ACTION`` builds its parser, ``run_ACTION`` runs it; add new ones
to :data:`ACTIONS`):

- ``check GALLERY [--repair]``: report rows that make the gallery unusable (embeddings of deleted
  identities, unusable embeddings, identities without embeddings, SQLite damage); ``--repair`` deletes
  the inconsistent rows in one transaction. Exit code 0: nothing wrong (or all of it repaired);
  1: problems remain; 2: not a gallery, or it cannot be read or written.
- ``list GALLERY [--json]``: the identities with their embedding and photo counts.
- ``show GALLERY NAME [--json]``: one identity: counts, dates, the photos it was enrolled from.
- ``rename GALLERY OLD NEW``: rename an identity (a name the gallery has is refused).
- ``remove GALLERY NAME...``: delete identities and their embeddings for good (one transaction each,
  then the database is rewritten without them: ``VACUUM``, write-ahead log emptied).
- ``export GALLERY --out FILE.npz``: every embedding with its identity and photo, as a NumPy archive.

Reading actions open the gallery read-only (a read-only folder will do); writing ones in a read-only
folder fail with the gallery's "cannot write" error, leaving it as it was.
"""
from __future__ import annotations

import argparse
import json
import sys

from facelivt.cli.options import add_json
from facelivt.files import check_not_input
from facelivt.inference import Gallery, GalleryCheck, GalleryNotFoundError, check_gallery
from facelivt.inference.gallery_pg import check_pg_gallery, is_pg_url, shown

GALLERY_HELP = "gallery folder (holds gallery.sqlite), or a PostgreSQL URL postgresql://user@host:port/db?gallery=NAME"


def add_check(actions) -> None:
    p = actions.add_parser(
        "check",
        help="report (and with --repair remove) inconsistent rows of a gallery",
        description="Check a gallery folder for rows left by editing its database with other tools: embeddings "
                    "whose identity was deleted (the sqlite3 tool leaves foreign keys off), embeddings that are not "
                    "finite vectors of the gallery's size, identities without embeddings; and damage SQLite finds. "
                    "Read-only unless --repair. Exit code 0: no problem (or all repaired), 1: problems remain.",
    )
    p.add_argument("gallery", help=GALLERY_HELP)
    p.add_argument("--repair", action="store_true", help="delete the inconsistent rows (one transaction)")
    add_json(p, "print the outcome (counts, problems, rows removed) as JSON on stdout")
    p.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    where = shown(args.gallery)
    if is_pg_url(args.gallery):
        result = check_pg_gallery(args.gallery, repair=args.repair)
    else:
        result = check_gallery(args.gallery, repair=args.repair)
    if args.json:
        print(json.dumps({"gallery": where, "identities": result.identities, "embeddings": result.embeddings,
                          "problems": [_problem(p) for p in result.problems],
                          "repaired": [_problem(p) for p in result.repaired]}))
        return 1 if result.problems else 0
    for problem in result.repaired:
        print(f"removed: {problem}")
    for problem in result.problems:
        print(f"problem: {problem}")
    print(summary(result, where))
    if result.problems and any(p.table for p in result.problems):
        quoted = f"'{where}'" if is_pg_url(args.gallery) else where
        print(f"run `facelivt gallery check {quoted} --repair` to remove the inconsistent rows")
    return 1 if result.problems else 0


def _problem(problem) -> dict:
    return {"kind": problem.kind, "count": problem.count, "description": problem.description}


def summary(result: GalleryCheck, folder: str) -> str:
    state = f"{len(result.problems)} problem(s)" if result.problems else "no problems"
    return f"gallery {folder}: {result.identities} identities, {result.embeddings} embeddings; {state}"


def open_gallery(folder: str, readonly: bool) -> Gallery:
    """The gallery of ``folder`` without a model; a clear error where there is none."""
    try:
        return Gallery.open(folder, readonly=readonly)
    except GalleryNotFoundError:
        raise GalleryNotFoundError(f"no gallery in {shown(folder)} (create one with `facelivt enroll`)") from None


def add_list(actions) -> None:
    p = actions.add_parser("list", help="the identities of a gallery with their counts",
                           description="List the identities of a gallery in enrolment order: embeddings, distinct "
                                       "photos, when added. Read-only.")
    p.add_argument("gallery", help=GALLERY_HELP)
    add_json(p, "one JSON object on stdout")
    p.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    with open_gallery(args.gallery, readonly=True) as g:
        people = g.identities()
    if args.json:
        print(json.dumps({"gallery": shown(args.gallery), "identities": [_brief(p) for p in people]}))
        return 0
    width = max([len(p.name) for p in people] + [8])
    print(f"{'identity':<{width}}  embeddings  photos  added")
    for p in people:
        print(f"{p.name:<{width}}  {p.embeddings:>10}  {p.photos:>6}  {p.added or '-'}")
    print(f"{len(people)} identities, {sum(p.embeddings for p in people)} embeddings", file=sys.stderr)
    return 0


def _brief(info) -> dict:
    out = info.to_dict()
    del out["sources"]
    return out


def add_show(actions) -> None:
    p = actions.add_parser("show", help="one identity of a gallery: counts, dates, photos",
                           description="Show one identity: its embeddings, distinct photos, when it was added and "
                                       "last enrolled, and the photo paths recorded. Read-only.")
    p.add_argument("gallery", help=GALLERY_HELP)
    p.add_argument("name", help="identity name")
    add_json(p, "one JSON object on stdout")
    p.set_defaults(func=run_show)


def run_show(args: argparse.Namespace) -> int:
    with open_gallery(args.gallery, readonly=True) as g:
        info = g.identity(args.name)
        meta = {k: g.metadata[k] for k in ("model", "weights_fingerprint", "flip") if k in g.metadata}
    if args.json:
        print(json.dumps({"gallery": shown(args.gallery), **info.to_dict(), "gallery_metadata": meta}))
        return 0
    print(f"identity: {info.name}\nembeddings: {info.embeddings}\nphotos: {info.photos}\n"
          f"added: {info.added or '-'}\nlast enrolled: {info.updated or '-'}")
    for key, value in meta.items():
        print(f"{key}: {value}")
    for source in info.sources:
        print(f"  {source}")
    return 0


def add_rename(actions) -> None:
    p = actions.add_parser("rename", help="rename an identity of a gallery",
                           description="Rename identity OLD to NEW, in one transaction. A NEW name the gallery "
                                       "has already is refused (remove that identity first).")
    p.add_argument("gallery", help=GALLERY_HELP)
    p.add_argument("old", help="the identity's name now")
    p.add_argument("new", help="its new name")
    add_json(p, "print what was renamed as JSON on stdout")
    p.set_defaults(func=run_rename)


def run_rename(args: argparse.Namespace) -> int:
    with open_gallery(args.gallery, readonly=False) as g:
        g.rename(args.old, args.new)
    if args.json:
        print(json.dumps({"gallery": shown(args.gallery), "renamed": args.old, "to": args.new}))
    else:
        print(f"renamed {args.old!r} to {args.new!r} in {shown(args.gallery)}")
    return 0


def add_remove(actions) -> None:
    p = actions.add_parser("remove", help="delete identities and their embeddings for good",
                           description="Delete identities and all their embeddings from a gallery, one transaction "
                                       "each, then rewrite the database without them (VACUUM, write-ahead log "
                                       "emptied): their data does not stay behind in free pages (a gallery in "
                                       "PostgreSQL: the rows are deleted, their space is reused by PostgreSQL's "
                                       "vacuum; it has no secure erase). Unknown names are refused before anything "
                                       "is deleted.")
    p.add_argument("gallery", help=GALLERY_HELP)
    p.add_argument("names", nargs="+", metavar="NAME", help="identity names")
    add_json(p, "print the identities removed as JSON on stdout")
    p.set_defaults(func=run_remove)


def run_remove(args: argparse.Namespace) -> int:
    with open_gallery(args.gallery, readonly=False) as g:
        names = list(dict.fromkeys(args.names))
        for name in names:
            g.identity(name)  # every name known, before anything is deleted
        for name in names:
            g.remove(name)
            if not args.json:
                print(f"removed {name!r} and its embeddings from {shown(args.gallery)}")
    if args.json:
        print(json.dumps({"gallery": shown(args.gallery), "removed": names}))
    return 0


def add_export(actions) -> None:
    p = actions.add_parser("export", help="write a gallery's embeddings and names to a .npz file",
                           description="Write every embedding of a gallery to the NumPy archive FILE.npz: "
                                       "'embeddings' (N x D float32), 'names' (each row's identity), 'sources' "
                                       "(its photo, '' when not recorded), 'identities', 'metadata' (JSON). "
                                       "Read-only on the gallery; the file is written atomically.")
    p.add_argument("gallery", help=GALLERY_HELP)
    p.add_argument("--out", required=True, metavar="FILE.npz", help="output file (.npz)")
    add_json(p, "print a JSON summary on stdout")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    check_not_input(args.out, {"gallery": [args.gallery, f"{args.gallery}/gallery.sqlite"]})
    with open_gallery(args.gallery, readonly=True) as g:
        g.export(args.out)
        identities, rows, dim = len(g), g.num_embeddings, g.dim
    if args.json:
        print(json.dumps({"file": args.out, "identities": identities, "embeddings": rows, "dim": dim}))
    else:
        print(f"wrote {rows} embeddings of dimension {dim} ({identities} identities) to {args.out}")
    return 0


#: The actions of ``facelivt gallery``, in the order --help lists them.
ACTIONS = (add_list, add_show, add_rename, add_remove, add_export, add_check)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "gallery",
        help="look after a gallery folder: list, show, rename, remove, export, check",
        description="Look after a gallery folder made by `facelivt enroll`; no model is loaded.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for add in ACTIONS:
        add(actions)
