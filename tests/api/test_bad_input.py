"""LEDGER.md scenario 9: bad input to any write endpoint is a 4xx naming the problem, and nothing is written.

Negative, zero, fractional, huge and non-numeric amounts and points; fields nobody may set (`balance`, `tier`);
another tenant's members, rewards and programs; conflicts with what is already recorded. Each request is sent to a
ledger that already holds earnings, a redemption, an adjustment and idempotency keys, and after each one every
table (journal, postings, lots, balances, redemptions, audit log, reward stock, events, ...) must be byte-for-byte
what it was. On SQLite and PostgreSQL.
"""

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from patron.domain.members import MemberProfile
from patron.services import members, programs
from patron.services.keys import Scope
from tests.api.conftest import assert_problem, make_key
from tests.api.documents import demo_document, gift
from tests.api.events import purchase, refund, review, signup
from tests.conftest import T0
from tests.helpers import ledger_dump, program_document

ANY_FIELD = object()  # the problem names some field, whichever the validator picked


@dataclass(frozen=True)
class Bad:
    name: str
    path: str
    body: Any  # sent as JSON unless `raw`
    status: int
    field: Any  # the field the problem must name; None: the request as a whole
    key: str = "admin"
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    raw: bool = False


def ledger_bytes(db) -> bytes:
    """Every row of every table in primary-key order, as text: equal bytes, nothing written."""
    return repr(ledger_dump(db)).encode()


@pytest.fixture
def busy(api):
    """A ledger with something in every table bad input could reach, and the ids the bad requests collide with."""
    for member_id in ("ours", "poor"):
        assert api.put(f"/v1/members/{member_id}", key="events", json={"email": f"{member_id}@example.com"}).is_success
    for body in (signup(), purchase(event_id="p1", order_id="o1", total="150.00"), review(event_id="v1")):
        assert api.post("/v1/events", key="events", json=body).status_code == 201
    funded = api.post(
        "/v1/members/m1/adjustments", json={"points": 2000, "reason": "seed"}, headers={"Idempotency-Key": "adj-1"}
    )
    assert funded.status_code == 201, funded.text
    redeemed = api.post(
        "/v1/members/m1/redemptions", key="redeem", json={"reward_id": "tote-bag"}, headers={"Idempotency-Key": "red-1"}
    )
    assert redeemed.status_code == 201, redeemed.text
    api.fund("ours", 800)
    # The other tenant offers a reward our program does not have.
    their_document = program_document(rewards=[gift("their-mug", stock=5)])
    programs.publish(api.db, api.other_program_id, their_document, actor="test", now=T0, effective_from=T0)
    return api


def send(api, bad: Bad):
    headers = {**api.auth(bad.key), **bad.headers}
    if bad.raw:
        headers["Content-Type"] = "application/json"
        return api.client.request(bad.method, bad.path, content=bad.body, headers=headers)
    return api.client.request(bad.method, bad.path, json=bad.body, headers=headers)


def problem_failures(reply, status: int, wanted: Any, errors_at: str = "") -> list[str]:
    """What is wrong with `reply` as a problem of this status naming `wanted`; empty when nothing."""
    if reply.status_code != status:
        return [f"status {reply.status_code}, not {status}{errors_at}: {reply.text[:300]}"]
    if reply.headers["content-type"] != "application/problem+json":
        return [f"content-type {reply.headers['content-type']}"]
    return named_failures(reply.json(), status, wanted)


def named_failures(problem: dict[str, Any], status: int, wanted: Any) -> list[str]:
    if problem.get("status") != status or not problem.get("title") or not problem.get("detail"):
        return [f"not a complete problem: {problem}"]
    named = [error["field"] for error in problem["errors"]]
    if wanted is ANY_FIELD:
        return [] if any(named) else [f"no field named: {problem}"]
    if wanted is None and not named:
        return []  # the body as a whole: the detail says what is wrong with it
    return [] if wanted in named else [f"{wanted!r} not among {named}: {problem['detail'][:300]}"]


