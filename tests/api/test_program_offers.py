"""Coupon batches and raffles declared in the program document: publishing a version makes those that do not exist
yet, once; a later version keeps their terms (a batch may grow) or is refused naming the field, changing nothing."""

import hashlib
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from patron.services import coupons, raffles
from tests.api.conftest import assert_problem
from tests.api.documents import demo_document
from tests.conftest import T0

DRAWS_AT = T0 + timedelta(days=30)
BATCH = {
    "id": "spring",
    "offer": {"kind": "spend_and_save", "amount": "20.00", "min_spend": "200.00"},
    "count": 50,
    "pattern": "SPRING-####-####",
}
RAFFLE = {
    "id": "party",
    "prize_reward_id": "free-single",
    "winners": 2,
    "entry_cost": 100,
    "max_entries_per_member": 5,
    "draws_at": DRAWS_AT.isoformat(),
}


def publish(api, *, batches=(BATCH,), raffle_list=(RAFFLE,), **overrides):
    document = demo_document(coupon_batches=list(batches), raffles=list(raffle_list), **overrides)
    return api.post("/v1/program/versions", json={"document": document})


def codes(api, name="spring"):
    reply = api.get(f"/v1/coupon-batches/{name}", key="read")
    assert reply.status_code == 200, reply.text
    return [c["code"] for c in reply.json()["codes"]]


def test_publishing_makes_the_declared_batch_and_raffle_once(api):
    published = publish(api)
    assert published.status_code == 201, published.text
    assert published.json()["document"]["coupon_batches"][0]["id"] == "spring"

    made = codes(api)
    assert len(made) == len(set(made)) == 50
    assert all(code.startswith("SPRING-") for code in made)
    batch = api.get("/v1/coupon-batches/spring", key="read").json()
    assert batch["description"] == "spend 200.00, get 20.00 off"
    assert batch["created_by"] == "program version 2"
    check = {"code": made[0].lower(), "cart": {"total": "250.00"}}
    judged = api.post("/v1/coupons/validate", key="read", json=check).json()
    assert (judged["applies"], judged["discount"]) == (True, "20.00")

    raffle = api.get("/v1/raffles/party", key="read").json()
    assert raffle["seed"] is None  # secret until the draw
    assert len(raffle["seed_hash"]) == 64
    assert (raffle["entry_cost"], raffle["winners"], raffle["prize_reward_id"]) == (100, 2, "free-single")

    # A new version that keeps them makes nothing new: the same codes, the same committed seed.
    before = api.snapshot()
    api.clock.now = T0 + timedelta(days=1)
    again = publish(api, name="Patron Records, renamed")
    assert again.status_code == 201, again.text
    assert codes(api) == made
    assert api.get("/v1/raffles/party", key="read").json()["seed_hash"] == raffle["seed_hash"]
    after = api.snapshot()
    for table in ("program_versions", "outbox"):  # the version itself and its announcement
        assert len(after.pop(table)) == len(before.pop(table)) + 1
    assert after == before

    # The seed committed to at publish is the one the draw reveals.
    members = ("ann", "bob")
    for member_id in members:
        assert api.put(f"/v1/members/{member_id}", json={}).status_code == 201
        api.fund(member_id, 500)
        entry = {"member_id": member_id, "entries": 2}
        assert api.post("/v1/raffles/party/entries", key="redeem", json=entry).status_code == 201
    api.clock.now = DRAWS_AT
    drawn = api.post("/v1/raffles/party/draw").json()
    assert hashlib.sha256(drawn["seed"].encode()).hexdigest() == raffle["seed_hash"]
    assert {w["member_id"] for w in drawn["results"]} == set(members)


def test_raising_a_batchs_count_adds_the_missing_codes(api):
    assert publish(api).status_code == 201
    first = codes(api)
    grown = publish(api, batches=[{**BATCH, "count": 80}])
    assert grown.status_code == 201, grown.text
    now = codes(api)
    assert now[:50] == first
    assert len(set(now)) == 80


@pytest.mark.parametrize(
    ("batch", "field"),
    [
        ({**BATCH, "count": 49}, "document.coupon_batches.0.count"),
        ({**BATCH, "pattern": "SUMMER-####-####"}, "document.coupon_batches.0.pattern"),
        ({**BATCH, "offer": {**BATCH["offer"], "amount": "25.00"}}, "document.coupon_batches.0.offer.amount"),
        (
            {**BATCH, "offer": {**BATCH["offer"], "per_member_limit": 1}},
            "document.coupon_batches.0.offer.per_member_limit",
        ),
    ],
)
def test_a_version_changing_a_batchs_terms_is_refused_and_changes_nothing(api, batch, field):
    assert publish(api).status_code == 201
    before = api.snapshot()
    api.clock.now = T0 + timedelta(days=1)
    body = assert_problem(publish(api, batches=[batch]), 422, field)
    assert "spring" in body["detail"]
    assert api.snapshot() == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"entry_cost": 50}, "document.raffles.0.entry_cost"),
        ({"winners": 3}, "document.raffles.0.winners"),
        ({"max_entries_per_member": 6}, "document.raffles.0.max_entries_per_member"),
        ({"draws_at": (DRAWS_AT + timedelta(days=1)).isoformat()}, "document.raffles.0.draws_at"),
        ({"refund_losers": True}, "document.raffles.0.refund_losers"),
        ({"prize_reward_id": "coupon-5"}, "document.raffles.0.prize_reward_id"),
    ],
)
def test_a_version_changing_a_raffles_terms_is_refused_and_changes_nothing(api, change, field):
    assert publish(api).status_code == 201
    before = api.snapshot()
    body = assert_problem(publish(api, raffle_list=[{**RAFFLE, **change}]), 422, field)
    assert "party" in body["detail"]
    assert api.snapshot() == before


