"""Referrals over the API: both sides rewarded on the new member's first qualifying purchase; fraud refused with
a reason the referrer sees; a refunded first order claws the rewards back; misuse changes nothing."""

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from patron.domain.program import ProgramDocument
from patron.services import programs
from patron.store.background import outbox
from tests.api.conftest import assert_problem
from tests.conftest import T0
from tests.helpers import LONG_AGO, check_invariants, program_document

LATER = (T0 + timedelta(hours=1)).isoformat()
SCHEME = {
    "referrer": {"points": 100},
    "referee": {"points": 50, "coupon_batch": "welcome"},
    "min_spend": "20.00",
    "within_days": 30,
    "max_per_referrer_per_week": 2,
    "ip_burst": {"max_signups": 2, "minutes": 60},
}


@pytest.fixture
def referrals(api):
    reply = api.post(
        "/v1/coupon-batches", json={"name": "welcome", "count": 1, "offer": {"kind": "amount_off", "amount": "5"}}
    )
    assert reply.status_code == 201, reply.text
    document = ProgramDocument.model_validate(program_document().model_dump(mode="json") | {"referrals": SCHEME})
    programs.publish(api.db, api.program_id, document, actor="test", now=T0, effective_from=LONG_AGO)
    api.put("/v1/members/m1", json={"email": "ann@example.com", "phone": "+44 20 7946 0001"})
    return api


def new_member(api, member_id, **profile):
    assert api.put(f"/v1/members/{member_id}", json=profile).status_code == 201


def code_of(api, member_id="m1", **body):
    reply = api.post(f"/v1/members/{member_id}/referral-code", key="events", json=body or None)
    assert reply.status_code in (200, 201), reply.text
    return reply.json()["code"]


def sign_up(api, member_id, code, **fields):
    return api.post("/v1/referrals", key="events", json={"member_id": member_id, "code": code, **fields})


def purchase(api, member_id, order_id, total, at=LATER):
    event = {
        "type": "purchase",
        "event_id": f"p-{order_id}",
        "member_id": member_id,
        "order_id": order_id,
        "total": total,
        "occurred_at": at,
    }
    api.clock.now = max(api.clock.now, datetime.fromisoformat(at))  # events from the future are refused
    reply = api.post("/v1/events", key="events", json=event)
    assert reply.status_code == 201, reply.text
    return reply.json()


def announcements(api, kind):
    with api.db.read() as conn:
        return conn.execute(sa.select(outbox).where(outbox.c.type == kind)).all()


def referral_list(api, member_id="m1"):
    return api.get(f"/v1/members/{member_id}/referrals", key="read").json()


def test_both_sides_are_rewarded_on_the_first_qualifying_purchase_only(referrals):
    api = referrals
    code = code_of(api)
    assert code_of(api) == code  # the same code every time
    new_member(api, "bob", email="bob@example.com")
    signed = sign_up(api, "bob", code.lower())
    assert signed.status_code == 201, signed.text
    assert signed.json()["status"] == "pending"
    before = api.balance("m1")["available"]

    purchase(api, "bob", "small", "10.00")  # below the minimum spend: still pending
    assert referral_list(api)[0]["status"] == "pending"
    bob_points = api.balance("bob")["available"]

    purchase(api, "bob", "big", "25.00")
    made = referral_list(api)[0]
    assert made["status"] == "rewarded"
    assert made["order_id"] == "big"
    assert api.balance("m1")["available"] == before + 100
    bob_after = api.balance("bob")
    assert bob_after["available"] + bob_after["pending"] >= bob_points + 50
    code_given = made["rewards"]["referee"]["coupon"]
    check = api.post(
        "/v1/coupons/validate", key="read", json={"code": code_given, "cart": {"total": "10"}, "member_id": "bob"}
    ).json()
    assert check["applies"] is True

    purchase(api, "bob", "again", "99.00")  # only the first qualifying purchase rewards
    assert api.balance("m1")["available"] == before + 100
    announced = announcements(api, "referral.converted")
    assert [(a.data["referee_id"], a.data["referrer_points"]) for a in announced] == [("bob", 100)]
    check_invariants(api.db)


def test_a_missing_coupon_batch_does_not_fail_the_purchase(api):
    scheme = SCHEME | {"referee": {"points": 50, "coupon_batch": "never-made"}}
    document = ProgramDocument.model_validate(program_document().model_dump(mode="json") | {"referrals": scheme})
    programs.publish(api.db, api.program_id, document, actor="test", now=T0, effective_from=LONG_AGO)
    new_member(api, "bob")
    sign_up(api, "bob", code_of(api))
    purchase(api, "bob", "big", "25.00")
    made = referral_list(api)[0]
    assert made["status"] == "rewarded"
    assert "never-made" in made["rewards"]["referee"]["coupon_missing"]


