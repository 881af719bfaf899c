"""API tokens were kept in plain text by rest_framework.authtoken (table authtoken_token).
They are now knox tokens (only a digest stored); the old table and every token in it go.
Users log in again for a new token."""
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("knox", "0009_extend_authtoken_field")]

    operations = [migrations.RunSQL("DROP TABLE IF EXISTS authtoken_token", reverse_sql=migrations.RunSQL.noop)]
