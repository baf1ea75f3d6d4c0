"""Reporting events: processed once, retried safely, refused whole when malformed."""

import json
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from patron.api.app import create_app
from patron.services.keys import Scope
from patron.store.tables import journal
from tests.api.conftest import TestClient, assert_problem, make_key
from tests.api.events import WHEN, purchase, refund, review, signup
from tests.conftest import T0
from tests.helpers import set_up


def journal_rows(db):
    with db.read() as conn:
        return conn.execute(sa.select(journal.c.kind, journal.c.member_id)).all()


def test_a_purchase_earns_pending_points(api):
    reply = api.post("/v1/events", key="events", json=purchase(total="150.00"))
    assert reply.status_code == 201, reply.text
    receipt = reply.json()
    # The demo program: 1 point per dollar, 50 more for a basket of 100 dollars or more; both wait 14 days.
    assert (receipt["points"], receipt["pending_points"]) == (200, 200)
    assert receipt["balance"] == {"available": 0, "pending": 200, "owed": 0}
    assert {r["rule_id"] for r in receipt["rules"] if r["fired"]} == {"purchase", "big-basket"}
    assert receipt["transaction_id"] is not None
    assert receipt["dry_run"] is False


def test_money_may_be_a_string_or_a_number(api):
    as_number = api.post("/v1/events", key="events", json=purchase(event_id="p1", order_id="o1", total=42.5))
    as_string = api.post("/v1/events", key="events", json=purchase(event_id="p2", order_id="o2", total="42.50"))
    assert (as_number.status_code, as_string.status_code) == (201, 201)
    assert as_number.json()["points"] == as_string.json()["points"] == 42


def test_refunds_and_custom_events(api):
    api.post("/v1/events", key="events", json=purchase(total="150.00"))
    clawed = api.post("/v1/events", key="events", json=refund(amount="75.00"))
    assert clawed.status_code == 201, clawed.text
    assert (clawed.json()["points"], clawed.json()["balance"]["pending"]) == (-100, 100)
    reviewed = api.post("/v1/events", key="events", json=review())
    assert (reviewed.status_code, reviewed.json()["points"]) == (201, 20)


def test_a_retry_gets_the_first_receipt_with_200_and_posts_nothing(api):
    first = api.post("/v1/events", key="events", json=signup())
    after_first = api.snapshot()
    again = api.post("/v1/events", key="events", json=signup())
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert api.snapshot() == after_first
    assert api.balance("m1")["available"] == 100


def test_the_same_event_id_with_another_body_is_409_and_changes_nothing(api):
    assert api.post("/v1/events", key="events", json=purchase(total="150.00")).status_code == 201
    before = api.snapshot()
    for changed in (purchase(total="1500.00"), purchase(order_id="o2"), signup(event_id="p1")):
        problem = assert_problem(api.post("/v1/events", key="events", json=changed), 409, "event_id")
        assert "p1" in problem["detail"]
    assert api.snapshot() == before


def test_event_ids_are_per_program(api):
    """Two merchants' tills may number their events alike: the same id in another program is another event."""
    ours = api.post("/v1/events", key="events", json=purchase(total="150.00"))
    theirs = api.post("/v1/events", key="other", json=purchase(total="10.00"))
    assert (ours.status_code, theirs.status_code) == (201, 201), theirs.text
    assert theirs.json()["transaction_id"] != ours.json()["transaction_id"]
    # Each retry gets its own program's first receipt.
    assert api.post("/v1/events", key="events", json=purchase(total="150.00")).json() == ours.json()
    assert api.post("/v1/events", key="other", json=purchase(total="10.00")).json() == theirs.json()
    assert api.balance("m1")["pending"] == ours.json()["balance"]["pending"]
    assert api.balance("m1", key="other")["pending"] == theirs.json()["balance"]["pending"]


def test_a_dry_run_decides_and_writes_nothing(api):
    before = api.snapshot()
    tried = api.post("/v1/events", key="events", params={"dry_run": "true"}, json=purchase(total="150.00"))
    assert tried.status_code == 200, tried.text
    assert (tried.json()["dry_run"], tried.json()["points"], tried.json()["transaction_id"]) == (True, 200, None)
    assert api.snapshot() == before
    # The event id was not used up: sending it for real processes it, with the same decision.
    real = api.post("/v1/events", key="events", json=purchase(total="150.00"))
    assert (real.status_code, real.json()["points"], real.json()["dry_run"]) == (201, 200, False)


def test_a_dry_run_refuses_what_the_real_thing_would(api):
    before = api.snapshot()
    assert_problem(api.post("/v1/events?dry_run=true", key="events", json=purchase(total="-1")), 422, "total")
    assert_problem(api.post("/v1/events?dry_run=true", key="events", json=signup(member_id="theirs")), 404, "member_id")
    assert_problem(api.post("/v1/events?dry_run=maybe", key="events", json=signup()), 422, "dry_run")
    assert api.snapshot() == before


def test_events_for_unknown_or_another_programs_members_are_404(api):
    before = api.snapshot()
    for member_id in ("nobody", "theirs"):
        assert_problem(api.post("/v1/events", key="events", json=signup(member_id=member_id)), 404, "member_id")
    assert api.snapshot() == before


