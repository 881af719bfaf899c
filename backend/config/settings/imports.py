"""File import limits (backend/imports). See the README's configuration table."""
from __future__ import annotations

from backend.config.env import env

# A 100,000-row export of any supported layout is 10-20 MB; twice the largest row count
# we measure (benchmarks/imports.py) leaves room without letting one upload hold a worker
# for long.
IMPORT_MAX_BYTES = env.int("IMPORT_MAX_BYTES", default=50 * 1024 * 1024)
IMPORT_MAX_ROWS = env.int("IMPORT_MAX_ROWS", default=200_000)
# Up to this many rows a file is validated and written inside the request (well under a
# second); beyond it, a worker on the `imports` queue does it and the record shows progress.
IMPORT_INLINE_MAX_ROWS = env.int("IMPORT_INLINE_MAX_ROWS", default=2_000)
# Row errors listed in a 400 or on a failed import; the rest are counted.
IMPORT_MAX_ERRORS_LISTED = 50