def check_all(api, cases: list[Bad]) -> None:
    """Sends each bad request; collects every failure so one run shows them all."""
    failures = []
    for bad in cases:
        before = ledger_bytes(api.db)
        reply = send(api, bad)
        failures += [f"{bad.name}: {f}" for f in problem_failures(reply, bad.status, bad.field)]
        if ledger_bytes(api.db) != before:
            failures.append(f"{bad.name}: the database changed")
    assert failures == [], "\n".join(failures)


def raw_cases(path: str, template: dict[str, Any], placeholder_field: str, key: str = "admin") -> list[Bad]:
    """Bodies a JSON library would not produce: numbers past float range, NaN, thousands of digits, broken JSON."""
    text = json.dumps(template)

    def body(number: str) -> str:
        return text.replace('"__NUMBER__"', number)

    numbers = {"1e400": "float overflow", "-1e400": "negative overflow", "NaN": "NaN", "Infinity": "infinity"}
    cases = [
        Bad(f"{label} ({placeholder_field})", path, body(number), 422, ANY_FIELD, key=key, raw=True)
        for number, label in numbers.items()
    ]
    # Past Python's 4300-digit limit the body cannot even be parsed: the problem is the body, not a field.
    cases.append(Bad(f"5000 digits ({placeholder_field})", path, body("9" * 5000), 400, None, key=key, raw=True))
    cases += [
        Bad("not JSON", path, text[:-3], 422, None, key=key, raw=True),
        Bad("empty body", path, "", 422, None, key=key, raw=True),
        Bad("JSON null", path, "null", 422, None, key=key, raw=True),
        Bad("a JSON list", path, "[]", 422, None, key=key, raw=True),
    ]
    return cases


LINE = {"sku": "CD-1", "unit_price": "10.00"}
FUTURE = "2030-01-01T00:00:00Z"


def new_purchase(**fields: Any) -> dict[str, Any]:
    """A purchase not reported before (the fixture's is p1, order o1)."""
    return purchase(event_id="e1", order_id="n1", **fields)


def new_line(**fields: Any) -> dict[str, Any]:
    return new_purchase(lines=[LINE | fields])


def new_signup(**fields: Any) -> dict[str, Any]:
    """A signup by a member who has none yet."""
    return signup(event_id="e1", member_id="ours", **fields)


