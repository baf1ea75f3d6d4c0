"""`patron keys create|list|revoke`: a token is shown once, stored only as a digest, and refused once revoked."""

from patron.services import keys
from patron.store.tables import api_keys
from tests.cli.conftest import Cli, count, snapshot


def _authenticates(cli: Cli, token: str) -> bool:
    with cli.db.read() as conn:
        return keys.authenticate(conn, token) is not None


def test_create_prints_the_token_once_and_stores_only_its_digest(shop: Cli):
    created = shop.ok("keys", "create", "checkout", "--scope", "events", "--scope", "read")
    token = created.stdout.strip()
    assert token.startswith("ptn_")
    assert "\n" not in token  # alone on stdout, so $(patron keys create ...) captures exactly the token
    assert "shown only now" in created.stderr
    assert _authenticates(shop, token)

    secret = token.split("_", 2)[2]  # ptn_<prefix>_<secret>, and the secret itself may hold "_"
    assert secret not in repr(snapshot(shop.db))  # not stored anywhere, in any table

    listed = shop.ok("keys", "list")
    prefix = token.split("_")[1]
    assert prefix in listed.stdout
    assert "checkout" in listed.stdout
    assert "events, read" in listed.stdout
    assert secret not in listed.stdout


def test_revoke_stops_the_key(shop: Cli):
    token = shop.ok("keys", "create", "crm-sync", "--scope", "admin").stdout.strip()
    prefix = token.split("_")[1]
    assert f"Revoked key {prefix}." in shop.ok("keys", "revoke", prefix).stdout
    assert not _authenticates(shop, token)

    again = shop("keys", "revoke", prefix)
    assert again.exit_code == 1
    assert f"error: prefix: no active key '{prefix}'" in again.stderr


def test_a_key_needs_a_known_scope(shop: Cli):
    no_scope = shop("keys", "create", "nothing")
    assert no_scope.exit_code == 1
    assert "error: scopes: a key needs at least one scope" in no_scope.stderr

    unknown = shop("keys", "create", "root", "--scope", "superuser")
    assert unknown.exit_code == 2
    assert "superuser" in unknown.stderr
    assert count(shop.db, api_keys) == 0


def test_keys_of_another_program_are_neither_listed_nor_revoked(shop: Cli):
    token = shop.ok("keys", "create", "checkout", "--scope", "read").stdout.strip()
    prefix = token.split("_")[1]
    shop.ok("init", "--program", "other")
    assert prefix not in shop.ok("keys", "list", "--program", "other").stdout
    refused = shop("keys", "revoke", prefix, "--program", "other")
    assert refused.exit_code == 1
    assert _authenticates(shop, token)
