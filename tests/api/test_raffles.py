"""Points raffles over the API: entries spend points until the draw; the draw is verifiable; misuse changes nothing."""

import hashlib
from datetime import timedelta

import pytest
import sqlalchemy as sa

from patron.store.background import outbox
from tests.api.conftest import assert_problem
from tests.conftest import T0
from tests.helpers import check_invariants, member_lots

DRAWS_AT = T0 + timedelta(days=7)


def make_raffle(api, name="spring", **fields):
    body = {
        "name": name,
        "prize_reward_id": "coupon-5",
        "winners": 1,
        "entry_cost": 100,
        "max_entries_per_member": 5,
        "draws_at": DRAWS_AT.isoformat(),
        **fields,
    }
    reply = api.post("/v1/raffles", json=body)
    assert reply.status_code == 201, reply.text
    return reply.json()


def members(api, *ids, points=1000):
    for member_id in ids:
        assert api.put(f"/v1/members/{member_id}", json={}).status_code in (200, 201)
        api.fund(member_id, points)


def enter(api, member_id, entries=1, name="spring", **kwargs):
    return api.post(
        f"/v1/raffles/{name}/entries", key="redeem", json={"member_id": member_id, "entries": entries}, **kwargs
    )


def test_entries_spend_points_and_the_draw_reveals_a_seed_that_checks_out(api):
    created = make_raffle(api, winners=2)
    assert created["seed"] is None
    members(api, "ann", "bob", "cy")
    for member_id, entries in (("ann", 1), ("bob", 3), ("cy", 2)):
        reply = enter(api, member_id, entries)
        assert reply.status_code == 201, reply.text
        assert reply.json()["balance"]["available"] == 1000 - 100 * entries
    assert_problem(api.post("/v1/raffles/spring/draw"), 409)  # not before the draw time

    api.clock.now = DRAWS_AT
    drawn = api.post("/v1/raffles/spring/draw")
    assert drawn.status_code == 200, drawn.text
    body = drawn.json()
    assert hashlib.sha256(body["seed"].encode()).hexdigest() == created["seed_hash"]
    assert body["tickets_sold"] == 6
    assert len(body["results"]) == 2
    assert len({w["member_id"] for w in body["results"]}) == 2
    # Each prize is a coupon code the winner, and only the winner, can use at a checkout.
    for winner in body["results"]:
        check = {"code": winner["prize_code"], "cart": {"total": "20"}, "member_id": winner["member_id"]}
        judged = api.post("/v1/coupons/validate", key="read", json=check).json()
        assert (judged["applies"], judged["discount"]) == (True, "5.00")
    loser = ({"ann", "bob", "cy"} - {w["member_id"] for w in body["results"]}).pop()
    stolen = {"code": body["results"][0]["prize_code"], "cart": {"total": "20"}, "member_id": loser}
    assert api.post("/v1/coupons/validate", key="read", json=stolen).json()["applies"] is False
    # Points are spent, win or lose (refund_losers is false).
    assert sum(api.balance(m)["available"] for m in ("ann", "bob", "cy")) == 3000 - 600

    with api.db.read() as conn:
        (announced,) = conn.execute(sa.select(outbox.c.data).where(outbox.c.type == "raffle.drawn")).scalars()
    assert announced["seed"] == body["seed"]
    assert [w["member_id"] for w in announced["winners"]] == [w["member_id"] for w in body["results"]]
    verification = api.get("/v1/raffles/spring/verification", key="read").json()
    assert verification["verified"] is True
    assert verification["tickets"] == ["1:0", "2:0", "2:1", "2:2", "3:0", "3:1"]
    check_invariants(api.db)


