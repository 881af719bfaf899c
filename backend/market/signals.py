"""Sent when the price store gains or corrects daily closes that values already computed
depend on (a backfill of older bars, a bar corrected by its source).

    closes_changed.send(sender=..., asset_ids=[...], since=date)

Receivers (value history) queue a rebuild from `since` for the portfolios that held those
assets; they never run it inside the sender."""
from django.dispatch import Signal

closes_changed = Signal()
