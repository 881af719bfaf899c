"""Re-encrypt every stored credential under the newest key in settings.FERNET_KEYS.

Rotating the credential key:
    1. put the new key first in FERNET_KEYS, keeping the old ones after it; deploy
    2. manage.py rotate_credentials           (`--check` only counts what is left)
    3. drop the old keys once `--check` reports 0

The tokens are read raw and tested against the newest key alone, derived by the
encrypted fields themselves (`field.fernet_keys`: HKDF of each setting unless
FERNET_USE_HKDF is False), so this command and the fields can never disagree on what
"the newest key" is. Rows already under it are left alone, so a second run is cheap.
"""
from __future__ import annotations

from collections import Counter

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.core.management.base import BaseCommand, CommandError
from django.db import connection as db, transaction
from fernet_fields import EncryptedField

from backend.connections.models import BrokerConnection

DEFAULT_BATCH_SIZE = 500
MAX_IDS_SHOWN = 20


def encrypted_fields() -> list[EncryptedField]:
    return [f for f in BrokerConnection._meta.concrete_fields if isinstance(f, EncryptedField)]


def reset_key_cache() -> None:
    """The fields cache their keys on first use (cached_property); make them read settings again."""
    for field in encrypted_fields():
        for name in ("keys", "fernet_keys", "fernet"):
            field.__dict__.pop(name, None)


class Command(BaseCommand):
    help = "Re-encrypt stored broker credentials under the newest key in FERNET_KEYS."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true",
                            help="Only report how many connections are not yet under the newest key.")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                            help="Connections per transaction (default %(default)s).")

    def handle(self, *args, check: bool, batch_size: int, **options):
        fields = encrypted_fields()
        reset_key_cache()
        if not fields[0].fernet_keys:
            raise CommandError("FERNET_KEYS is empty: nothing can be decrypted.")
        newest = Fernet(fields[0].fernet_keys[0])
        every = MultiFernet([Fernet(k) for k in fields[0].fernet_keys])
        counts: Counter[str] = Counter()
        broken: list[tuple[int, str]] = []
        last_id = 0
        while True:
            with transaction.atomic():
                rows = _raw_rows(fields, after=last_id, limit=batch_size, lock=not check)
                if not rows:
                    break
                last_id = rows[-1][0]
                states = {pk: _classify(zip(fields, tokens), newest, every) for pk, *tokens in rows}
                bad = [(pk, column) for pk, (state, column) in states.items() if state == "broken"]
                stale = [pk for pk, (state, _) in states.items() if state == "stale"]
                broken += bad
                if bad and not check:
                    counts["skipped"] += len(rows) - len(bad)     # left unchanged with their batch
                    continue
                counts["stale"] += len(stale)
                counts["current"] += len(rows) - len(stale) - len(bad)
                if not check:
                    _reencrypt(stale, fields)
        self._report(check, counts, broken)

    def _report(self, check: bool, counts: Counter, broken: list[tuple[int, str]]) -> None:
        if check:
            self.stdout.write(f"{counts['stale']} connection(s) not yet under the newest key; "
                              f"{counts['current']} already under it.")
        else:
            self.stdout.write(f"Re-encrypted {counts['stale']} connection(s) under the newest key; "
                              f"{counts['current']} already were.")
        if broken:
            shown = ", ".join(f"connection {pk} ({column})" for pk, column in broken[:MAX_IDS_SHOWN])
            more = f" and {len(broken) - MAX_IDS_SHOWN} more" if len(broken) > MAX_IDS_SHOWN else ""
            left = "" if check else (f" Their batches were left unchanged ({counts['skipped']} other "
                                     "connection(s) with them).")
            raise CommandError(f"Cannot decrypt {shown}{more} with any key in FERNET_KEYS.{left} Add the key "
                               "they were written with to FERNET_KEYS and run again.")


def _raw_rows(fields: list[EncryptedField], *, after: int, limit: int, lock: bool) -> list[tuple]:
    """(id, token, token, ...) for the next batch, straight from the table (no decryption)."""
    qn = db.ops.quote_name
    columns = ", ".join(qn(f.column) for f in fields)
    pk = qn(BrokerConnection._meta.pk.column)
    sql = (f"SELECT {pk}, {columns} FROM {qn(BrokerConnection._meta.db_table)} "
           f"WHERE {pk} > %s ORDER BY {pk} LIMIT %s")
    if lock and db.features.has_select_for_update:
        sql += " FOR UPDATE"
    with db.cursor() as cursor:
        cursor.execute(sql, [after, limit])
        return cursor.fetchall()


def _classify(columns, newest: Fernet, every: MultiFernet) -> tuple[str, str]:
    """("current" | "stale" | "broken", the first column that is not current)."""
    state, first = "current", ""
    for field, token in columns:
        if token is None:
            continue
        token = bytes(token)
        try:
            newest.decrypt(token)
            continue
        except InvalidToken:
            pass
        try:
            every.decrypt(token)
        except InvalidToken:
            return "broken", field.name
        state, first = "stale", first or field.name
    return state, first


def _reencrypt(ids: list[int], fields: list[EncryptedField]) -> None:
    # Loading decrypts with every key; saving encrypts with the first, the newest.
    names = [f.name for f in fields]
    for connection in BrokerConnection.objects.filter(pk__in=ids).only("pk", *names):
        connection.save(update_fields=names)
