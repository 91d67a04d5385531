"""Runner session tokens, PKCE (RFC 7636) and encryption of Strava credentials at rest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# --- runner sessions and link state ---


def new_token() -> str:
    """256 random bits, URL-safe: runner access tokens and OAuth `state`."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Tokens are stored as their SHA-256 only; a database dump cannot replay them."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# --- PKCE ---

# RFC 7636 §4.1: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# An S256 challenge is BASE64URL(SHA-256) without padding: exactly 43 characters.
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


def is_valid_verifier(verifier: str) -> bool:
    return _VERIFIER.fullmatch(verifier) is not None


def is_valid_s256_challenge(challenge: str) -> bool:
    return _S256_CHALLENGE.fullmatch(challenge) is not None


def s256_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verifier_matches(verifier: str, challenge: str) -> bool:
    if not is_valid_verifier(verifier):
        return False
    return hmac.compare_digest(s256_challenge(verifier), challenge)


# --- encryption at rest ---


_NONCE_BYTES = 12
_TAG_BYTES = 16  # AES-GCM's authentication tag, appended to the ciphertext


class KeyRingError(Exception):
    """A ciphertext cannot be opened: unknown key id, wrong associated data or tampering."""


@dataclass(frozen=True, repr=False)
class _Key:
    key_id: str
    aead: AESGCM
    index_secret: bytes


class KeyRing:
    """AES-256-GCM with a key id per row; the first key encrypts, every key decrypts.

    Associated data binds a ciphertext to its row and field, so a value copied onto another row
    (or into another column) fails to decrypt instead of silently becoming someone else's token.
    """

    def __init__(self, encoded_keys: list[str]) -> None:
        if not encoded_keys:
            raise ValueError("the key ring needs at least one key")
        keys: list[_Key] = []
        for encoded in encoded_keys:
            try:
                raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            except ValueError:
                raw = b""
            if len(raw) != 32:
                raise ValueError("each TOKEN_ENCRYPTION_KEYS entry must be 32 bytes, base64url")
            key_id = hashlib.sha256(b"key-id:" + raw).hexdigest()[:12]
            index_secret = hashlib.sha256(b"blind-index:" + raw).digest()
            keys.append(_Key(key_id, AESGCM(raw), index_secret))
        self._keys = keys
        self._by_id = {key.key_id: key for key in keys}

    def __repr__(self) -> str:
        return f"KeyRing(key_ids={[key.key_id for key in self._keys]})"

    @property
    def primary_key_id(self) -> str:
        return self._keys[0].key_id

    def encrypt(self, plaintext: str, associated_data: str) -> tuple[str, bytes]:
        """Returns (key_id, nonce || ciphertext)."""
        key = self._keys[0]
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = key.aead.encrypt(nonce, plaintext.encode(), associated_data.encode())
        return key.key_id, nonce + sealed

    def decrypt(self, key_id: str, blob: bytes, associated_data: str) -> str:
        key = self._by_id.get(key_id)
        if key is None:
            raise KeyRingError(f"no configured key has id {key_id}")
        if len(blob) < _NONCE_BYTES + _TAG_BYTES:
            # Not a sealed value at all (AESGCM would raise ValueError on a short nonce).
            raise KeyRingError("ciphertext is shorter than a nonce and a tag")
        try:
            return key.aead.decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], associated_data.encode()
            ).decode()
        except InvalidTag as exc:
            raise KeyRingError("ciphertext does not open with its key and associated data") from exc

    def blind_indexes(self, value: str) -> list[str]:
        """Keyed hashes of `value` under every key: equality lookups without storing it in clear.

        The first entry is the one to store; the others find rows written before a rotation.
        """
        return [
            hmac.new(key.index_secret, value.encode(), hashlib.sha256).hexdigest()
            for key in self._keys
        ]