def test_an_order_reported_twice_is_refused(api):
    assert api.post("/v1/events", key="events", json=purchase(event_id="p1")).status_code == 201
    before = api.snapshot()
    assert_problem(api.post("/v1/events", key="events", json=purchase(event_id="p2")), 422, "order_id")
    assert api.snapshot() == before


LINE = {"sku": "CD-1", "unit_price": "10.00"}
BAD_EVENTS = [
    ("negative total", purchase(total="-5.00"), "total"),
    ("negative total as a number", purchase(total=-5), "total"),
    ("non-numeric total", purchase(total="ten dollars"), "total"),
    ("total as a boolean", purchase(total=True), "total"),
    ("total as a list", purchase(total=[1]), "total"),
    ("NaN total", purchase(total="NaN"), "total"),
    ("infinite total", purchase(total="Infinity"), "total"),
    ("huge total", purchase(total="1e400"), "total"),
    ("huge total, all digits", purchase(total="9" * 40), "total"),
    ("fractional cents", purchase(total="10.00001"), "total"),
    ("fractional quantity", purchase(lines=[LINE | {"quantity": 1.5}]), "lines.0.quantity"),
    ("quantity as a string", purchase(lines=[LINE | {"quantity": "2"}]), "lines.0.quantity"),
    ("zero quantity", purchase(lines=[LINE | {"quantity": 0}]), "lines.0.quantity"),
    ("huge quantity", purchase(lines=[LINE | {"quantity": 10**30}]), "lines.0.quantity"),
    ("negative unit price", purchase(lines=[{"sku": "CD-1", "unit_price": "-1"}]), "lines.0.unit_price"),
    ("line without a price", purchase(lines=[{"sku": "CD-1"}]), "lines.0.unit_price"),
    ("zero refund", refund(amount="0"), "amount"),
    ("negative refund", refund(amount="-10.00"), "amount"),
    ("refund of nothing", refund(), None),
    ("naive time", signup(occurred_at="2026-01-05T10:00:00"), "occurred_at"),
    ("not a time", signup(occurred_at="last tuesday"), "occurred_at"),
    ("unknown type", signup(type="bonus"), "type"),
    ("no type", {k: v for k, v in signup().items() if k != "type"}, "type"),
    ("no member", {k: v for k, v in signup().items() if k != "member_id"}, "member_id"),
    ("a balance", signup(balance=1_000_000), "balance"),
    ("a tier", signup(tier="gold"), "tier"),
    ("points", purchase(points=5000), "points"),
    ("bad event id", signup(event_id="has spaces"), "event_id"),
    ("custom event posing as a signup", review(name="signup"), None),
    ("custom attribute of the wrong kind", review(attributes={"stars": [5]}), "attributes.stars"),
    ("not an object", ["signup"], None),
]


def test_malformed_events_are_422_naming_the_field_and_change_nothing(api):
    before = api.snapshot()
    for name, body, field in BAD_EVENTS:
        reply = api.post("/v1/events", key="events", json=body)
        assert reply.status_code == 422, (name, reply.text)
        assert_problem(reply, 422, field)
    assert api.snapshot() == before


def test_bodies_that_are_not_json_numbers_or_not_json_are_4xx_and_change_nothing(api):
    before = api.snapshot()
    template = json.dumps(purchase(total="__TOTAL__"))
    raw = {
        "float overflow": template.replace('"__TOTAL__"', "1e400"),
        "NaN literal": template.replace('"__TOTAL__"', "NaN"),
        "5000 digits": template.replace('"__TOTAL__"', "9" * 5000),
        "not JSON": "{type: purchase",
        "empty": "",
    }
    for name, content in raw.items():
        reply = api.post("/v1/events", key="events", content=content, headers={"Content-Type": "application/json"})
        assert 400 <= reply.status_code < 500, (name, reply.text)
        assert reply.headers["content-type"] == "application/problem+json", name
    text = api.post("/v1/events", key="events", content=json.dumps(signup()), headers={"Content-Type": "text/plain"})
    assert_problem(text, 422, None)
    assert "Content-Type" in text.json()["detail"]
    assert api.snapshot() == before


def test_twenty_identical_deliveries_at_once_are_processed_once(pg_db):
    """LEDGER scenario 3 through HTTP: one 201, nineteen 200s, one journal transaction, identical bodies."""
    set_up(pg_db, now=T0)
    token = make_key(pg_db, 1, "events", {Scope.EVENTS})
    body = purchase(total="150.00")
    with TestClient(create_app(database=pg_db, clock=lambda: T0)) as client:

        def send(_):
            return client.post("/v1/events", json=body, headers={"Authorization": f"Bearer {token}"})

        with ThreadPoolExecutor(max_workers=20) as pool:
            replies = list(pool.map(send, range(20)))
    print([r.status_code for r in replies], {r.text for r in replies}, journal_rows(pg_db))
    assert sorted(r.status_code for r in replies) == [200] * 19 + [201]
    assert len({r.text for r in replies}) == 1
    assert journal_rows(pg_db) == [("purchase", 1)]
    assert WHEN in replies[0].text or replies[0].json()["event_id"] == "p1"
