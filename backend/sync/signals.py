"""What other apps listen to when a connection's stored history changes.

`history_changed` is sent after the change has committed, by whatever wrote it: a sync run
(with the earliest time its new or changed transactions touch), a file import, a manual
entry, a connection moved to another portfolio. Receivers (value history, the ledger)
queue their own recompute from `since` on; they never run it inside the sender.

    history_changed.send(sender=..., connection_id=12, portfolio_id=3, since=datetime | None,
                         reason="sync" | "import" | "manual" | "moved")

`since` None means nothing in the history changed (a sync that found nothing new): a
receiver may still refresh what depends on the latest positions.
"""
from django.dispatch import Signal

history_changed = Signal()
