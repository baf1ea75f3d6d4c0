"""API keys: random secrets shown once, stored as SHA-256 digests, each with scopes."""

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert, select, update

from patron.services.errors import Invalid, NotFound
from patron.store.tables import api_keys, programs

KEY_PREFIX = "ptn"


class Scope(StrEnum):
    READ = "read"
    EVENTS = "events"
    REDEEM = "redeem"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    program_id: int
    program: str
    name: str
    prefix: str
    scopes: frozenset[Scope]
    created_at: datetime
    revoked_at: datetime | None

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes


def _digest(secret: str) -> str:
    # A 256-bit random secret needs no slow hash: nobody can guess it, so SHA-256 is enough and costs nothing.
    return hashlib.sha256(secret.encode()).hexdigest()


def create(conn: Connection, program_id: int, name: str, scopes: set[Scope], *, now: datetime) -> tuple[ApiKey, str]:
    """Returns the key and its full token. The token is not stored and cannot be shown again."""
    if not scopes:
        raise Invalid("a key needs at least one scope", field="scopes")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key_id = conn.execute(
        insert(api_keys).returning(api_keys.c.id),
        {
            "program_id": program_id,
            "name": name,
            "prefix": prefix,
            "secret_hash": _digest(secret),
            "scopes": ",".join(sorted(s.value for s in scopes)),
            "created_at": now,
        },
    ).scalar_one()
    slug = conn.execute(select(programs.c.slug).where(programs.c.id == program_id)).scalar_one()
    return ApiKey(
        key_id, program_id, slug, name, prefix, frozenset(scopes), now, None
    ), f"{KEY_PREFIX}_{prefix}_{secret}"


# How long a verified key is trusted without asking the database again. The API checks a key on every request;
# remembering it saves a transaction per request. The cost: a key revoked by another process (the CLI, another
# API worker) still works for up to this long in a process that verified it just before; one revoked through
# `revoke` in this process stops at once.
VERIFIED_KEY_SECONDS = 5.0


class VerifiedKeys:
    """Keys that passed `authenticate` lately, by token digest (never the token itself), for one process."""

    def __init__(self, seconds: float = VERIFIED_KEY_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._keys: dict[str, tuple[float, ApiKey]] = {}
        # Prefixes revoked lately: a request that read the key just before the revocation committed must not put
        # it back.
        self._revoked: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> ApiKey | None:
        found = self._keys.get(_digest(token))
        if found is None or self._clock() - found[0] >= self._seconds:
            return None
        return found[1]

    def keep(self, token: str, key: ApiKey) -> None:
        with self._lock:
            now = self._clock()
            revoked_at = self._revoked.get(key.prefix)
            if revoked_at is not None and now - revoked_at < self._seconds:
                return
            if len(self._keys) >= _MAX_VERIFIED_KEYS:
                self._keys.clear()  # a handful of keys is normal: this many means old entries, not a hot set
            self._keys[_digest(token)] = (now, key)

    def forget(self, prefix: str) -> None:
        with self._lock:
            now = self._clock()
            self._revoked = {p: t for p, t in self._revoked.items() if now - t < self._seconds}
            self._revoked[prefix] = now
            self._keys = {d: (t, k) for d, (t, k) in self._keys.items() if k.prefix != prefix}


_MAX_VERIFIED_KEYS = 1024
verified = VerifiedKeys()


def authenticate(conn: Connection, token: str) -> ApiKey | None:
    kind, _, rest = token.partition("_")
    prefix, _, secret = rest.partition("_")
    if kind != KEY_PREFIX or not prefix or not secret:
        return None
    row = conn.execute(
        select(api_keys, programs.c.slug)
        .join(programs, programs.c.id == api_keys.c.program_id)
        .where(api_keys.c.prefix == prefix)
    ).first()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.secret_hash, _digest(secret)):
        return None
    return _key(row)


def list_keys(conn: Connection, program_id: int) -> list[ApiKey]:
    rows = conn.execute(
        select(api_keys, programs.c.slug)
        .join(programs, programs.c.id == api_keys.c.program_id)
        .where(api_keys.c.program_id == program_id)
        .order_by(api_keys.c.id)
    ).all()
    return [_key(r) for r in rows]


def revoke(conn: Connection, program_id: int, prefix: str, *, now: datetime) -> None:
    done = conn.execute(
        update(api_keys)
        .where(api_keys.c.program_id == program_id, api_keys.c.prefix == prefix, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if done.rowcount != 1:
        raise NotFound(f"no active key {prefix!r}", field="prefix")
    verified.forget(prefix)


def _key(r: Any) -> ApiKey:
    return ApiKey(
        r.id,
        r.program_id,
        r.slug,
        r.name,
        r.prefix,
        frozenset(Scope(s) for s in r.scopes.split(",")),
        r.created_at,
        r.revoked_at,
    )
