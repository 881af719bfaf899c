"""Rows into a PostgreSQL table: by binary COPY, typed by the table's own columns (a third
less of our CPU than text COPY and nothing for the server to parse: benchmarks/ledger.py),
or, for a handful of rows, as typed arrays that a single statement can upsert from.
A jsonb column takes the Python value itself (psycopg serializes it)."""
from __future__ import annotations

from collections.abc import Iterable

import psycopg

__all__ = ["column_types", "copy_rows", "execute_bound", "unnest"]

# table -> column -> (type oid, SQL type). A table's types change only by a migration, which
# restarts the processes; reading them once saves a round trip per write.
_TYPES: dict[str, dict[str, tuple[int, str]]] = {}


def column_types(cursor, table: str, columns: tuple[str, ...]) -> list[tuple[int, str]]:
    """(type oid, SQL type) of each of `columns`. `cursor`: a Django cursor."""
    types = _TYPES.get(table)
    if types is None or not all(column in types for column in columns):
        cursor.execute("SELECT attname, atttypid, format_type(atttypid, atttypmod) FROM pg_attribute "
                       "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped", [table])
        types = _TYPES[table] = {name: (oid, sql) for name, oid, sql in cursor.fetchall()}
    return [types[column] for column in columns]


def copy_rows(cursor, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
    """`cursor`: a Django cursor. Each row's values in `columns` order."""
    types = column_types(cursor, table, columns)
    with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([oid for oid, _ in types])
        for row in rows:
            copy.write_row(row)


def execute_bound(cursor, sql: str, params: list) -> list[tuple]:
    """Run `sql` with its parameters bound on the server, and return the rows it returns.
    Django's psycopg cursor binds on the client: it would quote every element of the arrays
    of `unnest` into the statement's text, for the server to parse again."""
    with psycopg.Cursor(cursor.connection) as bound:
        bound.execute(sql, params)
        return bound.fetchall() if bound.description else []


def unnest(types: list[tuple[int, str]], rows: list[tuple]) -> tuple[str, list[list]]:
    """`unnest(%s::type[], ...)` over `rows` (column_types() of their columns) and its
    parameters, one array per column: a statement of the same text whatever the number of
    rows, which psycopg parses once per process (a VALUES list of the same rows is a new
    statement each time, whose parse cost more of our CPU than the server spent running it).
    For a few rows one statement is cheaper than a staging table's create, truncate and COPY.
    `rows` is not empty (a write of nothing sends no statement)."""
    arrays = ", ".join(f"%s::{sql}[]" for _, sql in types)
    return f"unnest({arrays})", [list(column) for column in zip(*rows)]
