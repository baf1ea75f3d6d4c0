"""Tiers, stamp cards and birthdays over HTTP: progress in the member, tier-only rewards refused with nothing
changed, tier history, granted coupons, and the birthday job."""

from datetime import timedelta

from patron.services import programs
from tests.api.conftest import assert_problem
from tests.conftest import T0
from tests.helpers import LONG_AGO, program_document

LEVELS = [
    {"id": "silver", "name": "Silver", "threshold": 100},
    {"id": "gold", "name": "Gold", "threshold": 500, "free_shipping": True},
]
LOUNGE = {"id": "lounge", "name": "Gold lounge", "cost": 10, "kind": "coupon", "value": "5.00", "min_tier": "gold"}
FREE_CUP = {"id": "free-cup", "name": "A free cup", "cost": 1, "kind": "free_product", "sku": "FROYO-CUP"}
CARD = {"id": "froyo", "name": "Froyo card", "when": "event.item_count >= 1", "size": 2, "reward": "free-cup"}


def _publish(api, **fields):
    document = program_document(
        pending_days=0,
        rules=[{"id": "purchase", "event": "purchase"}],
        rewards=[LOUNGE, FREE_CUP],
        tiers={"qualify_on": "points", "window": "calendar_year", "levels": LEVELS},
        stamp_cards=[CARD],
        birthday={"points": 25, "reward": "free-cup"},
        recognition=True,
        **fields,
    )
    programs.publish(api.db, api.program_id, document, actor="test", now=T0, effective_from=LONG_AGO)


def _buy(api, n, total):
    reply = api.post("/v1/events", key="events", json=_purchase(n, total))
    assert reply.status_code == 201, reply.text
    return reply.json()


def _purchase(n, total):
    return {
        "type": "purchase",
        "event_id": f"p{n}",
        "member_id": "m1",
        "occurred_at": (T0 + timedelta(minutes=n)).isoformat(),
        "order_id": f"o{n}",
        "total": total,
        "lines": [{"sku": "FROYO-CUP", "category": "frozen-yogurt", "unit_price": total}],
    }


def test_the_member_shows_tier_progress_and_recognition(api):
    _publish(api)
    _buy(api, 1, "260.00")
    member = api.get("/v1/members/m1", key="read").json()
    assert member["tier"]["tier"] == "silver"
    assert member["tier"]["progress"] == "240 points to Gold"
    assert member["recognition"]["usual_sku"] == "FROYO-CUP"
    assert member["recognition"]["visits"] == 1
    changes = api.get("/v1/members/m1/tier-changes", key="read").json()
    assert [(c["from_tier"], c["to_tier"]) for c in changes] == [(None, "silver")]


def test_a_tier_only_reward_is_a_409_and_changes_nothing(api):
    _publish(api)
    _buy(api, 1, "200.00")
    before = api.snapshot()
    reply = api.post("/v1/members/m1/redemptions", key="redeem", json={"reward_id": "lounge"})
    body = assert_problem(reply, 409, "reward_id")
    assert body["detail"] == "'Gold lounge' is for Gold members and above"
    assert api.snapshot() == before


def test_a_full_stamp_card_shows_its_coupon(api):
    _publish(api)
    _buy(api, 1, "4.50")
    receipt = _buy(api, 2, "4.50")
    assert any(r["rule_id"] == "stamp_card:froyo" and "card complete" in r["reason"] for r in receipt["rules"])
    (grant,) = api.get("/v1/members/m1/grants", key="read").json()
    assert (grant["reward_id"], grant["source"]) == ("free-cup", "stamp_card:froyo")
    # The receipt names the coupon, so a till can print it with the order.
    (on_receipt,) = receipt["grants"]
    assert on_receipt["coupon_code"] == grant["coupon_code"]
    assert (on_receipt["reward_id"], on_receipt["reward_kind"]) == ("free-cup", "free_product")
    retried = api.post("/v1/events", key="events", json=_purchase(2, "4.50"))  # the first receipt, code and all
    assert (retried.status_code, retried.json()["grants"]) == (200, receipt["grants"])


def test_a_batch_receipt_names_the_coupon_of_a_full_card_and_a_dry_run_names_none(api):
    _publish(api)
    reply = api.post("/v1/events/batch", key="events", json={"events": [_purchase(1, "4.50"), _purchase(2, "4.50")]})
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    (grant,) = api.get("/v1/members/m1/grants", key="read").json()
    completing = [r for r in results if r["receipt"]["grants"]]
    assert [r["receipt"]["grants"][0]["coupon_code"] for r in completing] == [grant["coupon_code"]]
    # A third cup completes nothing; the fourth would: a dry run says which reward, and that no code was issued.
    _buy(api, 3, "4.50")
    dry = api.post("/v1/events?dry_run=true", key="events", json=_purchase(4, "4.50"))
    assert dry.status_code == 200, dry.text
    assert [(g["reward_id"], g["coupon_code"]) for g in dry.json()["grants"]] == [("free-cup", None)]
    assert len(api.get("/v1/members/m1/grants", key="read").json()) == 1


def test_the_stamp_cards_show_the_card_in_progress_and_the_completed_ones(api):
    _publish(api)
    assert api.get("/v1/members/m1/stamp-cards", key="read").json()[0]["stamps"] == 0
    for n in (1, 2, 3):
        _buy(api, n, "4.50")
    (card,) = api.get("/v1/members/m1/stamp-cards", key="read").json()
    assert (card["card"], card["stamps"], card["size"], card["completed"]) == ("froyo", 1, 2, 1)
    assert card["expires_at"] is None  # the card has no expiry
    assert api.get("/v1/members/nobody/stamp-cards", key="read").status_code == 404


def test_the_birthday_job_over_http_is_idempotent(api):
    _publish(api)
    reply = api.put("/v1/members/bday", key="events", json={"birthday": "1990-01-07", "timezone": "Europe/Warsaw"})
    assert reply.status_code == 201, reply.text
    assert reply.json()["timezone"] == "Europe/Warsaw"
    first = api.post("/v1/occasions/birthday/grant", json={"date": "2026-01-07"})
    again = api.post("/v1/occasions/birthday/grant", json={"date": "2026-01-07"})
    assert (first.status_code, first.json()["members"], first.json()["points"]) == (200, 1, 25)
    assert again.json()["members"] == 0
    assert api.balance("bday")["available"] == 25
    assert api.post("/v1/occasions/birthday/grant", key="events", json={}).status_code == 403


def test_an_unknown_member_time_zone_is_refused(api):
    reply = api.put("/v1/members/tz", key="events", json={"timezone": "Mars/Olympus"})
    assert_problem(reply, 422, "timezone")
