"""manage.py rotate_credentials: re-encrypt every stored key under the newest FERNET_KEYS entry."""
from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection as db
from fernet_fields import hkdf

from backend.connections.models import BrokerConnection
from tests.api.factories import ConnectionFactory

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("rotate_credentials", *args, stdout=out)
    return out.getvalue()


def raw_secret(connection_id: int) -> bytes:
    with db.cursor() as cursor:
        cursor.execute("SELECT api_secret FROM connections_brokerconnection WHERE id = %s", [connection_id])
        return bytes(cursor.fetchone()[0])


def stored(connection_id: int) -> tuple[str, str]:
    connection = BrokerConnection.objects.get(pk=connection_id)
    return connection.api_key, connection.api_secret


def test_rows_written_under_the_old_key_decrypt_with_only_the_new_key_afterwards(use_keys):
    use_keys("key-A")
    rows = {c.pk: (c.api_key, c.api_secret) for c in ConnectionFactory.create_batch(5)}
    updated_at = dict(BrokerConnection.objects.values_list("pk", "updated_at"))

    use_keys("key-B", "key-A")
    assert run("--check").startswith("5 connection(s) not yet under the newest key; 0 already")
    assert run("--batch-size", "2").startswith("Re-encrypted 5 connection(s) under the newest key; 0 already")
    assert run("--check").startswith("0 connection(s) not yet under the newest key; 5 already")
    assert run().startswith("Re-encrypted 0 connection(s)")            # a second run changes nothing

    use_keys("key-B")
    assert {pk: stored(pk) for pk in rows} == rows
    # only the encrypted columns were written
    assert dict(BrokerConnection.objects.values_list("pk", "updated_at")) == updated_at
    # and the token is under the key derived the way fernet_fields derives it (HKDF)
    pk, (_, secret) = next(iter(rows.items()))
    assert Fernet(hkdf.derive_fernet_key("key-B")).decrypt(raw_secret(pk)).decode() == secret


def test_keys_used_as_given_when_hkdf_is_off(use_keys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    use_keys(old, hkdf=False)
    connection = ConnectionFactory()

    use_keys(new, old, hkdf=False)
    assert run("--check").startswith("1 connection(s) not yet")
    run()

    assert Fernet(new.encode()).decrypt(raw_secret(connection.pk)).decode() == connection.api_secret
    assert run("--check").startswith("0 connection(s) not yet")


def test_an_undecryptable_row_fails_naming_it_and_its_batch_is_left_unchanged(use_keys):
    use_keys("key-A")
    before = ConnectionFactory()
    use_keys("key-LOST")
    lost = ConnectionFactory()
    use_keys("key-A")
    after = ConnectionFactory()
    tokens = {c.pk: raw_secret(c.pk) for c in (before, lost, after)}

    use_keys("key-B", "key-A")
    with pytest.raises(CommandError) as failure:
        run("--batch-size", "2")                # batches: [before, lost], [after]

    message = str(failure.value)
    assert failure.value.returncode == 1
    assert f"connection {lost.pk} (api_key)" in message
    for secret in (lost.api_key, lost.api_secret, before.api_secret):
        assert secret not in message
    assert raw_secret(before.pk) == tokens[before.pk]             # same batch as the lost row: untouched
    assert raw_secret(lost.pk) == tokens[lost.pk]
    assert raw_secret(after.pk) != tokens[after.pk]               # its own batch: rotated
    with pytest.raises(CommandError, match=f"connection {lost.pk}"):
        run("--check")
