"""Batches: one result per event, in order; a bad event fails alone, a malformed batch fails whole."""

from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from patron.api.app import create_app
from patron.services.keys import Scope
from patron.store.tables import journal
from tests.api.conftest import TestClient, assert_problem, make_key
from tests.api.events import purchase, review, signup
from tests.conftest import T0
from tests.helpers import set_up


def transactions(db):
    with db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(journal)).scalar_one()


def test_good_and_bad_events_in_one_batch_each_get_their_own_result(api):
    batch = [
        signup(),  # 0: processed
        purchase(event_id="p1", total="-1"),  # 1: malformed
        5,  # 2: not even an object
        signup(event_id="s2", member_id="theirs"),  # 3: another program's member
        purchase(event_id="p2", total="150.00"),  # 4: processed
        signup(),  # 5: the same event again in the batch: a retry of 0
        purchase(event_id="p2", total="99.00"),  # 6: the id of 4 with another body
        review(balance=10),  # 7: a field nobody may set
    ]
    reply = api.post("/v1/events/batch", key="events", json={"events": batch})
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert [(r["index"], r["status"]) for r in results] == [
        (0, 201),
        (1, 422),
        (2, 422),
        (3, 404),
        (4, 201),
        (5, 200),
        (6, 409),
        (7, 422),
    ]
    assert results[5]["receipt"] == results[0]["receipt"]
    assert (results[0]["receipt"]["points"], results[4]["receipt"]["points"]) == (100, 200)
    problems = {r["index"]: r["problem"] for r in results if "problem" in r}
    assert {i: [e["field"] for e in p["errors"]] for i, p in problems.items()} == {
        1: ["total"],
        2: [None],
        3: ["member_id"],
        6: ["event_id"],
        7: ["balance"],
    }
    assert all(p["status"] == r["status"] for r in results for p in [r.get("problem")] if p)
    assert api.balance("m1") == {"available": 100, "pending": 200, "owed": 0}
    assert transactions(api.db) == 2


def test_an_id_whose_first_delivery_failed_in_the_batch_is_free_for_another_body(api):
    batch = [
        purchase(event_id="p1", member_id="nobody"),  # 0: unknown member, nothing stored
        purchase(event_id="p1", total="150.00"),  # 1: the same id with another body: judged on its own
        purchase(event_id="p1", member_id="nobody"),  # 2: the first body again: now another body than 1's
        purchase(event_id="p1", total="150.00"),  # 3: a retry of 1
    ]
    results = api.post("/v1/events/batch", key="events", json={"events": batch}).json()["results"]
    assert [r["status"] for r in results] == [404, 201, 409, 200]
    assert results[3]["receipt"] == results[1]["receipt"]
    # The same as sending them one at a time.
    alone = api.post("/v1/events", key="events", json=purchase(event_id="p1", total="150.00"))
    assert (alone.status_code, alone.json()) == (200, results[1]["receipt"])
    assert api.balance("m1")["pending"] == results[1]["receipt"]["points"] > 0


def test_a_batch_sent_again_is_answered_from_the_first_receipts(api):
    batch = {"events": [signup(), purchase(total="150.00")]}
    first = api.post("/v1/events/batch", key="events", json=batch).json()["results"]
    after_first = api.snapshot()
    again = api.post("/v1/events/batch", key="events", json=batch).json()["results"]
    assert [r["status"] for r in first] == [201, 201]
    assert [r["status"] for r in again] == [200, 200]
    assert [r["receipt"] for r in again] == [r["receipt"] for r in first]
    assert api.snapshot() == after_first


def test_a_batch_answers_events_already_sent_alone(api):
    single = api.post("/v1/events", key="events", json=signup()).json()
    results = api.post("/v1/events/batch", key="events", json={"events": [signup()]}).json()["results"]
    assert results == [{"index": 0, "status": 200, "receipt": single}]


def test_a_batch_of_only_bad_events_changes_nothing(api):
    before = api.snapshot()
    batch = [
        purchase(total="ten"),
        signup(occurred_at="2026-01-05T10:00:00"),
        signup(member_id="nobody"),
        {"type": "bonus"},
        None,
    ]
    results = api.post("/v1/events/batch", key="events", json={"events": batch}).json()["results"]
    assert [r["status"] for r in results] == [422, 422, 404, 422, 422]
    assert [r["problem"]["errors"][0]["field"] for r in results] == ["total", "occurred_at", "member_id", "type", None]
    assert api.snapshot() == before