BAD_EVENTS = [
    # amounts
    ("negative total", new_purchase(total="-5.00"), 422, "total"),
    ("negative total as a number", new_purchase(total=-5), 422, "total"),
    ("fractional cents", new_purchase(total="10.00001"), 422, "total"),
    ("huge total", new_purchase(total="1" + "0" * 20), 422, "total"),
    ("huge total as a number", new_purchase(total=10**20), 422, "total"),
    ("total in exponent form, huge", new_purchase(total="1e400"), 422, "total"),
    ("non-numeric total", new_purchase(total="ten"), 422, "total"),
    ("boolean total", new_purchase(total=True), 422, "total"),
    ("null total", new_purchase(total=None), 422, "total"),
    ("total as an object", new_purchase(total={"amount": 5}), 422, "total"),
    ("NaN total", new_purchase(total="NaN"), 422, "total"),
    ("infinite total", new_purchase(total="-Infinity"), 422, "total"),
    ("zero quantity", new_line(quantity=0), 422, "lines.0.quantity"),
    ("negative quantity", new_line(quantity=-2), 422, "lines.0.quantity"),
    ("fractional quantity", new_line(quantity=1.5), 422, "lines.0.quantity"),
    ("huge quantity", new_line(quantity=10**30), 422, "lines.0.quantity"),
    ("quantity as text", new_line(quantity="2"), 422, "lines.0.quantity"),
    ("negative unit price", new_line(unit_price="-1"), 422, "lines.0.unit_price"),
    ("zero refund", refund(event_id="e1", amount="0"), 422, "amount"),
    ("negative refund", refund(event_id="e1", amount="-10.00"), 422, "amount"),
    ("non-numeric refund", refund(event_id="e1", amount="all of it"), 422, "amount"),
    ("huge refund", refund(event_id="e1", amount="99999999999"), 422, "amount"),
    ("refund of more than was paid", refund(event_id="e1", amount="150.01"), 422, "amount"),
    ("refund of an order never reported", refund(event_id="e1", order_id="o404", amount="1.00"), 422, "order_id"),
    # fields nobody sets from outside
    ("a balance", new_signup(balance=1_000_000), 422, "balance"),
    ("a tier", new_signup(tier="gold"), 422, "tier"),
    ("points on a purchase", new_purchase(points=5000), 422, "points"),
    ("a program id", new_signup(program_id=2), 422, "program_id"),
    ("a program", new_signup(program="other"), 422, "program"),
    ("a custom event posing as a signup", review(event_id="e1", name="signup"), 422, None),
    # other tenants and unknown members
    ("another program's member", signup(event_id="e1", member_id="theirs"), 404, "member_id"),
    ("an unknown member", signup(event_id="e1", member_id="nobody"), 404, "member_id"),
    # conflicts with what is recorded, and impossible times
    ("an event id reused with another body", signup(event_id="p1"), 409, "event_id"),
    ("an order reported twice", purchase(event_id="e1", order_id="o1"), 422, "order_id"),
    ("before any program version", new_signup(occurred_at="1989-01-01T00:00:00Z"), 422, "occurred_at"),
    ("in the future", new_signup(occurred_at=FUTURE), 422, "occurred_at"),
    ("at the end of time", new_signup(occurred_at="9999-12-31T23:59:59+14:00"), 422, "occurred_at"),
    ("a time without a zone", new_signup(occurred_at="2026-01-05T10:00:00"), 422, "occurred_at"),
    # text PostgreSQL cannot store, refused on both backends alike
    ("NUL in a sku", new_line(sku="CD\x001"), 422, "lines.0.sku"),
    ("NUL in a channel", new_purchase(channel="web\x00"), 422, "channel"),
    ("NUL in an attribute", review(event_id="e1", attributes={"text": "great\x00"}), 422, "attributes.text"),
]  # fmt: skip


def test_bad_events_are_refused_and_change_nothing(busy):
    cases = [Bad(name, "/v1/events", body, status, field, key="events") for name, body, status, field in BAD_EVENTS]
    cases += [
        Bad(f"dry run: {name}", "/v1/events?dry_run=true", body, status, field, key="events")
        for name, body, status, field in BAD_EVENTS
        if status != 409  # a dry run of a recorded event id is not a conflict: it writes nothing either way
    ]
    cases += raw_cases("/v1/events", new_purchase(total="__NUMBER__"), "total", key="events")
    check_all(busy, cases)


def test_bad_events_in_a_batch_each_fail_alone_and_change_nothing(busy):
    failures = []
    before = ledger_bytes(busy.db)
    # Each its own event id, so that no item is taken for a retry of another.
    batch = [
        body | {"event_id": f"b{i}"} if body["event_id"] == "e1" else body
        for i, (_, body, _, _) in enumerate(BAD_EVENTS)
    ]
    reply = busy.post("/v1/events/batch", key="events", json={"events": batch})
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert [r["index"] for r in results] == list(range(len(BAD_EVENTS)))
    for (name, _, status, wanted), result in zip(BAD_EVENTS, results, strict=True):
        if result["status"] != status or "problem" not in result:
            failures.append(f"{name}: {result}")
        else:
            failures += [f"{name}: {f}" for f in named_failures(result["problem"], status, wanted)]
    assert failures == [], "\n".join(failures)
    assert ledger_bytes(busy.db) == before


