"""Redeeming rewards: the points leave, a code or a gift comes out, and nothing happens twice or half-way."""

import re
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from patron.api.app import create_app
from patron.domain.members import MemberProfile
from patron.services import adjustments, members, programs
from patron.services.keys import Scope
from patron.store.tables import audit_log, redemptions, reward_stock
from tests.api.conftest import TestClient, assert_problem, make_key
from tests.api.documents import demo_document, gift
from tests.api.events import purchase, signup
from tests.conftest import T0
from tests.helpers import check_invariants, program_document, set_up

# Crockford base32 (no I, L, O, U) in three groups of four, as a till operator reads it out.
CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


def redeem(api, reward_id, member_id="m1", key="redeem", **kwargs):
    return api.post(f"/v1/members/{member_id}/redemptions", key=key, json={"reward_id": reward_id}, **kwargs)


def remaining(api, reward_id):
    rewards = api.get("/v1/rewards", key="read").json()["rewards"]
    return next(r["remaining"] for r in rewards if r["id"] == reward_id)


def publish(api, document, effective_from="2026-01-01T00:00:00Z"):
    reply = api.post("/v1/program/versions", json={"document": document, "effective_from": effective_from})
    assert reply.status_code == 201, reply.text
    return reply.json()["version"]


def enrol(api, member_id, points=0):
    assert api.put(f"/v1/members/{member_id}", key="events", json={}).status_code == 201
    if points:
        api.fund(member_id, points)


def test_a_coupon_spends_the_points_and_gives_a_code(api):
    api.fund("m1", 650)
    reply = redeem(api, "coupon-5")
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert (body["member_id"], body["reward_id"], body["reward_kind"]) == ("m1", "coupon-5", "coupon")
    assert body["cost"] == 500
    assert CODE.match(body["coupon_code"]), body["coupon_code"]
    assert body["balance"] == {"available": 150, "pending": 0, "owed": 0}
    assert api.balance("m1")["available"] == 150
    history = api.get("/v1/members/m1/history", key="read").json()["entries"]
    assert (history[0]["kind"], history[0]["transaction_id"]) == ("redeem", body["transaction_id"])
    assert [(p["account"], p["amount"]) for p in history[0]["postings"]] == [("available", -500)]
    check_invariants(api.db)


def test_a_free_product_gives_a_code_and_every_code_is_different(api):
    api.fund("m1", 900)
    codes = []
    for _ in range(3):
        reply = redeem(api, "free-single")
        assert reply.status_code == 201, reply.text
        assert (reply.json()["reward_kind"], reply.json()["cost"]) == ("free_product", 300)
        codes.append(reply.json()["coupon_code"])
    assert all(CODE.match(code) for code in codes)
    assert len(set(codes)) == 3
    assert api.balance("m1")["available"] == 0


def test_a_gift_takes_one_from_the_stock_and_gives_no_code(api):
    api.fund("m1", 1200)
    assert remaining(api, "tote-bag") == 50
    reply = redeem(api, "tote-bag")
    assert reply.status_code == 201, reply.text
    assert (reply.json()["reward_kind"], reply.json()["coupon_code"]) == ("gift", None)
    assert remaining(api, "tote-bag") == 49
    assert api.balance("m1")["available"] == 200


def test_a_gift_out_of_stock_is_409_and_changes_nothing(api):
    publish(api, demo_document(rewards=[gift("mug", stock=1)]))
    enrol(api, "m2", 100)
    api.fund("m1", 100)
    assert redeem(api, "mug").status_code == 201
    assert remaining(api, "mug") == 0
    before = api.snapshot()
    problem = assert_problem(redeem(api, "mug", member_id="m2"), 409, "reward_id")
    assert "out of stock" in problem["detail"]
    assert problem["title"] == "Out of stock"
    assert api.snapshot() == before
    assert api.balance("m2")["available"] == 100


def test_stock_lowered_below_what_was_given_leaves_none(api):
    publish(api, demo_document(rewards=[gift("mug", stock=5)]))
    api.fund("m1", 300)
    for _ in range(2):
        assert redeem(api, "mug").status_code == 201
    publish(api, demo_document(rewards=[gift("mug", stock=1)]), effective_from="2026-01-02T00:00:00Z")
    assert remaining(api, "mug") == 0
    assert_problem(redeem(api, "mug"), 409, "reward_id")
    assert api.balance("m1")["available"] == 100


def test_the_per_member_limit_is_409_and_changes_nothing(api):
    api.fund("m1", 2500)
    assert redeem(api, "tote-bag").status_code == 201  # the demo tote bag: one per member
    before = api.snapshot()
    problem = assert_problem(redeem(api, "tote-bag"), 409, "reward_id")
    assert "limited to 1 per member" in problem["detail"]
    assert api.snapshot() == before
    assert (api.balance("m1")["available"], remaining(api, "tote-bag")) == (1500, 49)
    # The limit is per member: another member still may.
    enrol(api, "m2", 1000)
    assert redeem(api, "tote-bag", member_id="m2").status_code == 201