def test_the_same_terms_written_differently_are_no_change(api):
    assert publish(api).status_code == 201
    before = codes(api)
    same_instant = {**RAFFLE, "draws_at": DRAWS_AT.astimezone(ZoneInfo("America/New_York")).isoformat()}
    same_amount = {**BATCH, "offer": {**BATCH["offer"], "amount": "20"}}
    assert publish(api, raffle_list=[same_instant], batches=[same_amount]).status_code == 201
    assert codes(api) == before


def test_a_raffle_first_declared_after_its_draw_time_is_refused(api):
    api.clock.now = DRAWS_AT
    before = api.snapshot()
    assert_problem(publish(api), 422, "document.raffles.0.draws_at")
    assert api.snapshot() == before


def test_a_batch_made_over_the_api_may_be_declared_on_the_same_terms(api):
    body = {"name": "spring", "offer": BATCH["offer"], "count": 50, "pattern": BATCH["pattern"]}
    assert api.post("/v1/coupon-batches", json=body).status_code == 201
    first = codes(api)
    assert publish(api, raffle_list=[]).status_code == 201
    assert codes(api) == first
    assert_problem(publish(api, batches=[{**BATCH, "pattern": "####-####-####"}], raffle_list=[]), 422)


def test_bad_sections_are_refused_naming_the_field(api):
    before = api.snapshot()
    bad = [
        (publish(api, batches=[{**BATCH, "pattern": "SPRING-####"}]), "document.coupon_batches.0.pattern"),
        (publish(api, batches=[{**BATCH, "id": "reward.coupon-5"}]), "document.coupon_batches.0.id"),
        (publish(api, batches=[{**BATCH, "offer": {"kind": "amount_off"}}]), "document.coupon_batches.0.offer"),
        (publish(api, raffle_list=[{**RAFFLE, "prize_reward_id": "nope"}]), "document.raffles.0.prize_reward_id"),
        (publish(api, raffle_list=[{**RAFFLE, "draws_at": "2026-03-01T20:00:00"}]), "document.raffles.0.draws_at"),
        (publish(api, raffle_list=[{**RAFFLE, "winners": 0}]), "document.raffles.0.winners"),
        (publish(api, raffle_list=[RAFFLE, RAFFLE]), "document.raffles"),
    ]
    for reply, field in bad:
        assert_problem(reply, 422, field)
    validated = api.post("/v1/program/validate", key="read", json=demo_document(raffles=[{**RAFFLE, "winners": 0}]))
    assert_problem(validated, 422, "raffles.0.winners")
    assert api.snapshot() == before


def test_the_services_see_declared_objects_as_any_other(api):
    assert publish(api).status_code == 201
    with api.db.read() as conn:
        assert [b.name for b in coupons.batches(conn, api.program_id)] == ["spring"]
        assert raffles.view(conn, api.program_id, "party").tickets_sold == 0
    # The other tenant has neither.
    assert_problem(api.get("/v1/raffles/party", key="other"), 404, "raffle")
    assert_problem(api.get("/v1/coupon-batches/spring", key="other"), 404, "name")


def test_a_raffle_of_a_version_that_starts_later_opens_when_it_starts(api):
    starts = T0 + timedelta(days=10)
    reply = api.post(
        "/v1/program/versions",
        json={"document": demo_document(raffles=[RAFFLE]), "effective_from": starts.isoformat()},
    )
    assert reply.status_code == 201, reply.text
    raffle = api.get("/v1/raffles/party", key="read").json()
    assert datetime.fromisoformat(raffle["opens_at"]) == starts
    assert api.put("/v1/members/ann", json={}).status_code == 201
    api.fund("ann", 500)
    entry = {"member_id": "ann", "entries": 1}

    before = api.snapshot()
    early = api.post("/v1/raffles/party/entries", key="redeem", json=entry)
    assert_problem(early, 409)
    assert "open at" in early.json()["detail"]
    assert api.snapshot() == before

    api.clock.now = starts
    assert api.post("/v1/raffles/party/entries", key="redeem", json=entry).status_code == 201


def test_a_raffle_drawn_before_its_version_starts_is_refused(api):
    late = (DRAWS_AT + timedelta(days=1)).isoformat()
    reply = api.post("/v1/program/versions", json={"document": demo_document(raffles=[RAFFLE]), "effective_from": late})
    assert_problem(reply, 422, "document.raffles.0.draws_at")
    assert api.get("/v1/raffles/party", key="read").status_code == 404