def test_the_batch_itself_must_be_well_formed(api):
    before = api.snapshot()
    assert_problem(api.post("/v1/events/batch", key="events", json={"events": []}), 422, "events")
    assert_problem(api.post("/v1/events/batch", key="events", json={"events": signup()}), 422, "events")
    assert_problem(api.post("/v1/events/batch", key="events", json={}), 422, "events")
    assert_problem(api.post("/v1/events/batch", key="events", json=[signup()]), 422, None)
    extra = api.post("/v1/events/batch", key="events", json={"events": [signup()], "atomic": True})
    assert_problem(extra, 422, "atomic")
    too_many = [signup(event_id=f"s{i}") for i in range(1001)]
    problem = assert_problem(api.post("/v1/events/batch", key="events", json={"events": too_many}), 422, "events")
    assert "1000" in problem["detail"]
    assert api.snapshot() == before


def test_a_thousand_events_is_the_most_a_batch_may_hold(api):
    # Malformed on purpose, so the limit is tested without a thousand writes.
    batch = [{"type": "signup", "event_id": f"s{i}"} for i in range(1000)]
    reply = api.post("/v1/events/batch", key="events", json={"events": batch})
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert [r["index"] for r in results] == list(range(1000))
    assert {r["status"] for r in results} == {422}


def test_batches_racing_with_the_same_purchase_post_it_once(pg_db):
    """Ten batches holding the same purchase, at once: it is processed by one and replayed to the others."""
    set_up(pg_db, now=T0)
    token = make_key(pg_db, 1, "events", {Scope.EVENTS})
    body = {"events": [purchase(total="150.00")]}
    with TestClient(create_app(database=pg_db, clock=lambda: T0)) as client:

        def send(_):
            return client.post("/v1/events/batch", json=body, headers={"Authorization": f"Bearer {token}"})

        with ThreadPoolExecutor(max_workers=10) as pool:
            results = [r.json()["results"][0] for r in pool.map(send, range(10))]
    assert sorted(r["status"] for r in results) == [200] * 9 + [201], results
    assert len({str(r["receipt"]) for r in results}) == 1
    assert transactions(pg_db) == 1


def test_a_batch_checks_the_member_before_the_event_id_as_a_single_event_does(api):
    assert api.post("/v1/events", key="events", json=purchase(event_id="p1")).status_code == 201
    sent = [
        purchase(event_id="p1", member_id="nobody"),  # an unknown member, an id already taken: 404 first
        purchase(event_id="p1"),  # the stored body again: a replay
        purchase(event_id="p1", total="99.00"),  # another body: 409
    ]
    one_by_one = [api.post("/v1/events", key="events", json=body).status_code for body in sent]
    results = api.post("/v1/events/batch", key="events", json={"events": sent}).json()["results"]
    assert [r["status"] for r in results] == one_by_one == [404, 200, 409]


def test_a_batch_writes_its_event_and_order_ids_in_key_order(pg_db):
    """Two batches from two processes holding some of the same event or order ids would deadlock if they wrote them
    in opposite orders (each holding a key the other waits for). Written in key order, whatever the order of the
    batch, one simply waits for the other. PostgreSQL's heap keeps the order rows were written in (ctid)."""
    set_up(pg_db, now=T0)
    token = make_key(pg_db, 1, "events", {Scope.EVENTS})
    sent = [purchase(event_id=f"e{n}", order_id=f"o{n}", total="10.00") for n in (5, 3, 9, 1, 7)]
    with TestClient(create_app(database=pg_db, clock=lambda: T0)) as client:
        reply = client.post("/v1/events/batch", json={"events": sent}, headers={"Authorization": f"Bearer {token}"})
    assert [r["status"] for r in reply.json()["results"]] == [201] * 5
    with pg_db.read() as conn:
        written_events = conn.execute(sa.text("SELECT event_id FROM events ORDER BY ctid")).scalars().all()
        written_orders = conn.execute(sa.text("SELECT order_id FROM orders ORDER BY ctid")).scalars().all()
    assert written_events == ["e1", "e3", "e5", "e7", "e9"]
    assert written_orders == ["o1", "o3", "o5", "o7", "o9"]