def test_malformed_batches_are_refused_whole_and_change_nothing(busy):
    good = new_signup()
    cases = [
        Bad("no events", "/v1/events/batch", {"events": []}, 422, "events"),
        Bad("too many events", "/v1/events/batch", {"events": [good] * 1001}, 422, "events"),
        Bad("events not a list", "/v1/events/batch", {"events": good}, 422, "events"),
        Bad("no events field", "/v1/events/batch", {}, 422, "events"),
        Bad("a balance beside the events", "/v1/events/batch", {"events": [good], "balance": 5}, 422, "balance"),
        Bad("a program beside the events", "/v1/events/batch", {"events": [good], "program": "other"}, 422, "program"),
    ]
    check_all(busy, [Bad(**{**bad.__dict__, "key": "events"}) for bad in cases])


def test_bad_profiles_are_refused_and_change_nothing(busy):
    def put(name, member_id, body, field, status=422):
        return Bad(name, f"/v1/members/{member_id}", body, status, field, key="events", method="PUT")

    cases = [
        put("a balance", "m1", {"balance": {"available": 10**6}}, "balance"),
        put("a tier", "m1", {"tier": "gold"}, "tier"),
        put("points", "m1", {"points": 500}, "points"),
        put("available points", "m1", {"available": 500}, "available"),
        put("a program", "m1", {"program": "other"}, "program"),
        put("a balance for a new member", "newbie", {"balance": 5}, "balance"),
        put("a tier for a new member", "newbie", {"tier": "platinum"}, "tier"),
        put("a bad email", "m1", {"email": "not-an-email"}, "email"),
        put("a nested attribute", "m1", {"attributes": {"points": {"available": 5}}}, "attributes.points"),
        put("a member id with spaces", "has space", {}, "member_id"),
        put("NUL in an email", "m1", {"email": "a\x00b@example.com"}, "email"),
        put("NUL in an attribute", "m1", {"attributes": {"note": "x\x00y"}}, "attributes.note"),
        put("NUL in an attribute's name", "m1", {"attributes": {"no\x00te": "x"}}, ANY_FIELD),
    ]
    cases += [
        Bad(**{**bad.__dict__, "method": "PUT"})
        for bad in raw_cases("/v1/members/m1", {"email": "__NUMBER__"}, "email", key="events")
    ]
    check_all(busy, cases)


def test_bad_redemptions_are_refused_and_change_nothing(busy):
    def redeem(name, body, status, field, member_id="ours", key="redeem", **headers):
        return Bad(name, f"/v1/members/{member_id}/redemptions", body, status, field, key=key, headers=headers)

    cases = [
        redeem("no reward", {}, 422, "reward_id"),
        redeem("a reward id that is a number", {"reward_id": 5}, 422, "reward_id"),
        redeem("a null reward id", {"reward_id": None}, 422, "reward_id"),
        redeem("a malformed reward id", {"reward_id": "Coupon 5!"}, 422, "reward_id"),
        redeem("an unknown reward", {"reward_id": "no-such-thing"}, 404, "reward_id"),
        redeem("another program's reward", {"reward_id": "their-mug"}, 404, "reward_id"),
        redeem("a cost", {"reward_id": "coupon-5", "cost": 1}, 422, "cost"),
        redeem("points", {"reward_id": "coupon-5", "points": 0}, 422, "points"),
        redeem("a negative quantity", {"reward_id": "coupon-5", "quantity": -1}, 422, "quantity"),
        redeem("a balance", {"reward_id": "coupon-5", "balance": 10**6}, 422, "balance"),
        redeem("a tier", {"reward_id": "coupon-5", "tier": "gold"}, 422, "tier"),
        redeem("a member in the body", {"reward_id": "coupon-5", "member_id": "m1"}, 422, "member_id"),
        redeem("another program's member", {"reward_id": "coupon-5"}, 404, "member_id", member_id="theirs"),
        redeem("our member, another program's key", {"reward_id": "coupon-5"}, 404, "member_id", key="other"),
        redeem("too few points", {"reward_id": "coupon-5"}, 409, "reward_id", member_id="poor"),
        redeem("too few points for a gift", {"reward_id": "tote-bag"}, 409, "reward_id"),
        redeem("past the per-member limit", {"reward_id": "tote-bag"}, 409, "reward_id", member_id="m1"),
        redeem(
            "an idempotency key reused for another reward",
            {"reward_id": "coupon-5"},
            409,
            "Idempotency-Key",
            member_id="m1",
            **{"Idempotency-Key": "red-1"},
        ),
        redeem(
            "an adjustment's idempotency key",
            {"reward_id": "free-single"},
            409,
            "Idempotency-Key",
            member_id="m1",
            **{"Idempotency-Key": "adj-1"},
        ),
        redeem(
            "an idempotency key too long",
            {"reward_id": "coupon-5"},
            422,
            "Idempotency-Key",
            **{"Idempotency-Key": "k" * 256},
        ),
    ]
    cases += raw_cases("/v1/members/ours/redemptions", {"reward_id": "__NUMBER__"}, "reward_id", key="redeem")
    check_all(busy, cases)


