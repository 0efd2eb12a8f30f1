"""Encrypted model fields over ``cryptography.fernet.MultiFernet``.

Keys come from ``ENCRYPTION_KEYS`` (newest first): values are encrypted with the first key
and decrypted with whichever key made them, so keys can rotate; ``rotate_encryption_keys``
re-encrypts stored values under the newest. A value no configured key can read raises
``EncryptionKeyError``; it is never handed back as if it were the plaintext.

Encrypted values cannot be filtered, ordered or made unique (each encryption differs); keep
a keyed HMAC "blind index" beside the field when a lookup is needed (``blind_index``).
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import models


class EncryptionKeyError(Exception):
    """A stored value could not be decrypted with any configured key."""


@lru_cache(maxsize=4)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("ENCRYPTION_KEYS is empty.")
    try:
        return MultiFernet([Fernet(key.strip()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "ENCRYPTION_KEYS must be comma-separated Fernet keys (32 url-safe base64 bytes)."
        ) from exc


def get_fernet() -> MultiFernet:
    return _multifernet(tuple(settings.ENCRYPTION_KEYS))


def _reset(*, setting: str, **kwargs) -> None:
    if setting == "ENCRYPTION_KEYS":
        _multifernet.cache_clear()


setting_changed.connect(_reset)


def encrypt_str(value: str) -> str:
    return get_fernet().encrypt(value.encode()).decode()


def decrypt_str(token: str) -> str:
    try:
        return get_fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise EncryptionKeyError(
            "A stored value cannot be decrypted with any key in ENCRYPTION_KEYS."
        ) from exc


def blind_index(value: str, *, purpose: str) -> str:
    """A keyed HMAC of ``value`` for equality lookups on an encrypted value."""
    key = hashlib.sha256(f"blind-index:{purpose}:{settings.SECRET_KEY}".encode()).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


class EncryptedTextField(models.TextField):
    """Text stored encrypted; only ``isnull`` lookups are allowed."""

    def from_db_value(self, value, expression, connection):
        if value is None:
            return value
        return decrypt_str(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None:
            return value
        return encrypt_str(str(value))

    def get_lookup(self, lookup_name):
        if lookup_name != "isnull":
            raise NotImplementedError(
                f"Encrypted fields cannot be filtered with {lookup_name!r}; use a blind index."
            )
        return super().get_lookup(lookup_name)
