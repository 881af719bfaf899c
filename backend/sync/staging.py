"""The writers' PostgreSQL path: a page of rows COPied into a temporary table, then stored by
one `INSERT ... SELECT ... ON CONFLICT DO UPDATE` from it.

Django's `bulk_create(update_conflicts=True)` spends most of its time in Python: a model
instance per row, and psycopg quoting a VALUES list of 20 columns x 1,000 rows per
statement. COPY takes the rows as plain tuples in text form; the one statement after it
does the upsert, skips the rows whose stored copy is already the same (an unchanged row is
not rewritten, so a re-sync writes nothing), and answers the counts itself: rows inserted,
rows rewritten, rows whose history fields changed and the earliest time such a row stood
(old or new). Every statement of the page runs in one transaction; the staging table is
per session, emptied at every page and at every commit.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from django.db import connection as db, transaction


@dataclass(frozen=True)
class Target:
    """A table the sync writes, keyed on (connection_id, broker_id)."""

    table: str
    columns: tuple[str, ...]            # the order of each row's values; broker_id first
    history: tuple[str, ...] = ()       # a stored row that differs in these has changed history
    time_column: str = ""               # ... from the earlier of its old and new times

    @cached_property
    def stage(self) -> str:
        return f"stage_{self.table}"

    @cached_property
    def prepare_sql(self) -> str:
        # CREATE ... AS SELECT ... WITH NO DATA: the same column types as the table (numeric's
        # scale rounds on the way in, so stored and new copies compare alike), no constraints.
        return (f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} ON COMMIT DELETE ROWS AS "
                f"SELECT {', '.join(self.columns)} FROM {self.table} WITH NO DATA; TRUNCATE {self.stage}")

    @cached_property
    def copy_sql(self) -> str:
        return f"COPY {self.stage} ({', '.join(self.columns)}) FROM STDIN"

    @cached_property
    def upsert_sql(self) -> str:
        stored = ["portfolio_id", *self.columns[1:]]        # what a new copy may change
        inserted = "connection_id, portfolio_id, " + ", ".join(self.columns) + ", first_seen_at, updated_at"
        values = "%(connection)s, %(portfolio)s, " + ", ".join(f"s.{c}" for c in self.columns) + ", %(now)s, %(now)s"
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in [*stored, "updated_at"])
        old, new = _row("t", stored), _row("EXCLUDED", stored)
        returned = ", ".join(f"t.{c}" for c in dict.fromkeys(("broker_id", *self.history,
                                                              *filter(None, [self.time_column]))))
        write = (f"INSERT INTO {self.table} AS t ({inserted}) SELECT {values} FROM {self.stage} s "
                 f"ON CONFLICT (connection_id, broker_id) DO UPDATE SET {sets} "
                 f"WHERE {old} IS DISTINCT FROM {new} "
                 f"RETURNING {returned}, (t.xmax = 0) AS inserted")
        if not self.history:
            return (f"WITH written AS ({write}) SELECT count(*) FILTER (WHERE inserted), "
                    f"count(*) FILTER (WHERE NOT inserted), 0, NULL FROM written")
        # The main query reads the table in the snapshot the INSERT started from: `o` is the
        # stored row as it was before this statement, `w` the row as written. LIMIT 1 keeps
        # the lookup a probe of the unique index per written row: joined plainly, the planner
        # may hash the connection's whole history for every page (a 200,000-row backfill
        # then reads its table again at every checkpoint).
        old = ", ".join(dict.fromkeys((*self.history, self.time_column)))
        moved = f"{_row('o', self.history)} IS DISTINCT FROM {_row('w', self.history)}"
        first = f"LEAST(w.{self.time_column}, o.{self.time_column})"
        return (f"WITH written AS ({write}) "
                f"SELECT count(*) FILTER (WHERE w.inserted), count(*) FILTER (WHERE NOT w.inserted), "
                f"count(*) FILTER (WHERE NOT w.inserted AND {moved}), "
                f"min({first}) FILTER (WHERE w.inserted OR {moved}) "
                f"FROM written w LEFT JOIN LATERAL (SELECT {old} FROM {self.table} "
                f"WHERE connection_id = %(connection)s AND broker_id = w.broker_id LIMIT 1) o ON true")


@dataclass(frozen=True)
class Written:
    created: int
    rewritten: int                      # stored rows that differed from the new copy
    changed: int                        # ... in a history field
    earliest_changed: datetime | None


def _row(alias: str, columns: Iterable[str]) -> str:
    return "ROW(" + ", ".join(f"{alias}.{c}" for c in columns) + ")"


def upsert(target: Target, *, connection_id: int, portfolio_id: int, now: datetime,
           rows: Iterable[tuple]) -> Written:
    """Store `rows` (tuples in `target.columns` order, one per broker id: ON CONFLICT cannot
    touch the same row twice in one statement)."""
    params = {"connection": connection_id, "portfolio": portfolio_id, "now": now}
    # savepoint=False: inside the caller's transaction this adds nothing; outside one it makes
    # the page's statements one transaction (the staging rows live until its commit).
    with transaction.atomic(savepoint=False), db.cursor() as cursor:
        cursor.execute(target.prepare_sql)
        with cursor.cursor.copy(target.copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(target.upsert_sql, params)
        created, rewritten, changed, earliest = cursor.fetchone()
    return Written(created=created, rewritten=rewritten, changed=changed, earliest_changed=earliest)