def test_a_refunded_first_order_claws_the_rewards_back(referrals):
    api = referrals
    new_member(api, "bob")
    sign_up(api, "bob", code_of(api))
    purchase(api, "bob", "big", "25.00")
    referrer_before_refund = api.balance("m1")["available"]
    refund = {
        "type": "refund",
        "event_id": "r-big",
        "member_id": "bob",
        "order_id": "big",
        "amount": "25.00",
        "occurred_at": LATER,
    }
    assert api.post("/v1/events", key="events", json=refund).status_code == 201
    made = referral_list(api)[0]
    assert made["status"] == "clawed_back"
    assert made["eligible"] is False
    assert "refunded" in made["reason"]
    assert api.balance("m1")["available"] == referrer_before_refund - 100
    code_given = made["rewards"]["referee"]["coupon"]
    check = api.post(
        "/v1/coupons/validate", key="read", json={"code": code_given, "cart": {"total": "10"}, "member_id": "bob"}
    ).json()
    assert check["applies"] is False
    assert "revoked" in check["reason"]
    check_invariants(api.db)


@pytest.mark.parametrize(
    ("profile", "fingerprints", "reason"),
    [
        ({"email": "ANN@example.com"}, [], "same email"),
        ({"phone": "+442079460001"}, [], "same phone"),
        ({}, ["card:0123456789abcdef"], "fingerprint"),
    ],
)
def test_self_referral_is_recorded_as_not_eligible(referrals, profile, fingerprints, reason):
    api = referrals
    code = code_of(api, fingerprints=["card:0123456789abcdef"])
    new_member(api, "alias", **profile)
    signed = sign_up(api, "alias", code, fingerprints=fingerprints)
    assert signed.status_code == 201
    assert signed.json()["status"] == "not_eligible"
    shown = referral_list(api)[0]
    assert shown["eligible"] is False
    assert reason in shown["reason"]
    assert len(announcements(api, "referral.rejected")) == 1
    before = api.balance("m1")["available"]
    purchase(api, "alias", "o1", "50.00")
    assert api.balance("m1")["available"] == before  # never rewarded


def test_weekly_cap_and_ip_burst(referrals):
    api = referrals
    code = code_of(api)
    for member_id in ("a1", "a2", "a3"):
        new_member(api, member_id)
    assert sign_up(api, "a1", code, ip="203.0.113.9").json()["status"] == "pending"
    assert sign_up(api, "a2", code, ip="203.0.113.9").json()["status"] == "pending"
    capped = sign_up(api, "a3", code, ip="198.51.100.1").json()
    assert capped["status"] == "not_eligible"
    assert "cap of 2 referrals per week" in capped["reason"]

    new_member(api, "carol")
    carol_code = code_of(api, "carol")
    new_member(api, "b1")
    burst = sign_up(api, "b1", carol_code, ip="203.0.113.9").json()
    assert burst["status"] == "not_eligible"
    assert "IP address" in burst["reason"]
    # A week later the cap is free again.
    api.clock.now = T0 + timedelta(days=8)
    new_member(api, "a4")
    assert sign_up(api, "a4", code).json()["status"] == "pending"


def test_no_qualifying_purchase_within_the_window_expires(referrals):
    api = referrals
    new_member(api, "bob")
    sign_up(api, "bob", code_of(api))
    before = api.balance("m1")["available"]
    purchase(api, "bob", "late", "50.00", at=(T0 + timedelta(days=31)).isoformat())
    made = referral_list(api)[0]
    assert made["status"] == "expired"
    assert api.balance("m1")["available"] == before


def test_bulk_ingestion_rewards_too(referrals):
    api = referrals
    new_member(api, "bob")
    sign_up(api, "bob", code_of(api))
    batch = [
        {
            "type": "purchase",
            "event_id": f"b{i}",
            "member_id": "bob",
            "order_id": f"bo{i}",
            "total": total,
            "occurred_at": LATER,
        }
        for i, total in enumerate(("5.00", "30.00", "40.00"))
    ]
    api.clock.now = T0 + timedelta(hours=2)
    reply = api.post("/v1/events/batch", key="events", json={"events": batch})
    assert reply.status_code in (200, 207), reply.text
    made = referral_list(api)[0]
    assert made["status"] == "rewarded"
    assert made["order_id"] == "bo1"
    check_invariants(api.db)


