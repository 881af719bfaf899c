"""Engine output -> rows. Upserts on the stable key, so ids (used in URLs) survive recomputes;
a full recompute also deletes what no longer exists. Amounts are stored to the column's 18
places (the engine keeps full Decimal precision until here).

On PostgreSQL rows go through COPY into a temporary table and one INSERT .. ON CONFLICT per
table: building a Django model per row and adapting each value costs ~10x more (measured by
benchmarks/ledger.py). The few rows of an incremental recompute go in one INSERT .. SELECT
FROM unnest(arrays) .. ON CONFLICT per table instead: the staging table's create and
truncate cost more than they save there. SQLite (the zero-setup local database) uses bulk_create.
"""
from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal
from operator import attrgetter

from django.db import connection as db

from backend.core.fields import MONEY_PLACES
from backend.core.pgcopy import column_types, copy_rows, execute_bound, unnest

from . import engine
from .models import Disposal, DisposalLot, Income, Lot

_Q = Decimal(1).scaleb(-MONEY_PLACES)
BATCH = 2000
# Up to this many rows, a PostgreSQL upsert sends them as arrays in one statement
# rather than through a staging table (four): a day's fills, not a history.
FEW_ROWS = 500

LOT_COLUMNS = ("portfolio_id", "key", "asset_id", "connection_id", "transaction_id", "origin", "quantity", "remaining",
               "cost_basis", "acquired_at", "holding_from", "parent_key", "wash_adjustment", "closed_at", "closed_by")
DISPOSAL_COLUMNS = ("portfolio_id", "key", "source_key", "asset_id", "connection_id", "transaction_id", "kind",
                    "disposed_at", "quantity", "proceeds", "cost_basis", "gain", "wash_disallowed", "term",
                    "incomplete", "pick_status")
INCOME_COLUMNS = ("portfolio_id", "key", "kind", "connection_id", "asset_id", "transaction_id", "occurred_at", "amount",
                  "currency", "original_amount")
LINK_COLUMNS = ("disposal_id", "lot_key", "lot_id", "position", "quantity", "cost_basis", "proceeds", "gain",
                "acquired_at", "holding_from", "term", "wash_disallowed")
# Links are staged with their disposal's and lot's keys; ids are joined where they are stored.
LINK_STAGED_COLUMNS = ("disposal_key",) + LINK_COLUMNS[1:2] + LINK_COLUMNS[3:]
AMOUNT_COLUMNS = frozenset({"quantity", "remaining", "cost_basis", "wash_adjustment", "proceeds", "gain",
                            "wash_disallowed"})


def _amounts(columns: tuple[str, ...]) -> frozenset[int]:
    """Where the amounts are in rows of these columns."""
    return frozenset(i for i, column in enumerate(columns) if column in AMOUNT_COLUMNS)


# Engine attributes in column order after the portfolio (lots) or the position (links).
_LOT_VALUES = attrgetter("key", "asset_id", "connection_id", "tx_id", "origin", "quantity", "remaining", "basis",
                         "acquired_at", "holding_from", "parent_key", "wash_adjustment", "closed_at", "closed_by")
_LOT_AMOUNTS = _amounts(LOT_COLUMNS)
_LINK_VALUES = attrgetter("quantity", "basis", "proceeds", "gain", "acquired_at", "holding_from", "term",
                          "wash_disallowed")
_LINK_AMOUNTS = _amounts(LINK_STAGED_COLUMNS)


