"""Program versions: read them, check a document, publish one that judges events from its effective moment."""

from datetime import timedelta

from patron.services import programs
from tests.api.conftest import assert_problem
from tests.api.documents import demo_document
from tests.api.events import WHEN, purchase, signup
from tests.conftest import T0
from tests.helpers import program_document


def publish(api, body, key="admin"):
    return api.post("/v1/program/versions", key=key, json=body)


def test_the_versions_are_listed_oldest_first_and_read_one_by_one(api):
    assert api.get("/v1/program/versions", key="read").json() == [
        {
            "version": 1,
            "effective_from": "1990-01-01T00:00:00Z",
            "published_at": "2026-01-05T12:00:00Z",
            "published_by": "test",
        }
    ]
    one = api.get("/v1/program/versions/1", key="read").json()
    assert one["document"] == demo_document()

    api.clock.now = T0 + timedelta(hours=1)
    published = publish(api, {"document": demo_document(name="Patron Records rewards")})
    assert published.status_code == 201, published.text
    body = published.json()
    # Without effective_from, a version is in force from the moment it is published; the key's name is the author.
    assert (body["version"], body["effective_from"], body["published_at"], body["published_by"]) == (
        2,
        "2026-01-05T13:00:00Z",
        "2026-01-05T13:00:00Z",
        "admin-key",
    )
    assert body["document"]["name"] == "Patron Records rewards"
    assert [v["version"] for v in api.get("/v1/program/versions", key="read").json()] == [1, 2]
    assert api.get("/v1/program/versions/2", key="read").json() == body
    assert api.get("/v1/program/versions/1", key="read").json() == one  # versions never change


def test_missing_and_malformed_version_numbers(api):
    assert_problem(api.get("/v1/program/versions/2", key="read"), 404, "version")
    for bad in ("0", "-1", "two", "1.5"):
        assert_problem(api.get(f"/v1/program/versions/{bad}", key="read"), 422, "version")


def test_another_programs_versions_are_invisible(api):
    their_document = program_document(name="Their secret plans")
    programs.publish(api.db, api.other_program_id, their_document, actor="them", now=T0, effective_from=T0)
    assert [v["version"] for v in api.get("/v1/program/versions", key="read").json()] == [1]
    assert_problem(api.get("/v1/program/versions/2", key="read"), 404, "version")
    assert api.get("/v1/program/versions/2", key="other").json()["document"]["name"] == "Their secret plans"


def test_events_are_judged_by_the_version_in_force_when_they_occurred(api):
    # WHEN is 10:00; version 2 (double points, a 500-point welcome) is in force from 11:00.
    doubled = demo_document(earning={"points_per_unit": "2", "rounding": "floor"})
    doubled["rules"] = [
        rule | {"points": {"fixed": 500}} if rule["id"] == "signup" else rule for rule in doubled["rules"]
    ]
    published = publish(api, {"document": doubled, "effective_from": "2026-01-05T11:00:00Z"})
    assert published.status_code == 201, published.text
    assert api.put("/v1/members/m2", key="events", json={}).status_code == 201

    def receipt(body):
        reply = api.post("/v1/events", key="events", json=body)
        assert reply.status_code == 201, reply.text
        return reply.json()["program_version"], reply.json()["points"]

    after = "2026-01-05T11:00:00Z"
    assert receipt(signup(event_id="s1", member_id="m1")) == (1, 100)
    assert receipt(signup(event_id="s2", member_id="m2", occurred_at=after)) == (2, 500)
    assert receipt(purchase(event_id="p1", order_id="o1", total="150.00")) == (1, 150 + 50)
    assert receipt(purchase(event_id="p2", order_id="o2", total="150.00", occurred_at=after)) == (2, 300 + 50)
    # Reported late, an event that occurred before 11:00 still gets version 1.
    api.clock.now = T0 + timedelta(days=3)
    assert receipt(purchase(event_id="p3", order_id="o3", total="10.00", occurred_at=WHEN)) == (1, 10)


def test_an_event_before_any_version_is_refused(api):
    before = api.snapshot()
    # The fixture's first version is in force from 1990.
    reply = api.post("/v1/events", key="events", json=signup(occurred_at="1989-12-31T23:59:59Z"))
    assert_problem(reply, 422, "occurred_at")
    assert api.snapshot() == before


