"""The encrypted field's crypto: MultiFernet with rotating keys, loud on a wrong key."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from crm.fields import EncryptedTextField, EncryptionKeyError, blind_index, decrypt_str, encrypt_str

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_round_trip_and_ciphertext_differs_each_time(settings):
    settings.ENCRYPTION_KEYS = [NEW]

    first, second = encrypt_str("token-123"), encrypt_str("token-123")

    assert first != second
    assert "token-123" not in first
    assert decrypt_str(first) == decrypt_str(second) == "token-123"


def test_old_values_still_read_after_a_new_key_is_put_first(settings):
    settings.ENCRYPTION_KEYS = [OLD]
    token = encrypt_str("refresh-token")

    settings.ENCRYPTION_KEYS = [NEW, OLD]

    assert decrypt_str(token) == "refresh-token"
    assert Fernet(NEW.encode()).decrypt(encrypt_str("x").encode()) == b"x"


def test_a_wrong_key_is_an_error_not_the_ciphertext(settings):
    settings.ENCRYPTION_KEYS = [OLD]
    token = encrypt_str("secret")

    settings.ENCRYPTION_KEYS = [NEW]

    with pytest.raises(EncryptionKeyError):
        decrypt_str(token)


def test_field_stores_encrypted_and_reads_plain(settings):
    settings.ENCRYPTION_KEYS = [NEW]
    field = EncryptedTextField()

    stored = field.get_prep_value("access-token")

    assert stored != "access-token"
    assert field.from_db_value(stored, None, None) == "access-token"
    assert field.get_prep_value(None) is None


def test_field_refuses_lookups_other_than_isnull():
    field = EncryptedTextField()
    assert field.get_lookup("isnull") is not None
    with pytest.raises(NotImplementedError, match="blind index"):
        field.get_lookup("exact")


def test_blind_index_is_stable_and_keyed_by_purpose():
    assert blind_index("a@b.co", purpose="email") == blind_index("a@b.co", purpose="email")
    assert blind_index("a@b.co", purpose="email") != blind_index("a@b.co", purpose="phone")


@pytest.mark.django_db
def test_rotate_command_runs_when_no_model_has_encrypted_fields_yet(capsys):
    call_command("rotate_encryption_keys")
    assert "Re-encrypted 0 row(s)" in capsys.readouterr().out
