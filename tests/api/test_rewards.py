"""The rewards catalog: what members can redeem now, with the gifts left."""

from datetime import timedelta

from patron.services import keys, programs
from patron.services.keys import Scope
from tests.api.documents import demo_document, gift
from tests.conftest import T0
from tests.helpers import program_document


def catalog(api, key="read"):
    reply = api.get("/v1/rewards", key=key)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_the_catalog_lists_the_rewards_in_force(api):
    assert catalog(api) == {
        "program_version": 1,
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
    assert api.client.get("/v1/rewards", headers=headers).json() == {"program_version": None, "rewards": []}
    # Published, but in force only from tomorrow: still nothing today.
    programs.publish(api.db, fresh, program_document(), actor="test", now=T0, effective_from=T0 + timedelta(days=1))
    assert api.client.get("/v1/rewards", headers=headers).json() == {"program_version": None, "rewards": []}
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
