"""Cart evaluation: the earnings a dry run would show, the coupons that apply, upsell hints, and no writes."""

import pytest

from patron.domain.program import ProgramDocument
from patron.services import programs
from tests.api.conftest import assert_problem
from tests.conftest import T0
from tests.helpers import LONG_AGO

RULES = [
    {"id": "purchase", "description": "1 point per dollar spent", "event": "purchase"},
    {
        "id": "big-basket",
        "description": "50 bonus points for orders of 100 dollars or more",
        "event": "purchase",
        "when": "event.total_minor >= 10000",
        "points": {"fixed": 50},
    },
]


@pytest.fixture(autouse=True)
def plain_program(api):
    """Two purchase rules and nothing else, whatever the demo program grows into."""
    programs.publish(api.db, api.program_id, plain_document(), actor="t", now=T0, effective_from=LONG_AGO)


def plain_document(**fields) -> ProgramDocument:
    return ProgramDocument.model_validate({"name": "Cart shop", "currency": "USD", "rules": RULES, **fields})


def evaluate(api, body, member_id="m1", key="read"):
    return api.post(f"/v1/members/{member_id}/cart", key=key, json=body)


def test_earnings_per_rule_match_a_dry_run_and_nothing_is_written(api):
    before = api.snapshot()
    reply = evaluate(api, {"cart": {"total": "120.00"}})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["points"] == 170  # 1 a dollar + 50 for a basket of 100 or more
    fired = {r["rule_id"]: r["points"] for r in body["rules"] if r["fired"]}
    assert fired == {"purchase": 120, "big-basket": 50}
    assert body["hints"] == []
    assert api.snapshot() == before


def test_a_rule_just_out_of_reach_becomes_a_hint(api):
    body = evaluate(api, {"cart": {"total": "88.00"}}).json()
    assert body["points"] == 88
    (hint,) = body["hints"]
    assert hint["kind"] == "spend_more"
    assert hint["source"] == "big-basket"
    assert hint["spend_more"] == "12.00"
    assert hint["extra_points"] == 62  # 12 more points of spend, and the 50 bonus
    assert hint["message"].startswith("spend 12.00 more for 50 bonus points")


def test_coupons_sent_and_the_members_own_are_judged(api):
    spend = api.post(
        "/v1/coupon-batches",
        json={"name": "s200", "count": 1, "offer": {"kind": "spend_and_save", "amount": "20", "min_spend": "200"}},
    ).json()["codes"][0]["code"]
    ten = api.post(
        "/v1/coupon-batches", json={"name": "ten", "count": 1, "offer": {"kind": "percent_off", "percent": "10"}}
    ).json()["codes"][0]["code"]
    before = api.snapshot()
    body = evaluate(api, {"cart": {"total": "150.00"}, "coupons": [spend, ten.lower()]}).json()
    by_code = {c["code"]: c for c in body["coupons"]}
    assert by_code[ten]["applies"] is True
    assert by_code[ten]["discount"] == "15.00"
    assert by_code[spend]["applies"] is False
    assert body["best_discount"] == "15.00"
    coupon_hints = [h for h in body["hints"] if h["kind"] == "coupon"]
    assert coupon_hints == [
        {
            "kind": "coupon",
            "message": f"spend 50.00 more to use coupon {spend} (spend 200, get 20 off)",
            "spend_more": "50.00",
            "extra_points": None,
            "source": spend,
        }
    ]
    assert api.snapshot() == before


def test_bad_carts_and_unknown_things_are_4xx(api):
    before = api.snapshot()
    assert_problem(evaluate(api, {"cart": {"total": "-5"}}), 422, "cart.total")
    assert_problem(evaluate(api, {"cart": {"total": "5"}, "points": 3}), 422, "points")
    assert_problem(evaluate(api, {"cart": {"total": "5"}}, member_id="nobody"), 404, "member_id")
    assert_problem(evaluate(api, {"cart": {"total": "5"}, "coupons": ["NOPE"]}), 404, "coupons")
    assert api.snapshot() == before


def test_a_stamp_card_says_how_many_stamps_are_left(api):
    document = plain_document(
        rewards=[{"id": "free-cup", "name": "a free cup", "cost": 1, "kind": "free_product", "sku": "CUP"}],
        stamp_cards=[
            {"id": "cups", "name": "Cup card", "when": "event.item_count >= 1", "size": 3, "reward": "free-cup"}
        ],
    )
    programs.publish(api.db, api.program_id, document, actor="t", now=T0, effective_from=LONG_AGO)
    cup = {"total": "4.00", "lines": [{"sku": "CUP", "unit_price": "4.00"}]}
    event = {"type": "purchase", "event_id": "e1", "member_id": "m1", "order_id": "o1", "occurred_at": T0.isoformat()}
    assert api.post("/v1/events", key="events", json=event | cup).status_code == 201
    hints = evaluate(api, {"cart": cup}).json()["hints"]
    assert {
        "kind": "stamp_card",
        "message": "after this order, 1 more stamp to a free cup",
        "spend_more": None,
        "extra_points": None,
        "source": "cups",
    } in hints
    empty = evaluate(api, {"cart": {"total": "4.00"}}).json()["hints"]
    assert [h["message"] for h in empty if h["kind"] == "stamp_card"] == ["2 more stamps to a free cup"]
