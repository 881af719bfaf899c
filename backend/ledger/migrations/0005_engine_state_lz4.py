"""The engine's state documents (a portfolio's snapshot, rewritten by every recompute, and the
month-start checkpoints a full recompute writes by the thousand) compressed with lz4 rather
than PostgreSQL's default pglz: the snapshot of a 200,000-activity ledger (185 KB of JSON)
was stored in half the time. A server built without lz4 keeps pglz; SQLite has no such
setting."""
from django.db import migrations

LZ4 = """
DO $$
BEGIN
    ALTER TABLE ledger_ledgerstate ALTER COLUMN snapshot SET COMPRESSION {method};
    ALTER TABLE ledger_ledgercheckpoint ALTER COLUMN state SET COMPRESSION {method};
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available: the engine state stays compressed with pglz';
END $$;
"""


def compression(method: str):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(LZ4.format(method=method))
    return apply


class Migration(migrations.Migration):
    dependencies = [("ledger", "0004_per_asset_checkpoints")]

    operations = [migrations.RunPython(compression("lz4"), compression("pglz"))]