def test_non_winners_are_refunded_with_the_expiry_their_points_had(api):
    make_raffle(api, refund_losers=True, winners=1)
    members(api, "ann", "bob")
    lots_before = {
        m: [(lot.remaining, lot.expires_at) for lot in member_lots(api.db, api.program_id, m)] for m in ("ann", "bob")
    }
    enter(api, "ann", 2)
    enter(api, "bob", 2)
    api.clock.now = DRAWS_AT
    results = api.post("/v1/raffles/spring/draw").json()["results"]
    winner = results[0]["member_id"]
    loser = "bob" if winner == "ann" else "ann"
    assert api.balance(winner)["available"] == 800
    assert api.balance(loser)["available"] == 1000
    refunded = [lot for lot in member_lots(api.db, api.program_id, loser) if lot.remaining > 0]
    assert {lot.expires_at for lot in refunded} == {expires for _, expires in lots_before[loser]}
    check_invariants(api.db)


def test_an_entry_after_the_draw_is_refused_and_changes_nothing(api):
    make_raffle(api)
    members(api, "ann")
    enter(api, "ann")
    api.clock.now = DRAWS_AT
    api.post("/v1/raffles/spring/draw")
    before = api.snapshot()
    assert_problem(enter(api, "ann"), 409)
    assert_problem(api.post("/v1/raffles/spring/draw"), 409)  # drawn once only
    assert api.snapshot() == before


def test_entries_close_at_the_draw_time_even_before_the_draw(api):
    make_raffle(api)
    members(api, "ann")
    api.clock.now = DRAWS_AT
    before = api.snapshot()
    assert_problem(enter(api, "ann"), 409)
    assert api.snapshot() == before


@pytest.mark.parametrize(
    ("member_id", "entries", "status", "field"),
    [
        ("ann", 6, 409, "entries"),  # above the maximum per member
        ("poor", 1, 409, "entries"),  # not enough points
        ("nobody", 1, 404, "member_id"),
        ("ann", 0, 422, "entries"),
    ],
)
def test_entry_misuse(api, member_id, entries, status, field):
    make_raffle(api)
    members(api, "ann")
    members(api, "poor", points=50)
    before = api.snapshot()
    assert_problem(enter(api, member_id, entries), status, field)
    assert api.snapshot() == before


def test_the_maximum_counts_earlier_entries(api):
    make_raffle(api)
    members(api, "ann")
    assert enter(api, "ann", 4).status_code == 201
    before = api.snapshot()
    assert_problem(enter(api, "ann", 2), 409, "entries")
    assert api.snapshot() == before


