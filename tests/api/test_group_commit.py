"""Group commit: single events sent at once share transactions, and each still gets the reply it would have had alone.

A member lock held by the test (on SQLite, the write lock) keeps the first event's transaction waiting while the
others queue, so the queue, and so the batches, are known: the first event alone, then the rest together.
"""

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from patron.api.app import create_app
from patron.api.group_commit import GroupCommit
from patron.services.keys import Scope
from patron.settings import Settings
from patron.store import members as member_rows
from patron.store.database import Database
from patron.store.tables import events, journal
from tests.api.conftest import TestClient, make_key, snapshot
from tests.api.events import purchase, refund, review, signup
from tests.api.test_referrals import LATER, code_of, new_member, referrals, sign_up  # noqa: F401 (a fixture)
from tests.conftest import T0, make_database
from tests.helpers import check_invariants, set_up


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting until {what}"
        time.sleep(0.002)


@contextmanager
def member_locked(db: Database, program_id: int, member_id: str) -> Iterator[Callable[[], None]]:
    """Holds the member's lock (on SQLite, the process's write lock) in another thread until the block ends, or
    until the function it gives is called."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.write() as conn:
            member_rows.find(conn, program_id, member_id, lock=True)
            locked.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    locked.wait()
    try:
        yield release.set
    finally:
        release.set()
        holder.join()


def group_of(client: TestClient) -> GroupCommit:
    group = client.app.state.runtime.group_commit  # type: ignore[attr-defined]
    assert isinstance(group, GroupCommit)
    return group


def send_queued(
    client: TestClient, token: str, bodies: list[dict[str, Any]], release: Callable[[], None]
) -> list[httpx.Response]:
    """Sends each body once the one before it is queued (so the queue keeps their order), then releases the lock
    that holds the first; the replies in order."""
    replies: list[httpx.Response | None] = [None] * len(bodies)
    group = group_of(client)

    def send(index: int) -> None:
        replies[index] = client.post("/v1/events", json=bodies[index], headers={"Authorization": f"Bearer {token}"})

    threads = []
    for index in range(len(bodies)):
        threads.append(threading.Thread(target=send, args=(index,)))
        threads[-1].start()
        wait_until(lambda index=index: group.waiting == index + 1, f"{index + 1} events are waiting")
    release()
    return [threads[i].join() or replies[i] for i in range(len(bodies))]  # type: ignore[func-returns-value, misc]


FIRST = purchase("p1", "m1", "o1", "150.00")  # the lone first transaction
TOGETHER = [
    purchase("p2", "m1", "o2", "30.00"),  # m1 three times in one batch, after p1
    refund("r1", "m1", "o1", amount="50.00"),
    signup("s2", "m2"),
    purchase("p3", "m2", "o3", "120.00"),
    purchase("x1", "nobody", "o9", "10.00"),  # an unknown member: 404
    purchase("p5", "m2", "o1", "10.00"),  # m1's order: 422
    review("v3", "m3"),
    purchase("p4", "m3", "o4", "10.00"),
    purchase("p1", "m1", "o1", "150.00"),  # a retry of p1: 200, the first receipt
    purchase("p3", "m2", "o3", "999.00"),  # p3 with another body: 409 (its first delivery is in this batch)
    purchase("x1", "m3", "o5", "20.00"),  # x1 failed before: this body of it is processed (201)
]
# The last three wait for the next transaction (their ids are taken in this one): sent last, they are processed
# in the same order either way.
STATUSES = [201, 201, 201, 201, 201, 404, 422, 201, 201, 200, 409, 201]


def run(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, *, group_commit: bool
) -> tuple[list[httpx.Response], dict[str, list[tuple[Any, ...]]]]:
    """The events on a fresh database: queued behind the first (group commit), or sent one after another."""
    folder = tmp_path / ("on" if group_commit else "off")
    folder.mkdir()
    db = make_database(backend, request, folder)
    try:
        setup = set_up(db, now=T0, member_ids=("m1", "m2", "m3"))
        token = make_key(db, setup.program_id, "events", {Scope.EVENTS})
        app = create_app(Settings(group_commit=group_commit), db, clock=lambda: T0)
        with TestClient(app) as client:
            if group_commit:
                with member_locked(db, setup.program_id, "m1") as release:
                    replies = send_queued(client, token, [FIRST, *TOGETHER], release)
            else:
                auth = {"Authorization": f"Bearer {token}"}
                replies = [client.post("/v1/events", json=body, headers=auth) for body in [FIRST, *TOGETHER]]
        check_invariants(db)
        tables = snapshot(db)
        del tables["api_keys"]  # a random token of each run's own
        # A transaction's postings are numbered in another order by the batch writes; outbox messages have random ids.
        tables["postings"] = sorted((row[1:] for row in tables["postings"]), key=repr)
        tables["outbox"] = sorted((row[2:] for row in tables["outbox"]), key=repr)
        return replies, tables
    finally:
        db.dispose()


def test_events_sharing_transactions_get_the_replies_and_writes_they_get_one_by_one(backend, request, tmp_path):
    together, written = run(backend, request, tmp_path, group_commit=True)
    alone, written_alone = run(backend, request, tmp_path, group_commit=False)
    assert [r.status_code for r in alone] == STATUSES, [r.text for r in alone]
    assert [r.status_code for r in together] == STATUSES, [r.text for r in together]
    assert [r.json() for r in together] == [r.json() for r in alone]
    assert [r.headers["content-type"] for r in together] == [r.headers["content-type"] for r in alone]
    assert together[9].json() == together[0].json()  # the retry: the first receipt
    assert [e["field"] for e in together[5].json()["errors"]] == ["member_id"]
    assert [e["field"] for e in together[6].json()["errors"]] == ["order_id"]
    assert [e["field"] for e in together[10].json()["errors"]] == ["event_id"]
    assert written == written_alone


def test_a_failed_transaction_fails_every_event_in_it_and_the_next_ones_go_through(api):
    token = api.tokens["events"]
    group = group_of(api.client)
    bodies = [purchase(f"p{n}", "m1", f"o{n}", "10.00") for n in range(6)]
    with TestClient(api.client.app, raise_server_exceptions=False) as client:
        with api.db.engine.begin() as conn:  # every purchase writes a lot: none can be written now
            conn.exec_driver_sql("ALTER TABLE lots RENAME TO lots_gone")
        with member_locked(api.db, api.program_id, "m1") as release:
            replies = send_queued(client, token, bodies, release)
        assert [r.status_code for r in replies] == [500] * 6, [r.text for r in replies]
        assert group.waiting == 0
        with api.db.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE lots_gone RENAME TO lots")
        with api.db.read() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(journal)).scalar_one() == 0
        with member_locked(api.db, api.program_id, "m1") as release:
            replies = send_queued(client, token, bodies, release)
        assert [r.status_code for r in replies] == [201] * 6, [r.text for r in replies]
    check_invariants(api.db)


def test_shutdown_waits_for_the_events_already_sent(db):
    setup = set_up(db, now=T0, member_ids=("m1", "m2"))
    token = make_key(db, setup.program_id, "events", {Scope.EVENTS})
    app = create_app(Settings(), db, clock=lambda: T0)
    bodies = [purchase(f"p{n}", f"m{n % 2 + 1}", f"o{n}", "10.00") for n in range(20)]

    async def scenario() -> list[httpx.Response]:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://patron")
        auth = {"Authorization": f"Bearer {token}"}
        lifespan = app.router.lifespan_context(app)
        with member_locked(db, setup.program_id, "m1") as release:
            await lifespan.__aenter__()
            group = app.state.runtime.group_commit
            sent = [asyncio.create_task(client.post("/v1/events", json=b, headers=auth)) for b in bodies]
            while group.waiting < len(bodies):
                await asyncio.sleep(0.002)
            # The app is told to stop while every event still waits; the lock goes a moment later.
            threading.Timer(0.05, release).start()
            await lifespan.__aexit__(None, None, None)
            stopped_with = group.waiting
        assert stopped_with == 0, "the app stopped before answering the events it had"
        replies = await asyncio.gather(*sent)
        await client.aclose()
        return replies

    replies = asyncio.run(scenario())
    assert [r.status_code for r in replies] == [201] * 20
    with db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == 20
    check_invariants(db)


def test_a_referred_members_qualifying_purchase_shows_the_referral_reward_as_when_sent_alone(referrals):  # noqa: F811
    api = referrals
    new_member(api, "bob")
    assert sign_up(api, "bob", code_of(api)).status_code == 201
    api.clock.now = datetime.fromisoformat(LATER)
    bodies = [
        purchase("first", "m1", "o0", "10.00", occurred_at=LATER),
        purchase("p-big", "bob", "big", "25.00", occurred_at=LATER),
        purchase("p-other", "m1", "o1", "10.00", occurred_at=LATER),
        purchase("p-more", "m1", "o2", "10.00", occurred_at=LATER),
    ]
    with member_locked(api.db, api.program_id, "m1") as release:
        replies = send_queued(api.client, api.tokens["events"], bodies, release)
    assert [r.status_code for r in replies] == [201] * 4, [r.text for r in replies]
    # The single-event receipt: the balance after the referee's 50 points.
    assert replies[1].json()["balance"] == api.balance("bob")
    assert replies[1].json()["balance"]["available"] == 50
    # The referrer's events after it, in the same batch, show the referrer's 100 points too.
    assert replies[3].json()["balance"] == api.balance("m1")
    assert replies[3].json()["balance"]["available"] == 100
    check_invariants(api.db)
