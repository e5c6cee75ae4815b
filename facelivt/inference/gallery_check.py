"""What can be wrong in a gallery database, and the repair (``facelivt gallery check [--repair]``).

facelivt itself never leaves these rows: each comes from editing the file with another tool.

- Embeddings whose identity is gone. The schema deletes an identity's embeddings with it
  (``ON DELETE CASCADE``, and facelivt turns foreign keys on for every connection), but the
  ``sqlite3`` tool and Python's ``sqlite3`` leave foreign keys off unless told, so a ``DELETE FROM
  identities`` there leaves the embeddings behind. Repair deletes them.
- Embeddings that are not ``dim`` finite float32 values with a non-zero norm. Repair deletes them.
- Identities without an embedding (not searchable). Repair deletes them.
- Damage SQLite itself finds (``PRAGMA quick_check``). Not repairable here: restore a copy.

The functions work on an open connection inside the caller's transaction.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import numpy as np

#: Embeddings read at a time by the vector check.
CHUNK = 4096


@dataclass(frozen=True)
class GalleryProblem:
    """One kind of inconsistent row: ``count`` rows of ``table`` (their ``ids``) that a repair deletes;
    ``table`` is None for damage that cannot be repaired here."""

    kind: str
    count: int
    description: str
    table: str | None = None
    ids: tuple[int, ...] = ()

    def __str__(self) -> str:
        return self.description


def find_problems(con: sqlite3.Connection, dim: int) -> list[GalleryProblem]:
    """Everything wrong in the gallery open on ``con`` (to be called inside one transaction)."""
    damage = damaged(con)
    if damage is not None:  # the rows below cannot be trusted
        return [damage]
    found = (orphaned_embeddings(con), unusable_embeddings(con, dim), empty_identities(con))
    return [p for p in found if p is not None]


def repair(con: sqlite3.Connection, dim: int) -> list[GalleryProblem]:
    """Delete the inconsistent rows (inside the caller's write transaction); returns what was removed.
    A file SQLite finds damaged is left alone (:func:`find_problems` reports it)."""
    if damaged(con) is not None:
        return []
    removed = []
    for check in (orphaned_embeddings, lambda c: unusable_embeddings(c, dim), empty_identities):
        problem = check(con)  # in this order: deleting embeddings can leave an identity with none
        if problem is not None:
            con.executemany(f"DELETE FROM {problem.table} WHERE id = ?", [(i,) for i in problem.ids])
            removed.append(problem)
    return removed


def damaged(con: sqlite3.Connection) -> GalleryProblem | None:
    lines = [str(r[0]) for r in con.execute("PRAGMA quick_check")]
    if lines == ["ok"]:
        return None
    return GalleryProblem("damaged", len(lines), f"SQLite finds the file damaged ({'; '.join(lines[:3])}): "
                          "restore a copy of the gallery, or enroll again")


def orphaned_embeddings(con: sqlite3.Connection) -> GalleryProblem | None:
    rows = con.execute("SELECT e.id, e.identity_id FROM embeddings e LEFT JOIN identities i "
                       "ON i.id = e.identity_id WHERE i.id IS NULL ORDER BY e.id").fetchall()
    if not rows:
        return None
    return GalleryProblem("orphaned embeddings", len(rows), orphans_text(len(rows), [r[1] for r in rows]),
                          "embeddings", tuple(r[0] for r in rows))


def orphans_text(count: int, owners) -> str:
    """How embeddings without their identity are described (also by the gallery's own open)."""
    ids = sorted({int(i) for i in owners})
    shown = ", ".join(map(str, ids[:10])) + (", ..." if len(ids) > 10 else "")
    return (f"{count} embeddings belong to no identity (identity id {shown} was deleted without its "
            "embeddings, as the sqlite3 tool does with foreign keys off)")


def unusable_embeddings(con: sqlite3.Connection, dim: int) -> GalleryProblem | None:
    bad = [r[0] for r in con.execute("SELECT id FROM embeddings WHERE typeof(vector) != 'blob' OR length(vector) != ?",
                                     (4 * dim,))]
    cursor = con.execute("SELECT id, vector FROM embeddings WHERE typeof(vector) = 'blob' AND length(vector) = ? "
                         "ORDER BY id", (4 * dim,))
    while rows := cursor.fetchmany(CHUNK):
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(-1, dim)
        usable = np.isfinite(vectors).all(1) & (np.abs(vectors).sum(1) > 0)
        bad.extend(r[0] for r, ok in zip(rows, usable) if not ok)
    if not bad:
        return None
    return GalleryProblem("unusable embeddings", len(bad), f"{len(bad)} embeddings are not {dim} finite float32 "
                          "values with a non-zero norm", "embeddings", tuple(sorted(bad)))


def empty_identities(con: sqlite3.Connection) -> GalleryProblem | None:
    rows = con.execute("SELECT id, name FROM identities WHERE id NOT IN (SELECT identity_id FROM embeddings) "
                       "ORDER BY id").fetchall()
    if not rows:
        return None
    names = ", ".join(str(r[1]) for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
    return GalleryProblem("empty identities", len(rows), f"{len(rows)} identities have no embedding and cannot be "
                          f"found ({names})", "identities", tuple(r[0] for r in rows))