def test_bad_adjustments_are_refused_and_change_nothing(busy):
    def adjust(name, body, status, field, member_id="ours", key="admin", **headers):
        return Bad(name, f"/v1/members/{member_id}/adjustments", body, status, field, key=key, headers=headers)

    def points(name, value, status=422, field="points"):
        return adjust(name, {"points": value, "reason": "test"}, status, field)

    cases = [
        points("zero points", 0),
        points("fractional points", 2.5),
        points("whole points written as a float", 10.0),
        points("points as text", "10"),
        points("non-numeric points", "ten"),
        points("boolean points", True),
        points("null points", None),
        points("huge points", 10**9 + 1),
        points("huge negative points", -(10**12)),
        points("points past 64 bits", 2**64),
        points("points past any column", 10**30),
        points("removing more than is available", -801, 409),
        adjust("no points", {"reason": "test"}, 422, "points"),
        adjust("no reason", {"points": 5}, 422, "reason"),
        adjust("an empty reason", {"points": 5, "reason": ""}, 422, "reason"),
        adjust("a blank reason", {"points": 5, "reason": " \t "}, 422, "reason"),
        adjust("a reason that is not text", {"points": 5, "reason": 42}, 422, "reason"),
        adjust("NUL in the reason", {"points": 5, "reason": "typo\x00"}, 422, "reason"),
        adjust("a balance", {"points": 5, "reason": "x", "balance": 10**6}, 422, "balance"),
        adjust("a tier", {"points": 5, "reason": "x", "tier": "gold"}, 422, "tier"),
        adjust("an actor", {"points": 5, "reason": "x", "actor": "the CEO"}, 422, "actor"),
        adjust("another program's member", {"points": 5, "reason": "x"}, 404, "member_id", member_id="theirs"),
        adjust("our member, another program's key", {"points": 5, "reason": "x"}, 404, "member_id", key="other"),
        adjust("an unknown member", {"points": 5, "reason": "x"}, 404, "member_id", member_id="nobody"),
        adjust(
            "an idempotency key reused with other points",
            {"points": 2001, "reason": "seed"},
            409,
            "Idempotency-Key",
            member_id="m1",
            **{"Idempotency-Key": "adj-1"},
        ),
        adjust(
            "a redemption's idempotency key",
            {"points": 5, "reason": "x"},
            409,
            "Idempotency-Key",
            member_id="m1",
            **{"Idempotency-Key": "red-1"},
        ),
    ]
    cases += raw_cases("/v1/members/ours/adjustments", {"points": "__NUMBER__", "reason": "x"}, "points")
    check_all(busy, cases)


def broken_document(**changes: Any) -> dict[str, Any]:
    """The demo document with one part replaced: `rule_points` for the signup rule, `reward` for the coupon."""
    document = demo_document()
    if "rule_points" in changes:
        next(r for r in document["rules"] if r["id"] == "signup")["points"] = {"fixed": changes.pop("rule_points")}
    if "reward" in changes:
        document["rewards"][0] |= changes.pop("reward")
    if "earning" in changes:
        document["earning"] = {"points_per_unit": changes.pop("earning")}
    return document | changes


