"""The rewards catalog: what members can redeem now, with the gifts left."""

from datetime import timedelta

from patron.services import keys, programs
from patron.services.keys import Scope
from tests.api.documents import demo_document, gift
from tests.conftest import T0
from tests.helpers import LONG_AGO, program_document


def catalog(api, key="read", **query):
    reply = api.get("/v1/rewards", key=key, params=query)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_the_catalog_lists_the_rewards_in_force(api):
    assert catalog(api) == {
        "program_version": 1,
        "member_id": None,
        "rewards": [
            {
                "id": "coupon-5",
                "name": "$5 off your next order",
                "kind": "coupon",
                "cost": 500,
                "value": "5.00",
                "sku": None,
                "stock": None,
                "remaining": None,
                "per_member_limit": None,
                "min_tier": None,
                "min_tier_name": None,
                "available_from": None,
                "early_access": [],
                "refusal": None,
            },
            {
                "id": "free-single",
                "name": "A free CD single",
                "kind": "free_product",
                "cost": 300,
                "value": None,
                "sku": "CD-SINGLE",
                "stock": None,
                "remaining": None,
                "per_member_limit": None,
                "min_tier": None,
                "min_tier_name": None,
                "available_from": None,
                "early_access": [],
                "refusal": None,
            },
            {
                "id": "tote-bag",
                "name": "Patron Records tote bag",
                "kind": "gift",
                "cost": 1000,
                "value": None,
                "sku": None,
                "stock": 50,
                "remaining": 50,
                "per_member_limit": 1,
                "min_tier": None,
                "min_tier_name": None,
                "available_from": None,
                "early_access": [],
                "refusal": None,
            },
        ],
    }


def test_remaining_stock_goes_down_with_each_gift_given(api):
    for member_id in ("m1", "m2", "m3"):
        api.put(f"/v1/members/{member_id}", key="events", json={})
        api.fund(member_id, 1000)
        reply = api.post(f"/v1/members/{member_id}/redemptions", key="redeem", json={"reward_id": "tote-bag"})
        assert reply.status_code == 201, reply.text
    tote = next(r for r in catalog(api)["rewards"] if r["id"] == "tote-bag")
    assert (tote["stock"], tote["remaining"]) == (50, 47)


def test_a_version_takes_over_the_catalog_from_its_effective_moment(api):
    later = (T0 + timedelta(days=7)).isoformat()
    document = demo_document(rewards=[gift("mug", stock=20, cost=150)])
    published = api.post("/v1/program/versions", json={"document": document, "effective_from": later})
    assert published.status_code == 201, published.text
    assert [r["id"] for r in catalog(api)["rewards"]] == ["coupon-5", "free-single", "tote-bag"]
    api.clock.now = T0 + timedelta(days=7)
    now = catalog(api)
    assert (now["program_version"], [(r["id"], r["remaining"]) for r in now["rewards"]]) == (2, [("mug", 20)])


def test_a_program_with_no_version_in_force_offers_nothing(api):
    fresh = programs.create_program(api.db, "fresh", now=T0)
    with api.db.write() as conn:
        _, token = keys.create(conn, fresh, "fresh-read", {Scope.READ}, now=T0)
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/v1/rewards", headers=headers).json() == {
        "program_version": None,
        "member_id": None,
        "rewards": [],
    }
    # Published, but in force only from tomorrow: still nothing today.
    programs.publish(api.db, fresh, program_document(), actor="test", now=T0, effective_from=T0 + timedelta(days=1))
    assert api.client.get("/v1/rewards", headers=headers).json() == {
        "program_version": None,
        "member_id": None,
        "rewards": [],
    }
    api.clock.now = T0 + timedelta(days=1)
    assert api.client.get("/v1/rewards", headers=headers).json()["program_version"] == 1


