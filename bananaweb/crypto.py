"""Encryption at rest for upstream API tokens.

Keys come from BANANAWEB_ENCRYPTION_KEYS (comma-separated Fernet keys, newest
first): everything is encrypted with the first key and any of them decrypts, so
a new key can be put in front and old ciphertexts stay readable until
`manage.py rotate_token_encryption` re-encrypts them.
"""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.views.decorators.debug import sensitive_variables


class DecryptionFailed(Exception):
    pass


@cache
def _fernet() -> MultiFernet:
    keys = list(settings.BANANAWEB_ENCRYPTION_KEYS)
    if not keys:
        # Development only (settings refuse this in production): a key derived
        # from SECRET_KEY, so `make run` needs no extra setup.
        digest = hashlib.sha256(
            b"bananaweb-token-key:" + settings.SECRET_KEY.encode()
        ).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key) for key in keys])


@sensitive_variables("plaintext")
def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionFailed(
            "A stored token can't be decrypted with the configured keys "
            "(BANANAWEB_ENCRYPTION_KEYS lost an old key?)."
        ) from None


def rotate(ciphertext: str) -> str:
    """The same secret, encrypted with the newest key."""
    return _fernet().rotate(ciphertext.encode()).decode()


def reset_keys() -> None:
    """Forget the cached keys (after settings change, in tests)."""
    _fernet.cache_clear()