def test_bad_program_versions_are_refused_and_change_nothing(busy):
    def publish(name, body, field, status=422):
        return Bad(name, "/v1/program/versions", body, status, field)

    def document(label, field, **changes):
        return publish(label, {"document": broken_document(**changes)}, f"document.{field}")

    signup_points = "rules.2.points.fixed"
    cases = [
        document("negative cost", "rewards.0.cost", reward={"cost": -500}),
        document("zero cost", "rewards.0.cost", reward={"cost": 0}),
        document("fractional cost", "rewards.0.cost", reward={"cost": 499.5}),
        document("huge cost", "rewards.0.cost", reward={"cost": 10**20}),
        document("non-numeric cost", "rewards.0.cost", reward={"cost": "five hundred"}),
        document("negative coupon value", "rewards.0.value", reward={"value": "-5.00"}),
        document("negative stock", "rewards.0.stock", reward={"stock": -1}),
        document("fractional stock", "rewards.0.stock", reward={"stock": 2.5}),
        document("negative fixed points", signup_points, rule_points=-100),
        document("zero fixed points", signup_points, rule_points=0),
        document("fractional fixed points", signup_points, rule_points=2.5),
        document("huge fixed points", signup_points, rule_points=10**12),
        document("non-numeric fixed points", signup_points, rule_points="lots"),
        document("negative earn rate", "earning.points_per_unit", earning="-1"),
        document("zero earn rate", "earning.points_per_unit", earning="0"),
        document("NaN earn rate", "earning.points_per_unit", earning="NaN"),
        document("huge earn rate", "earning.points_per_unit", earning="1e400"),
        document("negative return window", "pending_days", pending_days=-1),
        document("fractional return window", "pending_days", pending_days=1.5),
        document("a tier", "tier", tier={"gold": 1000}),
        document("a balance", "balance", balance=0),
        document("NUL in the name", "name", name="Shop\x00"),
        publish("no document", {}, "document"),
        publish("a document as text", {"document": "name: shop"}, "document"),
        publish(
            "a naive effective_from",
            {"document": demo_document(), "effective_from": "2026-02-01T00:00:00"},
            "effective_from",
        ),
        publish("a version number", {"document": demo_document(), "version": 9}, "version"),
        publish("another program", {"document": demo_document(), "program": "other"}, "program"),
        publish("another program's id", {"document": demo_document(), "program_id": 2}, "program_id"),
    ]
    cases += raw_cases("/v1/program/versions", {"document": demo_document(pending_days="__NUMBER__")}, "pending_days")
    check_all(busy, cases)


def test_a_program_with_no_version_in_force_yet_refuses_points_and_says_why(api):
    """A tenant set up ahead of launch: its first version starts tomorrow, so nothing can earn or spend today."""
    fresh = programs.create_program(api.db, "fresh", now=T0)
    programs.publish(api.db, fresh, program_document(), actor="test", now=T0, effective_from=T0 + timedelta(days=1))
    members.upsert(api.db, fresh, "f1", MemberProfile(), now=T0)
    headers = {"Authorization": f"Bearer {make_key(api.db, fresh, 'fresh-admin', {Scope.ADMIN})}"}
    before = ledger_bytes(api.db)
    redeemed = api.client.post("/v1/members/f1/redemptions", json={"reward_id": "coupon-5"}, headers=headers)
    adjusted = api.client.post("/v1/members/f1/adjustments", json={"points": 5, "reason": "x"}, headers=headers)
    for reply in (redeemed, adjusted):
        # Not the request's fault, and no field of it to name: the program is not live yet.
        problem = assert_problem(reply, 409, None)
        assert "no version in force" in problem["detail"]
    # An event carries its own time: that time is what no version covers.
    assert_problem(api.client.post("/v1/events", json=signup(member_id="f1"), headers=headers), 422, "occurred_at")
    assert ledger_bytes(api.db) == before


