"""``facelivt serve keys create|list|revoke``: the API keys of ``facelivt serve`` (see
:mod:`facelivt.serve.keys`). Registered under ``serve`` by :mod:`facelivt.cli.serve`.

- ``create --name NAME [--scope read|write] [--gallery G]``: a new key; its token (the secret) is printed
  once and cannot be shown again.
- ``list``: every key (id, name, scope, gallery, created, active or revoked); never a secret.
- ``revoke KEY_ID``: refuse that key from now on (it stays listed as revoked).

Each takes ``--keys FILE`` (default ``FACELIVT_HOME/serve-keys.sqlite``, the file ``facelivt serve`` reads)
and ``--json``.
"""
from __future__ import annotations

import argparse
import json
import sys

from facelivt.cli.options import add_json
from facelivt.serve.keys import SCOPES, ApiKey, KeyStore, default_keys_path


def register(subparsers) -> None:
    """Add ``keys`` (with ``create``, ``list``, ``revoke``) to the sub-commands of ``serve``."""
    p = subparsers.add_parser(
        "keys", help="create, list and revoke the server's API keys",
        description="Manage the API keys of `facelivt serve`. Keys are stored hashed (SHA-256 of a 256-bit random "
                    "secret) in an SQLite file only its owner can read. A key's scope is read (detect, embed, "
                    "verify, identify, list) or write (also enrol, rename, delete); it may be limited to one "
                    "gallery. While the file holds no active key the server needs none and listens on 127.0.0.1 "
                    "only.")
    actions = p.add_subparsers(dest="keys_command", metavar="ACTION")
    actions.required = True
    for add in (_add_create, _add_list, _add_revoke):
        add(actions)


def _add_keys_file(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys", metavar="FILE", default=None,
                   help="the key store file (default: serve-keys.sqlite in FACELIVT_HOME, ~/.cache/facelivt)")


def _store(args: argparse.Namespace) -> KeyStore:
    return KeyStore(args.keys if args.keys else default_keys_path())


def _add_create(actions) -> None:
    p = actions.add_parser("create", help="a new API key (its secret is printed once)",
                           description="Create an API key and print its token once: it cannot be shown again "
                                       "(only its hash is stored). Give it to the client as the `x-api-key` header "
                                       "or `Authorization: Bearer TOKEN`.")
    p.add_argument("--name", required=True, help="what the key is for (1 to 200 characters), shown by `keys list`")
    p.add_argument("--scope", choices=SCOPES, default="read",
                   help="read: detect, embed, verify, identify, list; write: also enrol, rename, delete (default read)")
    p.add_argument("--gallery", metavar="G", default=None, help="limit the key to gallery G (default: every gallery)")
    _add_keys_file(p)
    add_json(p, "print the key and its token as one JSON object on stdout")
    p.set_defaults(func=run_create)


def run_create(args: argparse.Namespace) -> int:
    store = _store(args)
    key, token = store.create(args.name, scope=args.scope, gallery=args.gallery)
    if args.json:
        print(json.dumps({**key.to_dict(), "token": token, "keys": str(store.path)}))
    else:
        print(f"created {_describe(key)} in {store.path}")
        print(f"token: {token}")
    print("note: the token is shown only now and cannot be shown again: keep it safe "
          "(lost: revoke this key and create another)", file=sys.stderr)
    return 0


def _add_list(actions) -> None:
    p = actions.add_parser("list", help="the API keys, revoked ones included (never their secrets)",
                           description="List every API key of the store: id, name, scope, gallery, when created, "
                                       "active or revoked. Secrets are not stored and cannot be listed.")
    _add_keys_file(p)
    add_json(p, "one JSON object on stdout")
    p.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    store = _store(args)
    keys = store.list()
    if args.json:
        print(json.dumps({"keys_file": str(store.path), "keys": [k.to_dict() for k in keys]}))
        return 0
    width = max([len(k.name) for k in keys] + [4])
    print(f"{'id':<12}  {'name':<{width}}  scope  {'gallery':<10}  {'created':<20}  state")
    for k in keys:
        state = "revoked" if k.revoked else "active"
        print(f"{k.id:<12}  {k.name:<{width}}  {k.scope:<5}  {k.gallery or '(all)':<10}  {k.created:<20}  {state}")
    active = sum(not k.revoked for k in keys)
    print(f"{len(keys)} keys, {active} active, in {store.path}"
          + ("" if active else " (without an active key the server needs none and listens on 127.0.0.1 only)"),
          file=sys.stderr)
    return 0


def _add_revoke(actions) -> None:
    p = actions.add_parser("revoke", help="refuse an API key from now on",
                           description="Revoke an API key: every request with it is refused from now on (running "
                                       "servers read the store on each request). It stays listed as revoked.")
    p.add_argument("key_id", metavar="KEY_ID", help="the key's id (12 hex digits, as `keys list` shows)")
    _add_keys_file(p)
    add_json(p, "print the revoked key as one JSON object on stdout")
    p.set_defaults(func=run_revoke)


def run_revoke(args: argparse.Namespace) -> int:
    store = _store(args)
    key = store.revoke(args.key_id)
    if args.json:
        print(json.dumps(key.to_dict()))
    else:
        print(f"revoked {_describe(key)}")
    return 0


def _describe(key: ApiKey) -> str:
    where = f"gallery {key.gallery}" if key.gallery else "every gallery"
    return f"key {key.id} ({key.name!r}, scope {key.scope}, {where})"
