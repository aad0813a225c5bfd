"""Every value a SQLite routing log stores, column by column, for privacy checks.

A test that no prompt text is stored must look at what the log keeps (each column of each row of
each table), not search the file's bytes: random ids, salts and hashes are in the file too, and a
short secret can turn up in them by chance.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path


def stored_texts(path: Path) -> list[tuple[str, str, str]]:
    """``(table, column, value)`` for every non-NULL value in every table of the SQLite file at
    ``path``, as text (numbers too, so that nothing is left out)."""
    found = []
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cursor = db.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row):
                    if value is None:
                        continue
                    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                    found.append((table, column, text))
    return found


def columns_containing(path: Path, fragment: str) -> list[tuple[str, str]]:
    """The ``(table, column)`` pairs of the log at ``path`` whose stored value contains
    ``fragment``."""
    return [(t, c) for t, c, value in stored_texts(path) if fragment in value]