@pytest.mark.parametrize(
    "expiry",
    [
        {"policy": "after", "days": 3_000_000},
        {"policy": "after", "months": 1_000_000},
        {"policy": "end_of_period", "period": "year", "after_months": 1_000_000},
    ],
    ids=["days", "months", "after_months"],
)
def test_an_expiry_past_the_calendar_is_refused_at_publish(api, expiry):
    # Were it accepted, such a version would make every signup, purchase and adjustment after it a 500.
    reply = api.post("/v1/program/versions", json={"document": demo_document(expiry=expiry)})
    (too_long,) = (name for name, value in expiry.items() if isinstance(value, int))
    assert_problem(reply, 422, f"document.expiry.{too_long}")
    assert [v["version"] for v in api.get("/v1/program/versions").json()] == [1]


def test_an_earn_rate_that_overflows_the_ledger_is_refused(api):
    document = demo_document(earning={"points_per_unit": "999999"})
    document["rules"][0]["multiplier"] = "999999"  # 10^12 points a dollar: one big order passes 64 bits
    reply = api.post("/v1/program/versions", json={"document": document})
    if reply.status_code == 201:
        before = ledger_bytes(api.db)
        reply = api.post("/v1/events", key="events", json=purchase(total="9999999999.99"))
        assert ledger_bytes(api.db) == before
    assert 400 <= reply.status_code < 500, reply.text


def test_an_event_ahead_of_our_clock_is_drift_up_to_15_minutes_and_refused_after(api):
    # The clock reads 12:00. A till 10 minutes fast is believed; one 16 minutes fast has the wrong date.
    drifted = api.post("/v1/events", key="events", json=signup(occurred_at="2026-01-05T12:10:00Z"))
    assert drifted.status_code == 201, drifted.text
    before = ledger_bytes(api.db)
    ahead = purchase(occurred_at="2026-01-05T12:16:00Z")
    problem = assert_problem(api.post("/v1/events", key="events", json=ahead), 422, "occurred_at")
    assert "in the future" in problem["detail"]
    results = api.post("/v1/events/batch", key="events", json={"events": [ahead]}).json()["results"]
    assert [(r["status"], r["problem"]["errors"][0]["field"]) for r in results] == [(422, "occurred_at")]
    assert ledger_bytes(api.db) == before


def test_no_route_answers_a_nul_in_its_path_or_query_with_a_500(api):
    """PostgreSQL cannot even compare text holding NUL: wherever one gets through to a query, it is still a 4xx."""
    before = ledger_bytes(api.db)
    paths = api.client.get("/openapi.json").json()["paths"]
    requests = [
        (method, re.sub(r"\{[^}]+\}", "a%00b", path), {})
        for path, methods in paths.items()
        if "{" in path
        for method in methods
    ]
    requests += [("get", path, {"cursor": "a\x00b"}) for path in ("/v1/members", "/v1/members/m1/history")]
    failures = []
    for method, path, params in requests:
        reply = api.client.request(method, path, params=params, headers=api.auth())
        if not 400 <= reply.status_code < 500 or reply.headers["content-type"] != "application/problem+json":
            failures.append(f"{method.upper()} {path} {params}: {reply.status_code} {reply.text[:200]}")
    assert failures == [], "\n".join(failures)
    assert ledger_bytes(api.db) == before


def test_forged_cursors_are_422(api):
    def forged(text):
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    assert api.put("/v1/members/m2", key="events", json={}).status_code == 201
    given = api.get("/v1/members", key="read", params={"limit": 1}).json()["next_cursor"]
    assert api.get("/v1/members", key="read", params={"cursor": given}).status_code == 200
    for cursor in (
        forged("v1:" + "9" * 30),  # past 64 bits: the database would refuse to compare it
        forged("v1:9223372036854775808"),
        forged("v1:-5"),
        forged("v1: 2"),
        forged("v1:2_0"),
        forged("v1:\u0663"),  # ARABIC-INDIC DIGIT THREE: int() reads it as 3
        given + "==",
    ):
        for path in ("/v1/members", "/v1/members/m1/history"):
            assert_problem(api.get(path, key="read", params={"cursor": cursor}), 422, "cursor")
