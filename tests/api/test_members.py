"""Enrolling members and reading them back: profiles, balances, lots, history, pages; one tenant at a time."""

from datetime import UTC, datetime, timedelta

from tests.api.conftest import assert_problem
from tests.api.events import purchase, signup


def test_put_enrols_a_member_then_replaces_the_profile(api):
    created = api.put(
        "/v1/members/ann", key="events", json={"email": "ann@example.com", "attributes": {"vip": True, "visits": 3}}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["member_id"], body["email"], body["attributes"]) == (
        "ann",
        "ann@example.com",
        {"vip": True, "visits": 3},
    )
    assert body["balance"] == {"available": 0, "pending": 0, "owed": 0}

    api.clock.now += timedelta(days=1)
    replaced = api.put("/v1/members/ann", key="events", json={"email": "ann@new.example", "locale": "en-US"})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["member_since"] == body["member_since"]  # still the same member
    read = api.get("/v1/members/ann", key="read").json()
    # A PUT replaces the whole profile: the attributes not sent again are gone.
    assert (read["email"], read["locale"], read["attributes"]) == ("ann@new.example", "en-US", {})


def test_a_profile_cannot_set_points_or_a_tier(api):
    api.fund("m1", 40)
    before = api.snapshot()
    for sneaky in (
        {"balance": {"available": 1_000_000}},
        {"tier": "gold"},
        {"points": 500},
        {"member_since": "2020-01-01"},
    ):
        (name,) = sneaky
        reply = api.put("/v1/members/m1", key="events", json={"email": "m1@example.com", **sneaky})
        assert_problem(reply, 422, name)
        assert_problem(api.put("/v1/members/newbie", key="events", json=sneaky), 422, name)
    assert api.snapshot() == before
    assert api.balance("m1")["available"] == 40
    assert_problem(api.get("/v1/members/newbie"), 404, "member_id")


def test_bad_profiles_are_422_and_change_nothing(api):
    before = api.snapshot()
    cases = [
        ({"email": "not-an-email"}, "email"),
        ({"phone": "call me"}, "phone"),
        ({"birthday": "yesterday"}, "birthday"),
        ({"locale": "not a locale!"}, "locale"),
        ({"attributes": {"colours": ["red"]}}, "attributes.colours"),
        ({"attributes": {"x" * 65: 1}}, "attributes.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        (["a", "list"], None),
    ]
    for body, field in cases:
        assert_problem(api.put("/v1/members/m2", key="events", json=body), 422, field)
    not_json = api.put("/v1/members/m2", key="events", content=b"{email:", headers={"Content-Type": "application/json"})
    assert_problem(not_json, 422, None)
    as_text = api.put("/v1/members/m2", key="events", content=b"{}", headers={"Content-Type": "text/plain"})
    assert_problem(as_text, 422, None)
    assert_problem(api.put("/v1/members/m2", key="events"), 422, None)  # no body at all
    assert api.snapshot() == before


def test_member_ids_must_be_external_ids(api):
    before = api.snapshot()
    for bad in ("x" * 129, "has space", "-starts-with-a-dash"):
        assert_problem(api.put(f"/v1/members/{bad}", key="events", json={}), 422, "member_id")
    assert api.snapshot() == before


def test_unknown_and_other_programs_members_are_not_found(api):
    api.fund("m1", 70)
    for member_id in ("nobody", "theirs"):  # "theirs" exists, in the other program
        for suffix in ("", "/lots", "/history"):
            assert_problem(api.get(f"/v1/members/{member_id}{suffix}", key="read"), 404, "member_id")
    # Both programs have an "m1": each key sees its own.
    assert api.get("/v1/members/m1", key="read").json()["email"] is None
    theirs = api.get("/v1/members/m1", key="other").json()
    assert (theirs["email"], theirs["balance"]["available"]) == ("other@example.com", 0)
    assert api.balance("m1")["available"] == 70


def test_members_come_a_page_at_a_time(api):
    for member_id in ("m2", "m3", "m4", "m5"):
        assert api.put(f"/v1/members/{member_id}", key="events", json={}).status_code == 201
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.get("/v1/members", key="read", params=params).json()
        assert len(page["members"]) <= 2
        seen += [m["member_id"] for m in page["members"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert (seen, pages) == (["m1", "m2", "m3", "m4", "m5"], 3)  # the other program's members never show
    everyone = api.get("/v1/members", key="read").json()  # default limit 50
    assert ([m["member_id"] for m in everyone["members"]], everyone["next_cursor"]) == (seen, None)


def test_paging_parameters_are_checked(api):
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": 2.5}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "djI6NQ"}, "cursor"),  # base64 of "v2:5": a cursor format this API never gave out
    ):
        assert_problem(api.get("/v1/members", key="read", params=params), 422, field)
        assert_problem(api.get("/v1/members/m1/history", key="read", params=params), 422, field)
    assert api.get("/v1/members", key="read", params={"limit": 200}).status_code == 200


def test_a_member_shows_the_points_expiring_within_30_days(api):
    api.fund("m1", 120)  # the demo program: a lot expires 12 months after it was earned
    assert api.get("/v1/members/m1").json()["expiring_soon"] == []
    api.clock.now = datetime(2027, 1, 5, 12, tzinfo=UTC) - timedelta(days=10)
    soon = api.get("/v1/members/m1").json()["expiring_soon"]
    assert [(lot["remaining"], lot["expires_at"]) for lot in soon] == [(120, "2027-01-05T12:00:00Z")]


def test_lots_show_what_is_left_of_each_earning(api):
    assert api.post("/v1/events", key="events", json=signup()).status_code == 201  # 100 available
    assert api.post("/v1/events", key="events", json=purchase(total="150.00")).status_code == 201  # 200 pending
    api.fund("m1", 250)
    assert api.post("/v1/members/m1/redemptions", key="redeem", json={"reward_id": "free-single"}).status_code == 201

    lots = api.get("/v1/members/m1/lots", key="read").json()
    # The redemption (300) used up the signup lot first (it expires first), then 200 of the adjustment's 250.
    assert sorted((lot["status"], lot["points"], lot["remaining"]) for lot in lots) == [
        ("available", 250, 50),
        ("pending", 200, 200),
    ]
    assert next(lot for lot in lots if lot["status"] == "pending")["order_id"] == "o1"


def test_history_is_newest_first_a_page_at_a_time(api):
    api.post("/v1/events", key="events", json=signup())
    api.fund("m1", 250)
    api.post("/v1/members/m1/redemptions", key="redeem", json={"reward_id": "free-single"})

    first = api.get("/v1/members/m1/history", key="read", params={"limit": 2}).json()
    second = api.get("/v1/members/m1/history", key="read", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    entries = first["entries"] + second["entries"]
    assert [e["kind"] for e in entries] == ["redeem", "adjust", "signup"]
    assert second["next_cursor"] is None
    assert [[(p["account"], p["amount"]) for p in e["postings"]] for e in entries] == [
        [("available", -300)],
        [("available", 250)],
        [("available", 100)],
    ]