def test_too_few_points_is_409_naming_the_cost_and_changes_nothing(api):
    assert api.post("/v1/events", key="events", json=signup()).status_code == 201  # 100 available
    assert api.post("/v1/events", key="events", json=purchase(total="250.00")).status_code == 201  # 300 pending
    before = api.snapshot()
    # Pending points cannot be spent: 100 available is not enough for 300, whatever is pending.
    problem = assert_problem(redeem(api, "free-single"), 409, "reward_id")
    assert problem["title"] == "Not enough points"
    assert "300" in problem["detail"]
    assert "100" in problem["detail"]
    assert_problem(redeem(api, "tote-bag"), 409, "reward_id")  # a gift: and its stock is untouched
    assert api.snapshot() == before
    assert remaining(api, "tote-bag") == 50


def test_an_unknown_reward_is_404_and_a_malformed_one_422(api):
    api.fund("m1", 1000)
    before = api.snapshot()
    assert_problem(redeem(api, "no-such-reward"), 404, "reward_id")
    for bad in ("Coupon 5", "", 5, None, ["coupon-5"], "x" * 65):
        assert_problem(redeem(api, bad), 422, "reward_id")
    assert_problem(api.post("/v1/members/m1/redemptions", key="redeem", json={}), 422, "reward_id")
    assert api.snapshot() == before


def test_a_reward_of_another_version_or_another_program_is_not_found(api):
    api.fund("m1", 1000)
    # The other program offers a reward ours does not; our key cannot redeem it.
    other_document = program_document(rewards=[gift("their-mug", stock=10)])
    programs.publish(api.db, api.other_program_id, other_document, actor="test", now=T0, effective_from=T0)
    # A reward that only a future version of our program will offer is not redeemable yet.
    publish(api, demo_document(rewards=[gift("mug", stock=3)]), effective_from="2026-02-01T00:00:00Z")
    before = api.snapshot()
    assert_problem(redeem(api, "their-mug"), 404, "reward_id")
    assert_problem(redeem(api, "mug"), 404, "reward_id")
    assert api.snapshot() == before


def test_members_of_other_programs_and_unknown_members_are_404(api):
    api.fund("m1", 1000)
    before = api.snapshot()
    for member_id in ("theirs", "nobody"):
        assert_problem(redeem(api, "free-single", member_id=member_id), 404, "member_id")
    assert_problem(redeem(api, "free-single", member_id="has space"), 422, "member_id")
    assert api.snapshot() == before


def test_redeeming_needs_the_redeem_scope_in_the_members_program(api):
    enrol(api, "ours", 1000)
    before = api.snapshot()
    for key in ("read", "events"):
        assert_problem(redeem(api, "free-single", member_id="ours", key=key), 403, "Authorization")
    # An admin key of the other program does not see our member at all.
    assert_problem(redeem(api, "free-single", member_id="ours", key="other"), 404, "member_id")
    assert api.snapshot() == before
    assert redeem(api, "free-single", member_id="ours", key="admin").status_code == 201


def test_a_retry_with_the_same_idempotency_key_gets_the_first_reply(api):
    api.fund("m1", 1000)
    first = redeem(api, "free-single", headers={"Idempotency-Key": "order-77"})
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    after_first = api.snapshot()
    for _ in range(2):
        again = redeem(api, "free-single", headers={"Idempotency-Key": "order-77"})
        assert again.status_code == 200, again.text
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()  # the same code, the same balance as then
    assert api.snapshot() == after_first
    assert api.balance("m1")["available"] == 700
    # A new key is a new redemption.
    assert redeem(api, "free-single", headers={"Idempotency-Key": "order-78"}).status_code == 201
    assert api.balance("m1")["available"] == 400


def test_the_same_idempotency_key_for_another_request_is_409_and_changes_nothing(api):
    api.fund("m1", 1000)
    enrol(api, "m2", 1000)
    assert redeem(api, "free-single", headers={"Idempotency-Key": "k1"}).status_code == 201
    before = api.snapshot()
    for reward_id, member_id in (("coupon-5", "m1"), ("free-single", "m2")):
        reply = redeem(api, reward_id, member_id=member_id, headers={"Idempotency-Key": "k1"})
        problem = assert_problem(reply, 409, "Idempotency-Key")
        assert "k1" in problem["detail"]
    # Nor may an adjustment reuse a redemption's key.
    reply = api.post("/v1/members/m1/adjustments", json={"points": 5, "reason": "x"}, headers={"Idempotency-Key": "k1"})
    assert_problem(reply, 409, "Idempotency-Key")
    assert api.snapshot() == before


def test_idempotency_keys_are_per_program(api):
    api.fund("m1", 1000)
    ours = redeem(api, "free-single", headers={"Idempotency-Key": "shared"})
    assert ours.status_code == 201, ours.text
    # The other program's m1 is another member; the same key there is a new request, not a replay of ours.
    funded = api.post("/v1/members/m1/adjustments", key="other", json={"points": 300, "reason": "funds"})
    assert funded.status_code == 201, funded.text
    theirs = redeem(api, "free-single", key="other", headers={"Idempotency-Key": "shared"})
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["coupon_code"] != ours.json()["coupon_code"]
    assert (api.balance("m1")["available"], api.balance("m1", key="other")["available"]) == (700, 0)


