"""PKCE helpers and the key ring (encryption at rest)."""

from __future__ import annotations

import base64
import os

import pytest
from app.security import (
    KeyRing,
    KeyRingError,
    is_valid_s256_challenge,
    is_valid_verifier,
    s256_challenge,
    verifier_matches,
)
from hypothesis import given
from hypothesis import strategies as st


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


VERIFIER_ALPHABET = st.sampled_from(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)


@given(st.text(VERIFIER_ALPHABET, min_size=43, max_size=128))
def test_every_valid_verifier_matches_its_own_challenge(verifier: str) -> None:
    challenge = s256_challenge(verifier)
    assert is_valid_s256_challenge(challenge)
    assert verifier_matches(verifier, challenge)


@pytest.mark.parametrize("length", [42, 129])
def test_verifiers_outside_43_to_128_characters_are_refused(length: int) -> None:
    verifier = "a" * length
    assert not is_valid_verifier(verifier)
    assert not verifier_matches(verifier, s256_challenge(verifier))


def test_ciphertext_opens_only_on_its_own_row_and_field() -> None:
    ring = KeyRing([_key()])
    key_id, blob = ring.encrypt("secret-token", "strava_links:row-1:access_token")
    assert ring.decrypt(key_id, blob, "strava_links:row-1:access_token") == "secret-token"
    with pytest.raises(KeyRingError):
        ring.decrypt(key_id, blob, "strava_links:row-2:access_token")
    with pytest.raises(KeyRingError):
        ring.decrypt(key_id, blob, "strava_links:row-1:refresh_token")


def test_old_keys_decrypt_and_the_first_key_encrypts() -> None:
    old, new = _key(), _key()
    before = KeyRing([old])
    key_id, blob = before.encrypt("t", "ad")
    after = KeyRing([new, old])
    assert after.decrypt(key_id, blob, "ad") == "t"
    assert after.encrypt("t", "ad")[0] == after.primary_key_id != key_id
    with pytest.raises(KeyRingError):
        KeyRing([new]).decrypt(key_id, blob, "ad")


def test_blind_index_finds_values_written_under_any_key() -> None:
    old, new = _key(), _key()
    stored = KeyRing([old]).blind_indexes("134815")[0]
    assert stored in KeyRing([new, old]).blind_indexes("134815")
    assert stored not in KeyRing([new, old]).blind_indexes("134816")


def test_key_ring_repr_names_key_ids_only() -> None:
    key = _key()
    assert key not in repr(KeyRing([key]))


@pytest.mark.parametrize("bad", ["", "short", base64.urlsafe_b64encode(b"x" * 16).decode()])
def test_malformed_keys_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"32 bytes|at least one"):
        KeyRing([bad] if bad else [])
