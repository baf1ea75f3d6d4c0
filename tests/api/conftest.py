"""An API on each backend with two programs (tenants), keys for every scope, and a clock the test controls."""

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.exceptions import StarletteDeprecationWarning

from patron.api.app import create_app
from patron.domain.members import MemberProfile
from patron.services import keys, members, programs
from patron.services.keys import Scope
from patron.store.database import Database
from patron.store.tables import metadata
from tests.conftest import T0
from tests.helpers import LONG_AGO, program_document, set_up

# Starlette 1.x would rather test through httpx2; the project pins httpx, which still works. Only that one
# import-time notice is silenced, so any other warning still fails the run (filterwarnings = error).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Api:
    client: TestClient
    db: Database
    clock: Clock
    program_id: int
    other_program_id: int
    tokens: dict[str, str] = field(default_factory=dict)  # by name: "read", "events", "redeem", "admin", "other"

    def auth(self, name: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def get(self, path: str, key: str = "admin", **kwargs: Any):
        return self.client.get(path, headers={**self.auth(key), **kwargs.pop("headers", {})}, **kwargs)

    def post(self, path: str, key: str = "admin", **kwargs: Any):
        return self.client.post(path, headers={**self.auth(key), **kwargs.pop("headers", {})}, **kwargs)

    def put(self, path: str, key: str = "admin", **kwargs: Any):
        return self.client.put(path, headers={**self.auth(key), **kwargs.pop("headers", {})}, **kwargs)

    def fund(self, member_id: str, points: int) -> None:
        """Gives a member available points through the API (an admin adjustment)."""
        reply = self.post(f"/v1/members/{member_id}/adjustments", json={"points": points, "reason": "test funds"})
        assert reply.status_code == 201, reply.text

    def balance(self, member_id: str, key: str = "admin") -> dict[str, int]:
        reply = self.get(f"/v1/members/{member_id}", key=key)
        assert reply.status_code == 200, reply.text
        return reply.json()["balance"]

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        return snapshot(self.db)


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (journal, postings, balances, lots, events, ... ): bad input must change none."""
    with db.read() as conn:
        return {
            table.name: sorted((tuple(row) for row in conn.execute(sa.select(table)).all()), key=repr)
            for table in metadata.sorted_tables
        }


def make_key(db: Database, program_id: int, name: str, scopes: set[Scope]) -> str:
    with db.write() as conn:
        _, token = keys.create(conn, program_id, name, scopes, now=T0)
    return token


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api(db: Database, clock: Clock) -> Iterator[Api]:
    """Program "test" (the demo program) with member m1, and a second tenant "other" with members m1 and theirs."""
    setup = set_up(db, now=T0, member_ids=("m1",))
    other = programs.create_program(db, "other", now=T0)
    programs.publish(db, other, program_document(name="Other shop"), actor="test", now=T0, effective_from=LONG_AGO)
    for member_id in ("m1", "theirs"):
        members.upsert(db, other, member_id, MemberProfile(email="other@example.com"), now=T0)
    tokens = {scope.value: make_key(db, setup.program_id, f"{scope.value}-key", {scope}) for scope in Scope}
    tokens["other"] = make_key(db, other, "other-admin", {Scope.ADMIN})
    with TestClient(create_app(database=db, clock=clock)) as client:
        yield Api(client, db, clock, setup.program_id, other, tokens)


def assert_problem(reply, status: int, *fields: str | None) -> dict[str, Any]:
    """An RFC 9457 problem with this status, whose errors name (at least) these fields."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    body = reply.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["type"]
    named = [e["field"] for e in body["errors"]]
    for wanted in fields:
        assert wanted in named, f"{wanted!r} not among {named}: {body}"
    return body
