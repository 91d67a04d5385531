"""OAuth state: authorization codes, access and refresh tokens, per application."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from strava_emulator.reference import SCOPE_ORDER


def new_token() -> str:
    """Strava's tokens and codes are 40 lowercase hex characters."""
    return secrets.token_hex(20)


def canonical_scopes(scopes: set[str] | frozenset[str]) -> str:
    return ",".join(scope for scope in SCOPE_ORDER if scope in scopes)


@dataclass(slots=True)
class AuthCode:
    code: str
    athlete_id: int
    scopes: frozenset[str]
    expires_at: float


@dataclass(slots=True)
class AccessToken:
    token: str
    athlete_id: int
    scopes: frozenset[str]
    expires_at: int
    grant: Grant


@dataclass(slots=True)
class Grant:
    """One authorization (code exchange or admin issue): a refresh token and its access tokens."""

    athlete_id: int
    scopes: frozenset[str]
    refresh_token: str
    access_tokens: list[AccessToken] = field(default_factory=list)


class TokenStore:
    def __init__(self, code_ttl: int, access_ttl: int) -> None:
        self.code_ttl = code_ttl
        self.access_ttl = access_ttl
        self.codes: dict[str, AuthCode] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, Grant] = {}
        self.grants_by_athlete: dict[int, list[Grant]] = {}

    def issue_code(self, athlete_id: int, scopes: frozenset[str], now: float) -> str:
        code = new_token()
        self.codes[code] = AuthCode(code, athlete_id, scopes, now + self.code_ttl)
        return code

    def redeem_code(self, code: str, now: float) -> AuthCode | None:
        """Single use: the code is gone whether or not it was still valid."""
        found = self.codes.pop(code, None)
        if found is None or found.expires_at <= now:
            return None
        return found

    def grant(self, athlete_id: int, scopes: frozenset[str], now: float) -> AccessToken:
        grant = Grant(athlete_id, scopes, new_token())
        self.refresh[grant.refresh_token] = grant
        self.grants_by_athlete.setdefault(athlete_id, []).append(grant)
        return self._new_access(grant, now)

    def _new_access(self, grant: Grant, now: float) -> AccessToken:
        token = AccessToken(
            new_token(), grant.athlete_id, grant.scopes, int(now) + self.access_ttl, grant
        )
        grant.access_tokens.append(token)
        self.access[token.token] = token
        return token

    def refresh_grant(self, refresh_token: str, now: float) -> tuple[Grant, AccessToken] | None:
        """Strava's rules: reuse an access token with more than an hour left, otherwise mint
        one (older ones stay valid until they expire); always rotate the refresh token."""
        grant = self.refresh.pop(refresh_token, None)
        if grant is None:
            return None
        grant.refresh_token = new_token()
        self.refresh[grant.refresh_token] = grant
        live: list[AccessToken] = []
        for token in grant.access_tokens:
            if token.expires_at > now:
                live.append(token)
            else:
                self.access.pop(token.token, None)
        grant.access_tokens = live
        current = max(live, key=lambda t: t.expires_at, default=None)
        if current is not None and current.expires_at - now > 3600:
            return grant, current
        return grant, self._new_access(grant, now)

    def authenticate(self, token: str, now: float) -> AccessToken | None:
        found = self.access.get(token)
        if found is None:
            return None
        if found.expires_at <= now:
            del self.access[token]
            return None
        return found

    def connected_athletes(self) -> int:
        """Athletes holding at least one grant: what Strava counts against the app's capacity."""
        return sum(1 for grants in self.grants_by_athlete.values() if grants)

    def is_connected(self, athlete_id: int) -> bool:
        return bool(self.grants_by_athlete.get(athlete_id))

    def revoke_athlete(self, athlete_id: int) -> None:
        """Deauthorization: every token the app holds for the athlete dies at once."""
        for grant in self.grants_by_athlete.pop(athlete_id, []):
            self.refresh.pop(grant.refresh_token, None)
            for token in grant.access_tokens:
                self.access.pop(token.token, None)
        for code in [c for c, v in self.codes.items() if v.athlete_id == athlete_id]:
            del self.codes[code]
