"""The file layouts an import reads, by key. Adding one: a module with its columns and row
reader (see fidelity.py), one line here, a section in docs/imports.md and a sample in
tests/fixtures/imports/."""
from __future__ import annotations

from .base import Layout
from .fidelity import FIDELITY
from .generic import GENERIC
from .schwab import SCHWAB
from .vanguard import VANGUARD

LAYOUTS: dict[str, Layout] = {layout.key: layout for layout in (GENERIC, FIDELITY, SCHWAB, VANGUARD)}