def test_each_program_sees_its_own_catalog_and_stock(api):
    their_document = program_document(rewards=[gift("their-mug", stock=5)])
    programs.publish(api.db, api.other_program_id, their_document, actor="test", now=T0, effective_from=T0)
    api.fund("m1", 1000)
    assert api.post("/v1/members/m1/redemptions", key="redeem", json={"reward_id": "tote-bag"}).status_code == 201
    ours, theirs = catalog(api), catalog(api, key="other")
    assert [(r["id"], r["remaining"]) for r in ours["rewards"] if r["kind"] == "gift"] == [("tote-bag", 49)]
    assert [(r["id"], r["remaining"]) for r in theirs["rewards"]] == [("their-mug", 5)]
    assert theirs["program_version"] == 2


LEVELS = [{"id": "silver", "name": "Silver", "threshold": 100}, {"id": "gold", "name": "Gold", "threshold": 500}]
LOUNGE = {"id": "lounge", "name": "Gold lounge", "cost": 10, "kind": "coupon", "value": "5.00", "min_tier": "gold"}
PRESALE = {
    "id": "presale",
    "name": "Record Store Day presale",
    "cost": 10,
    "kind": "coupon",
    "value": "5.00",
    "available_from": (T0 + timedelta(days=10)).isoformat(),
    "early_access": [
        {"tier": "gold", "available_from": (T0 + timedelta(days=2)).isoformat()},
        {"tier": "silver", "available_from": (T0 + timedelta(days=5)).isoformat()},
    ],
}


def tiered(api):
    document = program_document(
        pending_days=0,
        rules=[{"id": "purchase", "event": "purchase"}],
        rewards=[LOUNGE, PRESALE],
        tiers={"qualify_on": "points", "window": "lifetime", "levels": LEVELS},
    )
    programs.publish(api.db, api.program_id, document, actor="test", now=T0, effective_from=LONG_AGO)
    for member_id, total in (("gold-member", "600.00"), ("silver-member", "150.00"), ("new-member", "1.00")):
        assert api.put(f"/v1/members/{member_id}", key="events", json={}).status_code == 201
        event = {
            "type": "purchase",
            "event_id": f"p-{member_id}",
            "member_id": member_id,
            "order_id": f"o-{member_id}",
            "occurred_at": T0.isoformat(),
            "total": total,
        }
        assert api.post("/v1/events", key="events", json=event).status_code == 201


def test_the_catalog_shows_tier_only_and_early_access_rewards(api):
    tiered(api)
    lounge, presale = catalog(api)["rewards"]
    assert (lounge["min_tier"], lounge["min_tier_name"], lounge["early_access"]) == ("gold", "Gold", [])
    assert presale["min_tier"] is None
    assert presale["available_from"] == (T0 + timedelta(days=10)).isoformat().replace("+00:00", "Z")
    # Earliest first: what a portal shows as "open to Gold from the 3rd, Silver from the 6th, everyone from the 11th".
    assert [(a["tier_name"], a["available_from"]) for a in presale["early_access"]] == [
        ("Gold", (T0 + timedelta(days=2)).isoformat().replace("+00:00", "Z")),
        ("Silver", (T0 + timedelta(days=5)).isoformat().replace("+00:00", "Z")),
    ]


def test_a_named_member_sees_why_they_may_not_redeem_yet(api):
    tiered(api)
    api.clock.now = T0 + timedelta(days=3)

    def refusals(member_id):
        body = catalog(api, member_id=member_id)
        assert body["member_id"] == member_id
        return {r["id"]: r["refusal"] for r in body["rewards"]}

    assert refusals("gold-member") == {"lounge": None, "presale": None}
    silver = refusals("silver-member")
    assert silver["lounge"] == "'Gold lounge' is for Gold members and above"
    assert silver["presale"].startswith(
        "'Record Store Day presale' opens to you on " + (T0 + timedelta(days=5)).date().isoformat()
    )
    assert refusals("new-member")["presale"].startswith(
        "'Record Store Day presale' opens to you on " + (T0 + timedelta(days=10)).date().isoformat()
    )
    assert catalog(api)["rewards"][0]["refusal"] is None  # no member named, nothing judged
    reply = api.get("/v1/rewards", key="read", params={"member_id": "nobody"})
    assert reply.status_code == 404
