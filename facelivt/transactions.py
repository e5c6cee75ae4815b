"""One SQLite transaction, committed when its block ends and rolled back when it raises: the one way
the project's SQLite files (the gallery database, the service's key store) change."""
from __future__ import annotations

import contextlib
import sqlite3
from typing import Iterator


@contextlib.contextmanager
def sqlite_transaction(con: sqlite3.Connection, immediate: bool = False) -> Iterator[sqlite3.Connection]:
    """``BEGIN`` (``BEGIN IMMEDIATE`` with ``immediate``: the write lock now, so two writers wait for
    each other instead of failing at their first write) on ``con`` (opened with ``isolation_level=None``),
    ``COMMIT`` after the block; any exception rolls back and is raised again."""
    con.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
        raise