def test_misuse_is_refused_and_changes_nothing(referrals):
    api = referrals
    code = code_of(api)
    new_member(api, "bob")
    assert sign_up(api, "bob", code).status_code == 201
    new_member(api, "shopper")
    purchase(api, "shopper", "earlier", "10.00")
    before = api.snapshot()
    assert_problem(sign_up(api, "bob", "ZZZZZZZZ"), 404, "code")  # unknown code
    assert_problem(sign_up(api, "m1", code), 422, "code")  # own code
    assert_problem(sign_up(api, "bob", code), 409, "member_id")  # referred once only
    assert_problem(sign_up(api, "shopper", code), 409, "member_id")  # not a new member
    assert_problem(sign_up(api, "nobody", code), 404, "member_id")
    assert_problem(sign_up(api, "bob", code, ip="not an ip"), 422, "ip")
    assert_problem(sign_up(api, "bob", code, fingerprints=["4111111111111111 raw"]), 422)
    # Another tenant does not know the code.
    assert_problem(api.post("/v1/referrals", key="other", json={"member_id": "m1", "code": code}), 404, "code")
    assert api.snapshot() == before


def test_without_a_scheme_sign_ups_are_refused(api):
    document = program_document(referrals=None)
    programs.publish(api.db, api.program_id, document, actor="test", now=T0, effective_from=LONG_AGO)
    reply = api.post("/v1/members/m1/referral-code", key="events")
    code = reply.json()["code"]
    api.put("/v1/members/bob", json={})
    before = api.snapshot()
    assert_problem(api.post("/v1/referrals", key="events", json={"member_id": "bob", "code": code}), 409, "code")
    assert api.snapshot() == before


def test_the_weekly_cap_holds_when_sign_ups_race(pg_db):
    from concurrent.futures import ThreadPoolExecutor

    from patron.domain.members import MemberProfile
    from patron.services import members, referrals
    from tests.helpers import set_up

    document = ProgramDocument.model_validate(
        program_document().model_dump(mode="json")
        | {"referrals": {"referrer": {"points": 10}, "referee": {"points": 5}, "max_per_referrer_per_week": 2}}
    )
    newcomers = tuple(f"n{i}" for i in range(10))
    setup = set_up(pg_db, document, member_ids=("m1", *newcomers), now=T0)
    members.upsert(pg_db, setup.program_id, "m1", MemberProfile(), now=T0)
    code = referrals.code_for(pg_db, setup.program_id, "m1", now=T0)[0].code

    def sign(member_id):
        return referrals.sign_up(pg_db, setup.cache, setup.program_id, member_id, code, ip=None, now=T0).status

    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(sign, newcomers))
    assert statuses.count("pending") == 2
    assert statuses.count("not_eligible") == 8


def test_a_batch_shows_referral_rewards_and_clawbacks_on_the_receipts_after_them(referrals):
    """The receipts of a batch are the receipts of its events sent one by one: a referral reward (or clawback)
    that a referee's purchase (or refund) sets off shows in that receipt and in every later receipt of both sides."""
    api = referrals
    new_member(api, "bob")
    sign_up(api, "bob", code_of(api))

    def event(event_id, member_id, order_id, total, kind="purchase"):
        amount = {"total": total} if kind == "purchase" else {"amount": total}
        common = {"type": kind, "event_id": event_id, "member_id": member_id, "order_id": order_id}
        return common | amount | {"occurred_at": LATER}

    batch = [
        event("e0", "m1", "a", "10.00"),
        event("e1", "bob", "big", "25.00"),  # qualifies: bob +50, m1 +100
        event("e2", "m1", "b", "10.00"),
        event("e3", "bob", "small", "5.00"),
        event("e4", "bob", "big", "25.00", kind="refund"),  # claws both rewards back
        event("e5", "m1", "c", "10.00"),
        event("e6", "ghost", "g", "10.00"),
    ]
    api.clock.now = datetime.fromisoformat(LATER)
    reply = api.post("/v1/events/batch", key="events", json={"events": batch})
    results = reply.json()["results"]
    assert [r["status"] for r in results] == [201] * 6 + [404]
    available = [r["receipt"]["balance"]["available"] for r in results[:6]]
    assert available == [0, 50, 100, 50, 0, 0]
    assert results[5]["receipt"]["balance"] == api.balance("m1")
    assert results[4]["receipt"]["balance"] == api.balance("bob")
    assert referral_list(api)[0]["status"] == "clawed_back"
    check_invariants(api.db)