def q(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(_Q, rounding=ROUND_HALF_EVEN)


def _as_is(value: Decimal | None) -> Decimal | None:
    return value


def _rounding():
    """PostgreSQL rounds each amount to the column's places as COPY reads it (on the
    server's core: 1.4M quantize calls were 0.4 s of a 200k-activity build's Python); SQLite
    compares stored rows in Python, so they are rounded here first."""
    return _as_is if db.vendor == "postgresql" else q


def _rounded(rows: list[tuple], amounts: frozenset[int], q) -> list[tuple]:
    """The amount columns (positions `amounts`) of each row rounded by `q`; on PostgreSQL,
    where the columns round them, the rows as they are (no call per value)."""
    if q is _as_is:
        return rows
    return [tuple(q(v) if i in amounts else v for i, v in enumerate(row)) for row in rows]


def _lots(pid: int, lots: Iterable[engine.Lot], q) -> list[tuple]:
    return _rounded([(pid, *_LOT_VALUES(lot)) for lot in lots], _LOT_AMOUNTS, q)


def _disposal(pid: int, d: engine.Disposal, q) -> tuple:
    basis = d.basis                         # sums the links: once, not once per column
    gain = None if basis is None or d.proceeds is None else d.proceeds - basis + d.wash_disallowed
    return (pid, d.key, d.source_key, d.asset_id, d.connection_id, d.tx_id, d.kind, d.disposed_at, q(d.quantity),
            q(d.proceeds), q(basis), q(gain), q(d.wash_disallowed), d.term, gain is None, d.pick_status[:255])


def _income(pid: int, i: engine.Income, key: str, q) -> tuple:
    return (pid, key, i.kind, i.connection_id, i.asset_id, i.tx_id, i.occurred_at, q(i.amount), i.currency,
            q(i.original_amount))


def _links(disposals: list[engine.Disposal], q) -> list[tuple]:
    """(disposal key, lot key, position, amounts...) of every link: ids are looked up where
    they are stored."""
    return _rounded([(d.key, link.lot_key, i, *_LINK_VALUES(link)) for d in disposals for i, link in enumerate(d.links)],
                    _LINK_AMOUNTS, q)


def write(*, portfolio_id: int, lots: Iterable[engine.Lot], disposals: Iterable[engine.Disposal],
          income: Iterable[engine.Income], full: bool) -> None:
    rnd = _rounding()
    disposal_list, income = list(disposals), list(income)
    lot_rows = _lots(portfolio_id, lots, rnd)
    disposal_rows = [_disposal(portfolio_id, d, rnd) for d in disposal_list]
    income_keys = _unique_keys([i.key for i in income])
    if full:
        # Links first: then nothing points at a lot that goes, and the deletes need no cascade.
        # A full write leaves exactly what this recompute produced (rows it no longer
        # produced are deleted with their table's write).
        _delete_links(portfolio_id)
    lot_ids = _changed(Lot, LOT_COLUMNS, lot_rows, portfolio_id, full)
    disposal_ids = _changed(Disposal, DISPOSAL_COLUMNS, disposal_rows, portfolio_id, full)
    _changed(Income, INCOME_COLUMNS, [_income(portfolio_id, i, k, rnd) for i, k in zip(income, income_keys)],
             portfolio_id, full)
    if not full:
        ids = list(disposal_ids.values())
        for start in range(0, len(ids), BATCH):
            DisposalLot.objects.filter(disposal_id__in=ids[start:start + BATCH]).delete()
    links = _links(disposal_list, rnd)
    if db.vendor == "postgresql":
        _insert_links(portfolio_id, links)
        return
    missing = sorted({link[1] for link in links} - set(lot_ids))
    for start in range(0, len(missing), BATCH):
        lot_ids.update(Lot.objects.filter(portfolio_id=portfolio_id, key__in=missing[start:start + BATCH])
                       .values_list("key", "pk"))
    _insert(DisposalLot, LINK_COLUMNS, [(disposal_ids[d_key], lot_key, lot_ids.get(lot_key), *rest)
                                        for d_key, lot_key, *rest in links])


def _insert_links(portfolio_id: int, links: list[tuple]) -> None:
    """PostgreSQL: the links with their disposal and lot ids found on the server by the
    (portfolio, key) indexes: reading 150k keys and ids back to Python cost more, and so did
    a separate read of the ids of the few lots an incremental write did not touch. A whole
    history goes in by COPY into a staging table and a join; a few links as arrays with a
    lookup per link (the join's plan would rest on the tables' statistics, which after
    a first build are still those of empty tables: it hashed every disposal of the portfolio
    to link a day's sales)."""
    if not links:
        return
    link, disposal, lot = DisposalLot._meta.db_table, Disposal._meta.db_table, Lot._meta.db_table
    columns, rest = ", ".join(LINK_COLUMNS), ", ".join(f"t.{c}" for c in LINK_COLUMNS[3:])
    with db.cursor() as cursor:
        if len(links) <= FEW_ROWS:
            types = column_types(cursor, disposal, ("key",)) + column_types(cursor, link, LINK_STAGED_COLUMNS[1:])
            arrays, params = unnest(types, links)
            execute_bound(cursor, f"INSERT INTO {link} ({columns}) "
                          f"SELECT (SELECT d.id FROM {disposal} d WHERE d.portfolio_id = %s AND d.key = t.disposal_key), "
                          f"t.lot_key, (SELECT o.id FROM {lot} o WHERE o.portfolio_id = %s AND o.key = t.lot_key), "
                          f"{rest} FROM {arrays} AS t ({', '.join(LINK_STAGED_COLUMNS)})",
                          [portfolio_id, portfolio_id] + params)
            return
        temp = f"tmp_{link}"
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {temp} AS SELECT d.key AS disposal_key, l.lot_key, "
                       f"{', '.join(f'l.{c}' for c in LINK_COLUMNS[3:])} FROM {link} l, {disposal} d WITH NO DATA")
        cursor.execute(f"TRUNCATE {temp}")
        copy_rows(cursor, temp, LINK_STAGED_COLUMNS, links)
        cursor.execute(f"INSERT INTO {link} ({columns}) SELECT d.id, t.lot_key, o.id, {rest} FROM {temp} t "
                       f"JOIN {disposal} d ON d.portfolio_id = %s AND d.key = t.disposal_key "
                       f"LEFT JOIN {lot} o ON o.portfolio_id = %s AND o.key = t.lot_key",
                       [portfolio_id, portfolio_id])


