"""Passage texts and document metadata in SQLite, keyed by the FAISS vector id.

A snapshot's database is written once and then only read (opened `immutable`), so readers need
no locks and a deleted snapshot keeps serving through its open file.
"""

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lethe.retrieval.documents import Document
from lethe.retrieval.errors import IndexCorrupt
from lethe.retrieval.passages import Passage

FilterValue = str | int | float | bool
MetadataFilter = Mapping[str, FilterValue | Sequence[FilterValue]]
"""Equality filters, ANDed: `{"lang": "en", "year": [2020, 2021]}`. A list means any of.
`doc_id`, `source` and `title` match those fields; other keys match `metadata` entries (a list
entry matches when any of its elements is equal). A client's filter is checked by
`filters.check_filter` first."""

_COLUMNS = {"doc_id": "d.doc_id", "source": "d.source", "title": "d.title"}

SCHEMA = """
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY,
    title TEXT,
    source TEXT,
    metadata TEXT NOT NULL
);
CREATE TABLE passages (
    key INTEGER PRIMARY KEY AUTOINCREMENT,  -- the FAISS id; never reused after a delete
    id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id),
    ord INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX passages_by_doc ON passages(doc_id);
"""


def create_database(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.executescript(SCHEMA)
    connection.close()


class PassageWriter:
    """Changes one (new, private) snapshot database inside a single transaction."""

    def __init__(self, path: Path):
        self._connection = sqlite3.connect(path, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=DELETE")
        self._connection.execute("BEGIN")

    def existing_documents(self, doc_ids: Iterable[str]) -> list[str]:
        return _existing(lambda sql, chunk: self._connection.execute(sql, chunk).fetchall(), list(doc_ids))

    def delete_documents(self, doc_ids: Sequence[str]) -> list[int]:
        """Delete documents and their passages; returns the vector ids that went with them."""
        keys: list[int] = []
        for start in range(0, len(doc_ids), 500):
            chunk = list(doc_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._connection.execute(f"SELECT key FROM passages WHERE doc_id IN ({marks})", chunk)
            keys.extend(row[0] for row in rows)
            self._connection.execute(f"DELETE FROM passages WHERE doc_id IN ({marks})", chunk)
            self._connection.execute(f"DELETE FROM documents WHERE doc_id IN ({marks})", chunk)
        return keys

    def insert(self, documents: Sequence[Document], passages: Sequence[Passage]) -> list[int]:
        """Insert documents and their passages; returns the new vector ids, in passage order."""
        self._connection.executemany(
            "INSERT INTO documents (doc_id, title, source, metadata) VALUES (?, ?, ?, ?)",
            [(d.id, d.title, d.source, json.dumps(d.metadata)) for d in documents],
        )
        ordinals = {}
        keys = []
        for passage in passages:
            ordinal = ordinals.get(passage.doc_id, 0)
            ordinals[passage.doc_id] = ordinal + 1
            cursor = self._connection.execute(
                "INSERT INTO passages (id, doc_id, ord, start, end, text) VALUES (?, ?, ?, ?, ?, ?)",
                (passage.id, passage.doc_id, ordinal, passage.start, passage.end, passage.text),
            )
            keys.append(int(cursor.lastrowid or 0))
        return keys

    def counts(self) -> tuple[int, int]:
        documents = self._connection.execute("SELECT count(*) FROM documents").fetchone()[0]
        passages = self._connection.execute("SELECT count(*) FROM passages").fetchone()[0]
        return int(documents), int(passages)

    def commit(self) -> None:
        self._connection.execute("COMMIT")
        self._connection.close()

    def abort(self) -> None:
        self._connection.close()


def _existing(query: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]], ids: list[str]) -> list[str]:
    """The ids found in `documents`, asked 500 at a time (under SQLite's parameter limit)."""
    found: list[str] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = query(f"SELECT doc_id FROM documents WHERE doc_id IN ({marks})", chunk)
        found.extend(row[0] for row in rows)
    return found


class PassageReader:
    """Read-only view of one snapshot database, safe to share between threads."""

    def __init__(self, path: Path):
        if not path.is_file():
            raise IndexCorrupt(f"missing passage database {path}")
        uri = f"file:{path}?mode=ro&immutable=1"
        try:
            self._connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._connection.execute("SELECT count(*) FROM passages").fetchone()
        except sqlite3.DatabaseError as error:
            raise IndexCorrupt(f"cannot read passage database {path}: {error}") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._connection.close()

    def _query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connection.execute(sql, parameters).fetchall()

    def passages(self, keys: Sequence[int]) -> dict[int, Passage]:
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        rows = self._query(
            "SELECT p.key, p.id, p.doc_id, p.text, p.start, p.end, d.title, d.source, d.metadata "
            "FROM passages p JOIN documents d ON d.doc_id = p.doc_id "
            f"WHERE p.key IN ({marks})",
            [int(k) for k in keys],
        )
        return {
            row[0]: Passage(
                id=row[1],
                doc_id=row[2],
                text=row[3],
                start=row[4],
                end=row[5],
                title=row[6],
                source=row[7],
                metadata=json.loads(row[8]),
            )
            for row in rows
        }

    def document_ids(self) -> list[str]:
        return [row[0] for row in self._query("SELECT doc_id FROM documents ORDER BY doc_id")]

    def existing_documents(self, doc_ids: Iterable[str]) -> list[str]:
        """Which of `doc_ids` this snapshot holds."""
        return _existing(self._query, list(doc_ids))

    def counts(self) -> tuple[int, int]:
        documents = self._query("SELECT count(*) FROM documents")[0][0]
        passages = self._query("SELECT count(*) FROM passages")[0][0]
        return int(documents), int(passages)

    def keys_matching(self, where: MetadataFilter) -> list[int]:
        """Vector ids of the passages whose document matches every filter entry."""
        clauses, parameters = _filter_sql(where)
        sql = "SELECT p.key FROM passages p JOIN documents d ON d.doc_id = p.doc_id"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return [row[0] for row in self._query(sql, parameters)]


def _filter_sql(where: MetadataFilter) -> tuple[list[str], list[Any]]:
    """SQL for a filter that `filters.check_filter` accepted (keys without quotes, scalar values,
    few enough parameters for SQLite)."""
    clauses: list[str] = []
    parameters: list[Any] = []
    for key, wanted in where.items():
        values = list(wanted) if isinstance(wanted, list | tuple) else [wanted]
        marks = ",".join("?" * len(values))
        if key in _COLUMNS:
            clauses.append(f"{_COLUMNS[key]} IN ({marks})")
        else:
            # json_each yields the value itself for a scalar, or each element of a list.
            clauses.append(
                "EXISTS (SELECT 1 FROM json_each(d.metadata, ?) AS m "
                f"WHERE m.type NOT IN ('object', 'array') AND m.value IN ({marks}))"
            )
            parameters.append(f'$."{key}"')
        parameters.extend(values)
    return clauses, parameters