DOCUMENT_ERRORS = [
    ("a condition that is not CEL", ("rules", 1, "when"), "event.total_minor >>> 3", "rules.1.when"),
    ("a condition on an unknown variable", ("rules", 1, "when"), "customer.vip == true", "rules.1.when"),
    ("negative cost", ("rewards", 2, "cost"), -5, "rewards.2.cost"),
    ("zero cost", ("rewards", 2, "cost"), 0, "rewards.2.cost"),
    ("fractional cost", ("rewards", 2, "cost"), 1.5, "rewards.2.cost"),
    ("huge cost", ("rewards", 2, "cost"), 10**20, "rewards.2.cost"),
    ("non-numeric cost", ("rewards", 2, "cost"), "lots", "rewards.2.cost"),
    ("negative stock", ("rewards", 2, "stock"), -1, "rewards.2.stock"),
    ("a gift without stock", ("rewards", 2, "stock"), None, "rewards.2"),
    ("zero fixed points", ("rules", 2, "points"), {"fixed": 0}, "rules.2.points.fixed"),
    ("negative earn rate", ("earning", "points_per_unit"), "-1", "earning.points_per_unit"),
    ("NaN earn rate", ("earning", "points_per_unit"), "NaN", "earning.points_per_unit"),
    ("a currency that is not ISO 4217", ("currency",), "dollars", "currency"),
    ("an unknown time zone", ("timezone",), "Mars/Olympus_Mons", "timezone"),
    ("a return window of a year and more", ("pending_days",), 366, "pending_days"),
    ("an unknown expiry policy", ("expiry",), {"policy": "sometimes"}, "expiry.policy"),
    ("expiry with no length", ("expiry",), {"policy": "after"}, "expiry"),
    ("an unknown field", ("tier",), "gold", "tier"),
    ("an unknown field in a rule", ("rules", 0, "on"), "purchase", "rules.0.on"),
    ("a rule on refunds", ("rules", 2, "event"), "refund", "rules.2"),
    ("a rule id reused", ("rules", 1, "id"), "purchase", "rules"),
    ("a malformed rule id", ("rules", 0, "id"), "Has Spaces", "rules.0.id"),
]


def broken(path, value):
    document = demo_document()
    *parents, last = path
    target = document
    for segment in parents:
        target = target[segment]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return document


def test_an_invalid_document_is_422_naming_the_path_and_publishes_nothing(api):
    before = api.snapshot()
    for name, path, value, field in DOCUMENT_ERRORS:
        reply = publish(api, {"document": broken(path, value)})
        assert reply.status_code == 422, (name, reply.text)
        assert_problem(reply, 422, f"document.{field}")
    assert api.snapshot() == before
    assert [v["version"] for v in api.get("/v1/program/versions").json()] == [1]


def test_a_publish_request_has_a_document_and_an_aware_effective_from_only(api):
    before = api.snapshot()
    document = demo_document()
    for body, field in (
        ({}, "document"),
        ({"document": None}, "document"),
        ({"document": "name: shop"}, "document"),
        ({"document": document, "effective_from": "2026-02-01T00:00:00"}, "effective_from"),
        ({"document": document, "effective_from": "next week"}, "effective_from"),
        ({"document": document, "version": 7}, "version"),
        ({"document": document, "program": "other"}, "program"),
    ):
        assert_problem(publish(api, body), 422, field)
    assert api.snapshot() == before


def test_publishing_needs_an_admin_key(api):
    before = api.snapshot()
    for key in ("read", "events", "redeem"):
        assert_problem(publish(api, {"document": demo_document()}, key=key), 403, "Authorization")
    assert api.snapshot() == before


def test_validate_checks_a_document_and_writes_nothing(api):
    before = api.snapshot()
    reply = api.post("/v1/program/validate", key="read", json=demo_document())
    assert (reply.status_code, reply.json()) == (200, {"valid": True})
    for name, path, value, field in DOCUMENT_ERRORS:
        reply = api.post("/v1/program/validate", key="read", json=broken(path, value))
        assert reply.status_code == 422, (name, reply.text)
        assert_problem(reply, 422, field)
    assert_problem(api.post("/v1/program/validate", key="read", json=["rules"]), 422, None)
    assert api.snapshot() == before