def _changed(model, columns: tuple[str, ...], rows: list[tuple], portfolio_id: int, full: bool) -> dict[str, int]:
    """Upsert the rows that differ from what is stored; returns key -> id for all of them. A
    replay after one late transaction rewrites a few rows, not the whole history."""
    if not full:
        return _upsert(model, columns, rows)
    if db.vendor == "postgresql":
        return _upsert_differing(model, columns, rows, portfolio_id)
    stored = {row[2]: (row[0], tuple(row[1:])) for row in _stored(model, columns, portfolio_id)}
    produced = {row[1] for row in rows}
    ids = {key: pk for key, (pk, _) in stored.items() if key in produced}
    ids.update(_upsert(model, columns, [row for row in rows if stored.get(row[1], (None, None))[1] != row]))
    _delete_missing(model, portfolio_id, produced)
    return ids


def _stored(model, columns: tuple[str, ...], portfolio_id: int):
    """(id, *columns) of the portfolio's rows (SQLite: PostgreSQL compares them itself)."""
    return [(pk, portfolio_id, *rest) for pk, *rest in model.objects.filter(portfolio_id=portfolio_id)
            .values_list("id", *columns[1:]).iterator(chunk_size=20_000)]


def _upsert(model, columns: tuple[str, ...], rows: list[tuple]) -> dict[str, int]:
    """Insert or update on (portfolio, key); returns key -> id."""
    if not rows:
        return {}
    if db.vendor != "postgresql":
        objects = [model(**dict(zip(columns, row))) for row in rows]
        for start in range(0, len(objects), BATCH):
            model.objects.bulk_create(objects[start:start + BATCH], update_conflicts=True,
                                      unique_fields=["portfolio", "key"],
                                      update_fields=[c.removesuffix("_id") for c in columns[2:]])
        return {o.key: o.pk for o in objects}
    table, temp = model._meta.db_table, f"tmp_{model._meta.db_table}"
    cols = ", ".join(columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[2:])
    conflict = f"ON CONFLICT (portfolio_id, key) DO UPDATE SET {updates} RETURNING key, id"
    with db.cursor() as cursor:
        if len(rows) <= FEW_ROWS:
            arrays, params = unnest(column_types(cursor, table, columns), rows)
            return dict(execute_bound(cursor, f"INSERT INTO {table} ({cols}) SELECT * FROM {arrays} {conflict}",
                                      params))
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {temp} AS SELECT {cols} FROM {table} WITH NO DATA")
        cursor.execute(f"TRUNCATE {temp}")
        copy_rows(cursor, temp, columns, rows)
        cursor.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {temp} {conflict}")
        return dict(cursor.fetchall())


def _upsert_differing(model, columns: tuple[str, ...], rows: list[tuple], portfolio_id: int) -> dict[str, int]:
    """PostgreSQL, a whole ledger: every row goes in by COPY and PostgreSQL compares it with
    what is stored, updating only rows that differ (unchanged ones are not rewritten), and
    deletes the portfolio's rows that are not among them. Reading the stored rows back into
    Python to compare them cost more than the rest of the write, and so did sending every
    produced key back as an array for the delete, and so did reading the ids back (links
    find them on the server: `_insert_links`). Returns nothing (an empty map)."""
    table, temp = model._meta.db_table, f"tmp_{model._meta.db_table}"
    cols = ", ".join(columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[2:])
    differs = f"({', '.join(f'{table}.{c}' for c in columns[2:])}) IS DISTINCT FROM " \
              f"({', '.join(f'EXCLUDED.{c}' for c in columns[2:])})"
    with db.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE portfolio_id = %s)", [portfolio_id])
        if not cursor.fetchone()[0]:          # a first build: nothing to compare with
            copy_rows(cursor, table, columns, rows)
        else:
            cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {temp} AS SELECT {cols} FROM {table} WITH NO DATA")
            cursor.execute(f"TRUNCATE {temp}")
            copy_rows(cursor, temp, columns, rows)
            cursor.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {temp} "
                           f"ON CONFLICT (portfolio_id, key) DO UPDATE SET {updates} WHERE {differs}")
            cursor.execute(f"DELETE FROM {table} WHERE portfolio_id = %s AND NOT EXISTS "
                           f"(SELECT 1 FROM {temp} WHERE {temp}.key = {table}.key)", [portfolio_id])
    return {}


