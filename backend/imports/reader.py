"""From uploaded bytes to keyed transactions: decode, find the header row and its layout,
read every row (keeping every error), give each row its stable key.

A row's key is the file's own id where the layout has one; otherwise a hash of what the row
says plus how many identical rows of that day came before it in the file. So importing the
same file again, or a later export that overlaps it, finds the keys already stored, while two
identical buys on one day stay two rows."""
from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date

from backend.brokers.dtos import Transaction
from backend.core.exceptions import ApplicationError

from .formats import LAYOUTS
from .formats.base import Cells, Draft, Layout

# Where a header may sit: Fidelity puts blank rows first, Vanguard a whole holdings table
# (one row per fund held) before its transactions.
HEADER_SCAN_ROWS = 1_000
# Vanguard's download is ISO-8859-1 (beancount's Vanguard importer opens it so); anything
# that is not UTF-8 is read as Windows-1252, its superset that exports from Windows use.
FALLBACK_ENCODING = "cp1252"
PROGRESS_EVERY = 5_000


@dataclass(frozen=True)
class Detected:
    layout: Layout
    header_index: int                   # which CSV record is the header (0-based)
    found: dict[str, int]               # column key -> cell index
    headers: dict[str, str]             # column key -> the file's own header text


@dataclass
class Reading:
    drafts: list[Draft] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)      # {row, field, message}, every one
    rows: int = 0


def decode(content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode(FALLBACK_ENCODING, errors="replace")


def records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, cells) for every CSV record."""
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1
    for row in reader:
        yield start, row
        start = reader.line_num + 1


def detect(text: str, layout_key: str | None = None) -> Detected:
    """The header row and its layout; a 400 that names the closest layout and what differs
    when no row is a known header (or not the one asked for)."""
    wanted = [LAYOUTS[layout_key]] if layout_key else list(LAYOUTS.values())
    closest = None              # (score, layout, line, missing, unknown)
    for index, (line, row) in enumerate(records(text)):
        if index >= HEADER_SCAN_ROWS:
            break
        for layout in LAYOUTS.values():
            found, missing, unknown = layout.match(row)
            if not missing and not unknown and layout in wanted:
                return Detected(layout, index, found, layout.headers(row, found))
            score = (len(found) - len(unknown), layout in wanted)
            if found and (closest is None or score > closest[0]):
                closest = (score, layout, line, missing, unknown)
    raise ApplicationError("Unknown file layout: nothing was imported.",
                           fields={"file": [_layout_message(closest, layout_key)]})


def _layout_message(closest, layout_key: str | None) -> str:
    asked = f"This file is not a {LAYOUTS[layout_key].name} export" if layout_key else \
        "This file matches no layout we read"
    if closest is None:
        names = ", ".join(layout.name for layout in LAYOUTS.values())
        return f"{asked}: no row looks like a header of {names}."
    _, layout, line, missing, unknown = closest
    parts = [f"missing columns: {', '.join(missing)}"] if missing else []
    if unknown:
        parts.append(f"columns {layout.name} does not have: {', '.join(unknown)}")
    return f"{asked}. Closest: {layout.name} (header on line {line}); {'; '.join(parts)}."


def read(text: str, detected: Detected, *, today: date, max_rows: int,
         progress: Callable[[int], None] | None = None) -> Reading:
    """Every data row after the header, read; rows past `max_rows` are one error."""
    reading = Reading()
    layout, found = detected.layout, detected.found
    for index, (line, row) in enumerate(records(text)):
        if index <= detected.header_index or _not_a_row(row):
            continue
        reading.rows += 1
        if reading.rows > max_rows:
            reading.errors.append({"row": line, "field": "", "message": f"more than {max_rows:,} rows"})
            break
        cells = Cells({key: row[i] if i < len(row) else "" for key, i in found.items()}, detected.headers, today)
        draft = layout.draft(cells, line)
        reading.errors += [{"row": line, "field": name, "message": message} for name, message in cells.errors]
        if draft is not None and not cells.errors:
            reading.drafts.append(draft)
        if progress and reading.rows % PROGRESS_EVERY == 0:
            progress(reading.rows)
    _check_own_ids(reading)
    return reading


def _not_a_row(row: list[str]) -> bool:
    """Blank rows, and notes with text in their first cell only (Fidelity's disclaimer and
    "Date downloaded ...", Schwab's title row)."""
    return not any(cell.strip() for cell in row[1:])


def _check_own_ids(reading: Reading) -> None:
    first: dict[str, int] = {}
    for draft in reading.drafts:
        if draft.own_id and draft.own_id in first:
            reading.errors.append({"row": draft.line, "field": "id",
                                   "message": f"id {draft.own_id!r} is also on line {first[draft.own_id]}"})
        first.setdefault(draft.own_id, draft.line)


def keyed(drafts: list[Draft]) -> list[Transaction]:
    """The rows as transactions with their keys, oldest first (exports list newest first; the
    order rows are stored in is their order within a day)."""
    ordered = list(reversed(drafts)) if drafts and drafts[0].day > drafts[-1].day else list(drafts)
    ordered.sort(key=lambda d: d.day)
    seen: Counter[str] = Counter()
    rows = []
    for draft in ordered:
        if draft.own_id:
            key = f"id:{draft.own_id}"
        else:
            digest = hashlib.sha256("\x1f".join(draft.content()).encode()).hexdigest()[:40]
            key = f"row:{digest}:{seen[digest]}"
            seen[digest] += 1
        rows.append(draft.transaction(key))
    return rows
