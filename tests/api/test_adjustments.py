"""Adjustments: an admin adds or removes points by hand, says why, and the audit trail remembers who."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import sqlalchemy as sa

from patron.api.app import create_app
from patron.services import maintenance
from patron.services.keys import Scope
from patron.store.tables import audit_log, members
from tests.api.conftest import TestClient, assert_problem, make_key
from tests.api.events import purchase, refund, signup
from tests.conftest import T0
from tests.helpers import check_invariants, set_up


def adjust(api, points, reason="goodwill", member_id="m1", key="admin", **kwargs):
    body = {"points": points, "reason": reason}
    return api.post(f"/v1/members/{member_id}/adjustments", key=key, json=body, **kwargs)


def audit_rows(db):
    with db.read() as conn:
        return conn.execute(
            sa.select(
                audit_log.c.program_id,
                audit_log.c.actor,
                audit_log.c.action,
                members.c.external_id,
                audit_log.c.reason,
                audit_log.c.detail,
                audit_log.c.created_at,
            )
            .join(members, members.c.id == audit_log.c.member_id)
            .order_by(audit_log.c.id)
        ).all()


def test_adding_points_makes_a_lot_that_expires_like_earned_points(api):
    reply = adjust(api, 250, "the parcel arrived late")
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert (body["member_id"], body["points"], body["reason"]) == ("m1", 250, "the parcel arrived late")
    assert body["balance"] == {"available": 250, "pending": 0, "owed": 0}
    lots = api.get("/v1/members/m1/lots", key="read").json()
    # The demo program: lots expire 12 months after they were earned.
    assert [(lot["points"], lot["remaining"], lot["expires_at"]) for lot in lots] == [
        (250, 250, "2027-01-05T12:00:00Z")
    ]
    entry = api.get("/v1/members/m1/history", key="read").json()["entries"][0]
    assert (entry["kind"], entry["transaction_id"]) == ("adjust", body["transaction_id"])
    assert "the parcel arrived late" in entry["memo"]
    check_invariants(api.db)


def test_removing_points_takes_the_first_to_expire(api):
    api.fund("m1", 100)
    api.clock.now += timedelta(days=31)
    api.fund("m1", 100)
    reply = adjust(api, -150, "points given in error")
    assert reply.status_code == 201, reply.text
    assert (reply.json()["points"], reply.json()["balance"]["available"]) == (-150, 50)
    lots = api.get("/v1/members/m1/lots", key="read").json()
    assert [(lot["points"], lot["remaining"], lot["expires_at"]) for lot in lots] == [(100, 50, "2027-02-05T12:00:00Z")]
    check_invariants(api.db)


def test_every_adjustment_is_audited_with_the_keys_name_and_the_reason(api):
    plus = adjust(api, 300, "birthday gift").json()
    api.clock.now += timedelta(hours=2)
    minus = adjust(api, -120, "duplicate gift").json()
    assert audit_rows(api.db) == [
        (api.program_id, "admin-key", "points.adjust", "m1", "birthday gift", detail(plus), T0),
        (api.program_id, "admin-key", "points.adjust", "m1", "duplicate gift", detail(minus), T0 + timedelta(hours=2)),
    ]
    # A key of the other program adjusting its own m1 is audited under its own name and program.
    assert adjust(api, 10, "their goodwill", key="other").status_code == 201
    assert audit_rows(api.db)[-1][:5] == (api.other_program_id, "other-admin", "points.adjust", "m1", "their goodwill")


def detail(view):
    return {"points": view["points"], "transaction_id": view["transaction_id"]}


def test_a_reason_is_required(api):
    before = api.snapshot()
    for reason in ("", "   ", "x" * 501, None, 5):
        assert_problem(adjust(api, 10, reason), 422, "reason")
    assert_problem(api.post("/v1/members/m1/adjustments", json={"points": 10}), 422, "reason")
    assert api.snapshot() == before


def test_points_are_a_whole_non_zero_number_within_bounds(api):
    api.fund("m1", 100)
    before = api.snapshot()
    for points in (0, 1.0, 2.5, "5", "five", True, None, [5], {"points": 5}, 10**9 + 1, -(10**9) - 1, 10**30):
        assert_problem(adjust(api, points), 422, "points")
    assert_problem(api.post("/v1/members/m1/adjustments", json={"reason": "x"}), 422, "points")
    for raw in ("1e3", "1E400", "NaN", "9" * 5000):
        reply = api.post(
            "/v1/members/m1/adjustments",
            content=f'{{"points": {raw}, "reason": "x"}}',
            headers={"Content-Type": "application/json"},
        )
        assert 400 <= reply.status_code < 500, (raw, reply.text)
        assert reply.headers["content-type"] == "application/problem+json"
    assert api.snapshot() == before
    assert adjust(api, 10**9).status_code == 201  # the largest adjustment there is


def test_nothing_but_points_and_reason_may_be_sent(api):
    before = api.snapshot()
    for extra in ({"balance": 5}, {"tier": "gold"}, {"actor": "someone-else"}, {"expires_at": None}):
        (name,) = extra
        reply = api.post("/v1/members/m1/adjustments", json={"points": 10, "reason": "x", **extra})
        assert_problem(reply, 422, name)
    assert api.snapshot() == before


def test_removing_more_than_is_available_is_409_and_changes_nothing(api):
    api.fund("m1", 100)
    assert api.post("/v1/events", key="events", json=purchase(total="150.00")).status_code == 201  # 200 pending
    before = api.snapshot()
    # Pending points cannot be removed: 100 are available however many are pending.
    problem = assert_problem(adjust(api, -101), 409, "points")
    assert "100 are available" in problem["detail"]
    assert api.snapshot() == before
    assert adjust(api, -100).json()["balance"] == {"available": 0, "pending": 200, "owed": 0}


def test_points_added_pay_off_points_owed_first(api):
    assert api.post("/v1/events", key="events", json=signup()).status_code == 201  # 100 available
    assert api.post("/v1/events", key="events", json=purchase(total="150.00")).status_code == 201  # 200 pending
    maintenance.activate(api.db, now=api.clock.now + timedelta(days=15))
    assert api.post("/v1/members/m1/redemptions", key="redeem", json={"reward_id": "free-single"}).status_code == 201
    assert api.post("/v1/events", key="events", json=refund(amount="150.00")).status_code == 201
    assert api.balance("m1") == {"available": 0, "pending": 0, "owed": 200}  # the refunded points were spent

    reply = adjust(api, 250, "settling up")
    assert reply.json()["balance"] == {"available": 50, "pending": 0, "owed": 0}
    assert [lot["remaining"] for lot in api.get("/v1/members/m1/lots").json()] == [50]
    check_invariants(api.db)


def test_adjusting_needs_an_admin_key_of_the_members_program(api):
    assert api.put("/v1/members/ours", key="events", json={}).status_code == 201
    before = api.snapshot()
    for key in ("read", "events", "redeem"):
        assert_problem(adjust(api, 10, member_id="ours", key=key), 403, "Authorization")
    for member_id, key in (("ours", "other"), ("theirs", "admin"), ("nobody", "admin")):
        assert_problem(adjust(api, 10, member_id=member_id, key=key), 404, "member_id")
    assert api.snapshot() == before


def test_a_retry_with_the_same_idempotency_key_gets_the_first_reply(api):
    first = adjust(api, 75, "late delivery", headers={"Idempotency-Key": "ticket-9"})
    assert first.status_code == 201, first.text
    after_first = api.snapshot()
    again = adjust(api, 75, "late delivery", headers={"Idempotency-Key": "ticket-9"})
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (200, "true")
    assert again.json() == first.json()
    assert api.snapshot() == after_first
    assert len(audit_rows(api.db)) == 1


def test_the_same_idempotency_key_with_another_body_is_409_and_changes_nothing(api):
    assert adjust(api, 75, "late delivery", headers={"Idempotency-Key": "ticket-9"}).status_code == 201
    before = api.snapshot()
    for points, reason in ((76, "late delivery"), (75, "very late")):
        reply = adjust(api, points, reason, headers={"Idempotency-Key": "ticket-9"})
        problem = assert_problem(reply, 409, "Idempotency-Key")
        assert "ticket-9" in problem["detail"]
    assert api.snapshot() == before
    assert api.put("/v1/members/m2", key="events", json={}).status_code == 201
    before = api.snapshot()
    reply = adjust(api, 75, "late delivery", member_id="m2", headers={"Idempotency-Key": "ticket-9"})
    assert_problem(reply, 409, "Idempotency-Key")
    assert api.snapshot() == before
    assert api.balance("m1") == {"available": 75, "pending": 0, "owed": 0}


def test_one_idempotency_key_sent_ten_times_at_once_adjusts_once(pg_db):
    set_up(pg_db, now=T0)
    token = make_key(pg_db, 1, "support", {Scope.ADMIN})
    with TestClient(create_app(database=pg_db, clock=lambda: T0)) as client:

        def send(_):
            return client.post(
                "/v1/members/m1/adjustments",
                json={"points": 40, "reason": "late delivery"},
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "ticket-12"},
            )

        with ThreadPoolExecutor(max_workers=10) as pool:
            replies = list(pool.map(send, range(10)))
    assert sorted(r.status_code for r in replies) == [200] * 9 + [201], [r.text for r in replies]
    assert len({r.text for r in replies}) == 1
    assert len(audit_rows(pg_db)) == 1
    check_invariants(pg_db)