def _insert(model, columns: tuple[str, ...], rows: list[tuple]) -> None:
    if not rows:
        return
    if db.vendor != "postgresql":
        model.objects.bulk_create([model(**dict(zip(columns, row))) for row in rows], batch_size=BATCH)
        return
    with db.cursor() as cursor:
        copy_rows(cursor, model._meta.db_table, columns, rows)


def _delete_links(portfolio_id: int) -> None:
    if db.vendor != "postgresql":
        DisposalLot.objects.filter(disposal__portfolio_id=portfolio_id).delete()
        return
    with db.cursor() as cursor:
        cursor.execute(f"DELETE FROM {DisposalLot._meta.db_table} WHERE disposal_id IN "
                       f"(SELECT id FROM {Disposal._meta.db_table} WHERE portfolio_id = %s)", [portfolio_id])


def _delete_missing(model, portfolio_id: int, keep: set[str]) -> None:
    """Rows of the portfolio whose key the recompute no longer produced (SQLite; PostgreSQL
    deletes them against the staging table)."""
    gone = sorted(set(model.objects.filter(portfolio_id=portfolio_id).values_list("key", flat=True)) - keep)
    for start in range(0, len(gone), BATCH):
        model.objects.filter(portfolio_id=portfolio_id, key__in=gone[start:start + BATCH]).delete()


def income_keys(income: Iterable[engine.Income]) -> list[str]:
    """The keys the income rows are stored under."""
    return _unique_keys([i.key for i in income])


def _unique_keys(keys: list[str]) -> list[str]:
    """Two entries of one event and kind get distinct keys, in their (deterministic) order."""
    seen: set[str] = set()
    out = []
    for key in keys:
        while key in seen:
            key += "+"
        seen.add(key)
        out.append(key)
    return out


def delete_outside(*, portfolio_id: int, since, assets: set[int], scope_tx: set[int],
                   other_tx: set[int], lots: set[str], disposals: set[str], income: set[str]) -> None:
    """After replaying `assets` from `since`: delete their rows from then on that the replay
    no longer produced (a transaction that was removed or moved to another asset). A lot
    closed before `since` is final; one open at `since` was replayed. Income without an asset
    belongs to the event that made it: one of the replayed events (`scope_tx`), or one that no
    longer exists (neither those nor `other_tx`, the events left alone). The candidates are
    read and compared here: a NOT IN of every produced key costs more than the replay."""
    from django.db.models import Q

    gone_lots = [pk for pk, key in Lot.objects.filter(portfolio_id=portfolio_id, asset_id__in=assets)
                 .filter(Q(closed_at__isnull=True) | Q(closed_at__gte=since)).values_list("id", "key")
                 if key not in lots]
    gone_disposals = [pk for pk, key in Disposal.objects.filter(
        portfolio_id=portfolio_id, asset_id__in=assets, disposed_at__gte=since).values_list("id", "key")
        if key not in disposals]
    gone_income = [pk for pk, key, asset, tx in Income.objects.filter(portfolio_id=portfolio_id, occurred_at__gte=since)
                   .filter(Q(asset_id__in=assets) | Q(asset_id__isnull=True))
                   .values_list("id", "key", "asset_id", "transaction_id")
                   if key not in income and (asset is not None or tx is None or tx in scope_tx or tx not in other_tx)]
    if gone_disposals:
        DisposalLot.objects.filter(disposal_id__in=gone_disposals).delete()
        Disposal.objects.filter(id__in=gone_disposals).delete()
    if gone_lots:
        DisposalLot.objects.filter(lot_id__in=gone_lots).update(lot=None)
        Lot.objects.filter(id__in=gone_lots).delete()
    if gone_income:
        Income.objects.filter(id__in=gone_income).delete()
