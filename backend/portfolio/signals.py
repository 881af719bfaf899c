"""Sent on commit when a portfolio's settings change.

    portfolio_settings_changed.send(sender=Portfolio, portfolio_id=3,
                                    changed={"cost_basis_method", "wash_sales", "base_currency"})

The ledger recomputes on cost_basis_method / wash_sales / base_currency; value history
rebuilds on base_currency. A method change recomputes the ledger and nothing else."""
from django.dispatch import Signal

portfolio_settings_changed = Signal()