def test_a_bad_idempotency_key_is_422(api):
    api.fund("m1", 1000)
    before = api.snapshot()
    for bad in ("", "k" * 256):
        assert_problem(redeem(api, "free-single", headers={"Idempotency-Key": bad}), 422, "Idempotency-Key")
    assert api.snapshot() == before


def test_concurrent_redemptions_never_give_more_gifts_than_the_stock(pg_db):
    """Ten members race for three mugs: three get one, seven get 409, and the stock ends at zero, not below."""
    setup = set_up(pg_db, program_document(rewards=[gift("mug", stock=3)]), member_ids=(), now=T0)
    member_ids = [f"m{i}" for i in range(10)]
    for member_id in member_ids:
        members.upsert(pg_db, setup.program_id, member_id, MemberProfile(), now=T0)
        adjustments.adjust(pg_db, setup.cache, setup.program_id, member_id, 100, "funds", actor="test", now=T0)
    token = make_key(pg_db, setup.program_id, "till", {Scope.REDEEM})
    with TestClient(create_app(database=pg_db, clock=lambda: T0)) as client:

        def send(member_id):
            return client.post(
                f"/v1/members/{member_id}/redemptions",
                json={"reward_id": "mug"},
                headers={"Authorization": f"Bearer {token}"},
            )

        with ThreadPoolExecutor(max_workers=10) as pool:
            replies = list(pool.map(send, member_ids))
    assert sorted(r.status_code for r in replies) == [201] * 3 + [409] * 7, [r.text for r in replies]
    with pg_db.read() as conn:
        assert conn.execute(sa.select(reward_stock.c.given)).scalar_one() == 3
        assert conn.execute(sa.select(sa.func.count()).select_from(redemptions)).scalar_one() == 3
    check_invariants(pg_db)


def test_concurrent_redemptions_by_one_member_respect_the_limit(pg_db):
    """One member fires the same limited redemption ten times at once: exactly one goes through."""
    setup = set_up(pg_db, now=T0)
    adjustments.adjust(pg_db, setup.cache, setup.program_id, "m1", 10_000, "funds", actor="test", now=T0)
    token = make_key(pg_db, setup.program_id, "till", {Scope.REDEEM})
    with TestClient(create_app(database=pg_db, clock=lambda: T0)) as client:

        def send(_):
            return client.post(
                "/v1/members/m1/redemptions",
                json={"reward_id": "tote-bag"},
                headers={"Authorization": f"Bearer {token}"},
            )

        with ThreadPoolExecutor(max_workers=10) as pool:
            replies = list(pool.map(send, range(10)))
    assert sorted(r.status_code for r in replies) == [201] + [409] * 9, [r.text for r in replies]
    with pg_db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(redemptions)).scalar_one() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one() == 1  # the funding
    check_invariants(pg_db)


def test_one_idempotency_key_sent_ten_times_at_once_redeems_once(pg_db):
    """A till that retries before the first reply arrives: one redemption, and every reply is the first one."""
    setup = set_up(pg_db, now=T0)
    adjustments.adjust(pg_db, setup.cache, setup.program_id, "m1", 1000, "funds", actor="test", now=T0)
    token = make_key(pg_db, setup.program_id, "till", {Scope.REDEEM})
    with TestClient(create_app(database=pg_db, clock=lambda: T0)) as client:

        def send(_):
            return client.post(
                "/v1/members/m1/redemptions",
                json={"reward_id": "free-single"},
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "till-7-sale-1"},
            )

        with ThreadPoolExecutor(max_workers=10) as pool:
            replies = list(pool.map(send, range(10)))
    assert sorted(r.status_code for r in replies) == [200] * 9 + [201], [r.text for r in replies]
    assert len({r.text for r in replies}) == 1
    with pg_db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(redemptions)).scalar_one() == 1
    check_invariants(pg_db)


def test_a_replay_answers_as_the_first_time_even_after_the_catalog_changed(api):
    api.fund("m1", 1000)
    first = redeem(api, "tote-bag", headers={"Idempotency-Key": "kiosk-3"})
    assert first.status_code == 201, first.text
    publish(api, demo_document(rewards=[gift("mug", stock=3)]), effective_from="2026-01-05T11:00:00Z")
    assert [r["id"] for r in api.get("/v1/rewards", key="read").json()["rewards"]] == ["mug"]
    before = api.snapshot()
    again = redeem(api, "tote-bag", headers={"Idempotency-Key": "kiosk-3"})
    assert (again.status_code, again.json()) == (200, first.json())
    assert api.snapshot() == before
    # Without the key it is a new request, judged by the catalog now in force.
    assert_problem(redeem(api, "tote-bag"), 404, "reward_id")
