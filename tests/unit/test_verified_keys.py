"""The API's memory of verified keys: trusted for VERIFIED_KEY_SECONDS, forgotten at once when revoked here."""

from datetime import UTC, datetime

from patron.services.keys import VERIFIED_KEY_SECONDS, ApiKey, Scope, VerifiedKeys

KEY = ApiKey(1, 1, "shop", "till", "abc123", frozenset({Scope.EVENTS}), datetime(2026, 1, 1, tzinfo=UTC), None)
TOKEN = "ptn_abc123_secret"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_verified_key_is_trusted_only_for_a_while():
    clock = Clock()
    verified = VerifiedKeys(clock=clock)
    verified.keep(TOKEN, KEY)
    assert verified.get(TOKEN) == KEY
    assert verified.get("ptn_abc123_other") is None
    clock.now += VERIFIED_KEY_SECONDS
    assert verified.get(TOKEN) is None  # asked again: a revocation elsewhere shows by now


def test_a_key_revoked_here_is_forgotten_and_not_kept_again_by_a_request_that_read_it_before():
    clock = Clock()
    verified = VerifiedKeys(clock=clock)
    verified.keep(TOKEN, KEY)
    verified.forget(KEY.prefix)
    assert verified.get(TOKEN) is None
    verified.keep(TOKEN, KEY)  # a request that read the key before the revocation committed
    assert verified.get(TOKEN) is None
    clock.now += VERIFIED_KEY_SECONDS
    verified.keep(TOKEN, KEY)  # long after, only a key the database still accepts gets here
    assert verified.get(TOKEN) == KEY