def test_entry_is_idempotent_with_a_key(api):
    make_raffle(api)
    members(api, "ann")
    first = enter(api, "ann", 2, headers={"Idempotency-Key": "e-1"})
    again = enter(api, "ann", 2, headers={"Idempotency-Key": "e-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert api.balance("ann")["available"] == 800


@pytest.mark.parametrize(
    ("changes", "status", "field"),
    [
        ({"prize_reward_id": "nothing"}, 422, "prize_reward_id"),
        ({"draws_at": (T0 - timedelta(days=1)).isoformat()}, 422, "draws_at"),
        ({"draws_at": "2026-02-01T00:00:00"}, 422, "draws_at"),
        ({"winners": 0}, 422, "winners"),
        ({"entry_cost": "100"}, 422, "entry_cost"),
        ({"seed": "mine"}, 422, "seed"),
    ],
)
def test_creation_misuse(api, changes, status, field):
    before = api.snapshot()
    body = {
        "name": "x",
        "prize_reward_id": "coupon-5",
        "winners": 1,
        "entry_cost": 100,
        "max_entries_per_member": 5,
        "draws_at": DRAWS_AT.isoformat(),
        **changes,
    }
    assert_problem(api.post("/v1/raffles", json=body), status, field)
    assert api.snapshot() == before


def test_a_gift_prize_takes_stock(api):
    make_raffle(api, prize_reward_id="tote-bag")
    members(api, "ann")
    enter(api, "ann")
    api.clock.now = DRAWS_AT
    api.post("/v1/raffles/spring/draw")
    tote = next(r for r in api.get("/v1/rewards", key="read").json()["rewards"] if r["id"] == "tote-bag")
    assert tote["remaining"] == 49


def test_unknown_raffle_and_other_tenant(api):
    make_raffle(api)
    assert_problem(api.get("/v1/raffles/nope", key="read"), 404, "raffle")
    assert_problem(api.get("/v1/raffles/spring", key="other"), 404, "raffle")


def test_the_maximum_per_member_holds_under_concurrent_entries(pg_db):
    from concurrent.futures import ThreadPoolExecutor

    from patron.services import adjustments, raffles
    from patron.services.errors import Conflict
    from patron.services.raffles import RaffleSpec
    from tests.helpers import set_up

    setup = set_up(pg_db, now=T0)
    adjustments.adjust(pg_db, setup.cache, setup.program_id, "m1", 10_000, "funds", actor="t", now=T0)
    spec = RaffleSpec(
        name="race", prize_reward_id="coupon-5", winners=1, entry_cost=100, max_entries_per_member=5, draws_at=DRAWS_AT
    )
    raffles.create(pg_db, setup.cache, setup.program_id, spec, actor="t", now=T0)

    def attempt(_):
        try:
            raffles.enter(pg_db, setup.program_id, "race", "m1", 1, now=T0)
        except Conflict:
            return False
        return True

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    assert outcomes.count(True) == 5
    with pg_db.read() as conn:
        assert raffles.view(conn, setup.program_id, "race").tickets_sold == 5
    check_invariants(pg_db)


def test_entries_racing_the_draw_are_either_in_it_or_refused(pg_db):
    from concurrent.futures import ThreadPoolExecutor

    from patron.services import adjustments, raffles
    from patron.services.errors import Conflict
    from patron.services.raffles import RaffleSpec
    from tests.helpers import set_up

    buyers = tuple(f"b{i}" for i in range(12))
    setup = set_up(pg_db, now=T0, member_ids=buyers)
    for member_id in buyers:
        adjustments.adjust(pg_db, setup.cache, setup.program_id, member_id, 1_000, "funds", actor="t", now=T0)
    spec = RaffleSpec(
        name="race", prize_reward_id="coupon-5", winners=3, entry_cost=100, max_entries_per_member=5, draws_at=DRAWS_AT
    )
    raffles.create(pg_db, setup.cache, setup.program_id, spec, actor="t", now=T0)
    just_before = DRAWS_AT - timedelta(microseconds=1)

    def work(i):
        if i == 6:
            return raffles.draw(pg_db, setup.cache, setup.program_id, "race", now=DRAWS_AT)
        try:
            return raffles.enter(pg_db, setup.program_id, "race", buyers[i % len(buyers)], 1, now=just_before)
        except Conflict:
            return None

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(work, range(24)))
    with pg_db.read() as conn:
        audit = raffles.audit(conn, setup.program_id, "race")
        view = raffles.view(conn, setup.program_id, "race")
    assert audit.verified
    assert len(audit.tickets) == view.tickets_sold
    check_invariants(pg_db)


def test_one_idempotency_key_sent_at_once_buys_the_entries_once(api):
    """A kiosk that retries before the first reply arrives: one purchase of entries, and every reply is the first."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    make_raffle(api)
    members(api, "ann")
    senders = 4
    start_together = threading.Barrier(senders)

    def send(_):
        start_together.wait()
        return enter(api, "ann", 2, headers={"Idempotency-Key": "kiosk-7-entry-1"})

    with ThreadPoolExecutor(senders) as pool:
        replies = list(pool.map(send, range(senders)))
    assert sorted(r.status_code for r in replies) == [200] * (senders - 1) + [201], [r.text for r in replies]
    assert len({r.text for r in replies}) == 1
    assert api.get("/v1/raffles/spring", key="read").json()["tickets_sold"] == 2
    assert api.balance("ann")["available"] == 1000 - 200
    check_invariants(api.db)
