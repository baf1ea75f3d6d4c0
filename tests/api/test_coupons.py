"""Coupons over the API: a batch of codes, validated and redeemed by a checkout; misuse changes nothing."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest

from patron.domain.carts import Cart
from patron.domain.coupons import Offer
from patron.services import coupons, programs
from patron.services.errors import Conflict
from tests.api.conftest import assert_problem
from tests.conftest import T0
from tests.helpers import LONG_AGO, program_document, set_up

CART = {"total": "30.00", "lines": [{"sku": "cup", "unit_price": "4.50", "quantity": 2}]}


def make_batch(api, name="spring", count=3, **offer):
    body = {"name": name, "count": count, "offer": offer or {"kind": "amount_off", "amount": "5"}}
    reply = api.post("/v1/coupon-batches", json=body)
    assert reply.status_code == 201, reply.text
    return reply.json()


def test_a_batch_has_unique_codes_from_its_pattern(api):
    batch = make_batch(api, count=200, kind="percent_off", percent="10")
    codes = [c["code"] for c in batch["codes"]]
    assert len(set(codes)) == 200
    assert all(len(c) == 14 and c[4] == "-" for c in codes)
    patterned = api.post(
        "/v1/coupon-batches",
        json={"name": "named", "count": 5, "pattern": "SPRING-####-####", "offer": {"kind": "free_shipping"}},
    ).json()
    assert all(c["code"].startswith("SPRING-") for c in patterned["codes"])
    listed = api.get("/v1/coupon-batches", key="read").json()
    assert [(b["name"], b["codes_issued"], b["codes_used"]) for b in listed] == [("spring", 200, 0), ("named", 5, 0)]


def test_validate_then_redeem_a_single_use_code(api):
    code = make_batch(api)["codes"][0]["code"]
    check = api.post("/v1/coupons/validate", key="read", json={"code": code.lower(), "cart": CART})
    assert check.status_code == 200, check.text
    assert check.json()["applies"] is True
    assert check.json()["discount"] == "5"
    assert check.json()["total_after_discount"] == "25.00"

    used = api.post(f"/v1/coupons/{code}/redemptions", key="redeem", json={"cart": CART, "order_id": "o-1"})
    assert used.status_code == 201, used.text
    assert used.json()["uses"] == 1

    again = api.post("/v1/coupons/validate", key="read", json={"code": code, "cart": CART}).json()
    assert again["applies"] is False
    assert again["reason"] == "already used"
    before = api.snapshot()
    assert_problem(api.post(f"/v1/coupons/{code}/redemptions", key="redeem", json={"cart": CART}), 409, "code")
    assert api.snapshot() == before


def test_spend_x_get_y_off_says_how_far_the_cart_is(api):
    code = make_batch(api, kind="spend_and_save", amount="20", min_spend="200")["codes"][0]["code"]
    short = api.post("/v1/coupons/validate", key="read", json={"code": code, "cart": {"total": "188"}}).json()
    assert short["applies"] is False
    assert short["spend_more"] == "12"
    before = api.snapshot()
    assert_problem(
        api.post(f"/v1/coupons/{code}/redemptions", key="redeem", json={"cart": {"total": "188"}}), 409, "cart.total"
    )
    assert api.snapshot() == before
    ok = api.post(f"/v1/coupons/{code}/redemptions", key="redeem", json={"cart": {"total": "200"}})
    assert ok.status_code == 201
    assert ok.json()["discount"] == "20"


def test_per_member_limit_across_codes_of_a_batch(api):
    batch = make_batch(api, count=3, kind="trial", sku="cup", uses_per_code=10)
    first, second = (c["code"] for c in batch["codes"][:2])
    body = {"cart": CART, "member_id": "m1"}
    assert api.post(f"/v1/coupons/{first}/redemptions", key="redeem", json=body).status_code == 201
    before = api.snapshot()
    assert_problem(api.post(f"/v1/coupons/{second}/redemptions", key="redeem", json=body), 409, "code")
    # Without a member, a limited offer cannot be counted: refused, naming the missing field.
    assert_problem(api.post(f"/v1/coupons/{second}/redemptions", key="redeem", json={"cart": CART}), 409, "member_id")
    assert api.snapshot() == before


def test_redemption_replays_with_the_same_idempotency_key(api):
    code = make_batch(api)["codes"][0]["code"]
    headers = {"Idempotency-Key": "checkout-77"}
    first = api.post(f"/v1/coupons/{code}/redemptions", key="redeem", json={"cart": CART}, headers=headers)
    again = api.post(f"/v1/coupons/{code}/redemptions", key="redeem", json={"cart": CART}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = {"cart": {"total": "31"}}
    assert_problem(
        api.post(f"/v1/coupons/{code}/redemptions", key="redeem", json=other, headers=headers), 409, "Idempotency-Key"
    )


def test_outside_the_window(api, clock):
    code = make_batch(
        api, kind="amount_off", amount="5", valid_from=T0.isoformat(), valid_until=(T0 + timedelta(days=7)).isoformat()
    )["codes"][0]["code"]
    clock.now = T0 + timedelta(days=7)
    before = api.snapshot()
    reply = assert_problem(api.post(f"/v1/coupons/{code}/redemptions", key="redeem", json={"cart": CART}), 409)
    assert "expired" in reply["detail"]
    assert api.snapshot() == before


@pytest.mark.parametrize(
    ("path", "key", "body", "status", "field"),
    [
        ("/v1/coupons/NOPE-NOPE-NOPE/redemptions", "redeem", {"cart": CART}, 404, "code"),
        ("/v1/coupons/validate", "read", {"code": "NOPE", "cart": CART}, 404, "code"),
        ("/v1/coupons/validate", "read", {"code": "X", "cart": {"total": "-1"}}, 422, "cart.total"),
        ("/v1/coupons/validate", "read", {"code": "X", "cart": CART, "balance": 5}, 422, "balance"),
        ("/v1/coupon-batches", "admin", {"name": "b", "count": 0, "offer": {"kind": "free_shipping"}}, 422, "count"),
        ("/v1/coupon-batches", "admin", {"name": "b", "count": 2, "offer": {"kind": "amount_off"}}, 422, "offer"),
        (
            "/v1/coupon-batches",
            "admin",
            {"name": "b", "count": 2, "pattern": "AB-###", "offer": {"kind": "free_shipping"}},
            422,
            "pattern",
        ),
        ("/v1/coupon-batches", "redeem", {"name": "b", "count": 2, "offer": {"kind": "free_shipping"}}, 403, None),
    ],
)
def test_misuse_is_a_4xx_that_changes_nothing(api, path, key, body, status, field):
    make_batch(api)
    before = api.snapshot()
    assert_problem(api.post(path, key=key, json=body), status, *([field] if field else []))
    assert api.snapshot() == before


def test_another_tenant_cannot_use_the_code(api):
    code = make_batch(api)["codes"][0]["code"]
    before = api.snapshot()
    assert_problem(api.post(f"/v1/coupons/{code}/redemptions", key="other", json={"cart": CART}), 404, "code")
    assert api.snapshot() == before


def test_duplicate_batch_name_is_a_conflict(api):
    make_batch(api)
    before = api.snapshot()
    assert_problem(
        api.post("/v1/coupon-batches", json={"name": "spring", "count": 1, "offer": {"kind": "free_shipping"}}),
        409,
        "name",
    )
    assert api.snapshot() == before


def test_a_single_use_code_is_used_once_by_twenty_concurrent_checkouts(pg_db):
    setup = set_up(pg_db, now=T0)
    batch = coupons.create_batch(
        pg_db,
        setup.program_id,
        "race",
        Offer.model_validate({"kind": "amount_off", "amount": "5"}),
        count=1,
        actor="test",
        now=T0,
    )
    code = batch.codes[0].code
    cart = Cart.model_validate(CART)

    def attempt(i: int) -> str:
        try:
            coupons.redeem(pg_db, setup.program_id, code, cart, member_external_id=None, order_id=f"o{i}", now=T0)
        except Conflict:
            return "refused"
        return "used"

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    assert outcomes.count("used") == 1
    assert outcomes.count("refused") == 19
    with pg_db.read() as conn:
        detail = coupons.batch_detail(conn, setup.program_id, "race")
    assert detail.codes[0].uses == 1


def test_twenty_concurrent_retries_with_one_key_get_one_reply(pg_db):
    setup = set_up(pg_db, now=T0)
    offer = Offer.model_validate({"kind": "amount_off", "amount": "5"})
    code = coupons.create_batch(pg_db, setup.program_id, "race", offer, count=1, actor="t", now=T0).codes[0].code
    cart = Cart.model_validate(CART)

    def attempt(_: int):
        return coupons.redeem(
            pg_db, setup.program_id, code, cart, member_external_id=None, order_id="o", now=T0, idempotency_key="k"
        )

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(attempt, range(20)))
    assert len({r[0].redemption_id for r in results}) == 1
    assert [r[1] for r in results].count(False) == 1
    assert results[0][0].discount == Decimal(5)


def test_a_trial_is_refused_to_a_member_who_bought_the_product(api):
    document = program_document(recognition=True)  # the program keeps what each member buys
    programs.publish(api.db, api.program_id, document, actor="t", now=T0, effective_from=LONG_AGO)
    code = make_batch(api, kind="trial", sku="MATCHA", uses_per_code=100)["codes"][0]["code"]
    api.put("/v1/members/newbie", json={})
    bought = {
        "type": "purchase",
        "event_id": "p1",
        "member_id": "m1",
        "order_id": "o1",
        "occurred_at": T0.isoformat(),
        "total": "3.00",
        "lines": [{"sku": "MATCHA", "unit_price": "3.00"}],
    }
    assert api.post("/v1/events", key="events", json=bought).status_code == 201
    cart = {"total": "3.00", "lines": [{"sku": "MATCHA", "unit_price": "3.00"}]}
    regular = api.post("/v1/coupons/validate", key="read", json={"code": code, "cart": cart, "member_id": "m1"}).json()
    assert regular["applies"] is False
    assert "bought MATCHA before" in regular["reason"]
    newbie = api.post("/v1/coupons/validate", key="read", json={"code": code, "cart": cart, "member_id": "newbie"})
    assert newbie.json()["applies"] is True


def test_a_catalog_reward_code_is_a_coupon_at_the_checkout(api):
    api.fund("m1", 1000)
    redeemed = api.post("/v1/members/m1/redemptions", key="redeem", json={"reward_id": "coupon-5"})
    assert redeemed.status_code == 201, redeemed.text
    code = redeemed.json()["coupon_code"]
    api.put("/v1/members/m2", json={})

    mine = api.post("/v1/coupons/validate", key="read", json={"code": code, "cart": CART, "member_id": "m1"}).json()
    assert (mine["applies"], mine["discount"], mine["batch"]) == (True, "5.00", "reward.coupon-5")
    theirs = api.post("/v1/coupons/validate", key="read", json={"code": code, "cart": CART, "member_id": "m2"})
    assert theirs.json()["applies"] is False
    listed = api.post("/v1/members/m1/cart", key="read", json={"cart": CART}).json()
    assert [c["code"] for c in listed["coupons"]] == [code]

    body = {"cart": CART, "member_id": "m1"}
    assert api.post(f"/v1/coupons/{code}/redemptions", key="redeem", json=body).status_code == 201
    before = api.snapshot()
    assert_problem(api.post(f"/v1/coupons/{code}/redemptions", key="redeem", json=body), 409, "code")
    assert api.snapshot() == before
    assert api.post("/v1/members/m1/cart", key="read", json={"cart": CART}).json()["coupons"] == []


def test_a_catalog_reward_code_is_used_once_under_concurrent_checkouts(pg_db):
    from patron.services import adjustments, redemptions

    setup = set_up(pg_db, now=T0)
    adjustments.adjust(pg_db, setup.cache, setup.program_id, "m1", 1000, "funds", actor="t", now=T0)
    code = redemptions.redeem(pg_db, setup.cache, setup.program_id, "m1", "free-single", now=T0)[0].coupon_code
    cart = Cart.model_validate({"total": "9.00", "lines": [{"sku": "CD-SINGLE", "unit_price": "4.00"}]})

    def attempt(i: int) -> str:
        try:
            member = "m1" if i % 2 else None  # half without the member: refused, and must not break the race
            coupons.redeem(pg_db, setup.program_id, code, cart, member_external_id=member, order_id=f"o{i}", now=T0)
        except Conflict:
            return "refused"
        return "used"

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    assert outcomes.count("used") == 1
