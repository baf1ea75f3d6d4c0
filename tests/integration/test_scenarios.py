"""LEDGER.md scenarios 2-7, one clearly named test (or a few) each.

Every scenario runs on PostgreSQL and on SQLite. The races use real threads, each on its own pooled connection,
released together by a barrier so that the transactions really overlap: on PostgreSQL they contend for row locks
and unique keys, on SQLite for the database write lock (BEGIN IMMEDIATE).
Scenario 1 is tests/integration/test_ledger_properties.py; 3 is also tested through HTTP in tests/api/test_events.py.
"""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from patron.domain.events import Purchase, Refund, Signup
from patron.domain.ledger import LotStatus
from patron.services import adjustments, events, maintenance, redemptions
from patron.services.errors import (
    Conflict,
    IdempotencyConflict,
    InsufficientPointsError,
    Invalid,
    OutOfStock,
)
from patron.services.views import Balance, EventReceipt
from patron.store.database import Database
from patron.store.tables import balances, journal, lots, members, orders, postings, reward_stock
from tests.conftest import T0
from tests.helpers import Setup, check_invariants, ledger_dump, member_lots, program_accounts, program_document, set_up

T = TypeVar("T")
DAY = timedelta(days=1)
EXPIRY_DAYS = 30
COUPON_COST = 70
GIFT_COST = 100
GIFT_STOCK = 5


def document(**overrides: Any):
    """The demo program's earning rules (1 point a dollar, 50 more from 100 dollars, 14 days pending), with lots
    that expire 30 days after they are earned and rewards sized for these scenarios."""
    return program_document(
        expiry={"policy": "after", "days": EXPIRY_DAYS},
        rewards=[
            {"id": "coupon", "name": "Coupon", "cost": COUPON_COST, "kind": "coupon", "value": "1.00"},
            {"id": "coupon-60", "name": "Coupon 60", "cost": 60, "kind": "coupon", "value": "1.00"},
            {"id": "coupon-150", "name": "Coupon 150", "cost": 150, "kind": "coupon", "value": "2.00"},
            {
                "id": "gift",
                "name": "Gift",
                "cost": GIFT_COST,
                "kind": "gift",
                "stock": GIFT_STOCK,
                "per_member_limit": 1,
            },
        ],
        **overrides,
    )


def race(n: int, work: Callable[[int], T]) -> list[T | Exception]:
    """Runs work(0), ..., work(n - 1) on n threads released together. A thread's failure is its outcome: the test
    says which failures are allowed (a refusal a client can act on), and any other one fails it."""
    barrier = threading.Barrier(n, timeout=30)

    def one(i: int) -> T | Exception:
        barrier.wait()
        try:
            return work(i)
        except Exception as exc:  # a failure is an outcome, judged by the caller
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def split(outcomes: list[T | Exception], *allowed: type[Exception]) -> tuple[list[T], list[Exception]]:
    """Successes and refusals; anything else (a deadlock, a lock changed under us, a 500) fails the test."""
    refused = [o for o in outcomes if isinstance(o, Exception)]
    unexpected = [o for o in refused if not isinstance(o, allowed)]
    assert unexpected == [], f"unexpected failures: {unexpected!r}"
    return [o for o in outcomes if not isinstance(o, Exception)], refused


def fund(s: Setup, member_id: str, points: int, *, at=T0) -> None:
    adjustments.adjust(s.db, s.cache, s.program_id, member_id, points, "scenario funds", actor="test", now=at)


def balance_of(db: Database, s: Setup, member_id: str) -> Balance:
    with db.read() as conn:
        row = conn.execute(
            sa.select(balances.c.available, balances.c.pending, balances.c.debt)
            .join(members, members.c.id == balances.c.member_id)
            .where(members.c.program_id == s.program_id, members.c.external_id == member_id)
        ).one()
    return Balance(available=row.available, pending=row.pending, owed=-row.debt)


def transactions(db: Database, kind: str) -> int:
    with db.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(journal.c.kind == kind)).scalar_one())


def moved_per_member(db: Database, kind: str, account: str) -> dict[str, int]:
    """What transactions of this kind moved on each member's account, by member external id."""
    with db.read() as conn:
        rows = conn.execute(
            sa.select(members.c.external_id, sa.func.sum(postings.c.amount))
            .join(journal, journal.c.id == postings.c.transaction_id)
            .join(members, members.c.id == postings.c.member_id)
            .where(journal.c.kind == kind, postings.c.account == account)
            .group_by(members.c.external_id)
        ).all()
    return {member: int(total) for member, total in rows}


def gifts_given(db: Database, s: Setup) -> int:
    with db.read() as conn:
        return int(
            conn.execute(
                sa.select(reward_stock.c.given).where(
                    reward_stock.c.program_id == s.program_id, reward_stock.c.reward_id == "gift"
                )
            ).scalar_one()
        )


def assert_conserved(db: Database, s: Setup) -> None:
    """Invariants 1 and 3-5, and the sum of every account of the program (members' and its own) is zero."""
    check_invariants(db)
    with db.read() as conn:
        total = conn.execute(sa.select(sa.func.sum(postings.c.amount)).where(postings.c.program_id == s.program_id))
        assert int(total.scalar_one() or 0) == 0


def purchase(event_id: str = "p1", member_id: str = "m1", order_id: str = "o1", total: str = "150.00") -> Purchase:
    return Purchase(event_id=event_id, member_id=member_id, occurred_at=T0, order_id=order_id, total=Decimal(total))


def refund(event_id: str, amount: str, member_id: str = "m1", order_id: str = "o1") -> Refund:
    return Refund(event_id=event_id, member_id=member_id, occurred_at=T0, order_id=order_id, amount=Decimal(amount))


def ingest(s: Setup, event: Any, *, now=T0) -> EventReceipt:
    return events.ingest(s.db, s.cache, s.program_id, event, now=now)


# Scenario 2: the redemption race.


def test_fifty_concurrent_redemptions_overdraw_nothing(db):
    s = set_up(db, document(), now=T0)
    # Three lots, the first to expire first: the winners must take from them in that order.
    for days_ago, points in ((20, 170), (10, 330), (5, 500)):
        fund(s, "m1", points, at=T0 - days_ago * DAY)
    budget = 1000

    outcomes = race(50, lambda _: redemptions.redeem(db, s.cache, s.program_id, "m1", "coupon", now=T0))

    won, refused = split(outcomes, InsufficientPointsError)
    assert len(won) == budget // COUPON_COST == 14
    assert len(refused) == 50 - 14
    assert balance_of(db, s, "m1").available == budget - 14 * COUPON_COST == 20
    assert [lot.remaining for lot in member_lots(db, s.program_id, "m1")] == [0, 0, 20]
    assert transactions(db, "redeem") == 14
    assert program_accounts(db, s.program_id)["redeemed"] == 14 * COUPON_COST
    assert len({r.coupon_code for r, _ in won}) == 14
    assert_conserved(db, s)


def test_more_concurrent_gift_redeemers_than_stock_get_exactly_the_stock(db):
    people = tuple(f"m{i}" for i in range(20))
    s = set_up(db, document(), member_ids=people, now=T0)
    for member_id in people:
        fund(s, member_id, GIFT_COST)

    outcomes = race(20, lambda i: redemptions.redeem(db, s.cache, s.program_id, people[i], "gift", now=T0))

    won, refused = split(outcomes, OutOfStock)
    assert (len(won), len(refused)) == (GIFT_STOCK, 20 - GIFT_STOCK)
    assert gifts_given(db, s) == GIFT_STOCK
    winners = {r.member_id for r, _ in won}
    for member_id in people:
        # A member refused for want of stock keeps every point: the refusal rolled the whole transaction back.
        assert balance_of(db, s, member_id).available == (0 if member_id in winners else GIFT_COST)
    assert_conserved(db, s)


def test_a_per_member_limit_holds_against_concurrent_redemptions_by_one_member(db):
    s = set_up(db, document(), now=T0)
    fund(s, "m1", 10 * GIFT_COST)

    outcomes = race(10, lambda _: redemptions.redeem(db, s.cache, s.program_id, "m1", "gift", now=T0))

    won, _ = split(outcomes, Conflict)
    assert len(won) == 1
    assert gifts_given(db, s) == 1
    assert balance_of(db, s, "m1").available == 9 * GIFT_COST
    assert_conserved(db, s)


def test_concurrent_retries_of_one_redemption_redeem_once_and_replay(db):
    s = set_up(db, document(), now=T0)
    fund(s, "m1", COUPON_COST)  # enough for one: a retry must replay, not be refused for the points it spent

    outcomes = race(
        10, lambda _: redemptions.redeem(db, s.cache, s.program_id, "m1", "coupon", now=T0, idempotency_key="k1")
    )

    done, _ = split(outcomes)
    assert sorted(replay for _, replay in done) == [False] + [True] * 9
    assert len({r.model_dump_json() for r, _ in done}) == 1
    assert transactions(db, "redeem") == 1
    assert balance_of(db, s, "m1").available == 0
    assert_conserved(db, s)


def test_one_idempotency_key_racing_for_two_members_redeems_for_one(db):
    people = tuple(f"m{i}" for i in range(10))
    s = set_up(db, document(), member_ids=people, now=T0)
    for member_id in people:
        fund(s, member_id, COUPON_COST)

    outcomes = race(
        10,
        lambda i: redemptions.redeem(db, s.cache, s.program_id, people[i], "coupon", now=T0, idempotency_key="k1"),
    )

    done, refused = split(outcomes, IdempotencyConflict)
    assert (len(done), len(refused)) == (1, 9)
    assert transactions(db, "redeem") == 1
    assert_conserved(db, s)


def test_concurrent_retries_of_one_adjustment_adjust_once(db):
    s = set_up(db, document(), now=T0)

    outcomes = race(
        10,
        lambda _: adjustments.adjust(
            db, s.cache, s.program_id, "m1", 250, "goodwill", actor="test", now=T0, idempotency_key="a1"
        ),
    )

    done, _ = split(outcomes)
    assert sorted(replay for _, replay in done) == [False] + [True] * 9
    assert transactions(db, "adjust") == 1
    assert balance_of(db, s, "m1").available == 250
    assert_conserved(db, s)


# Scenario 3: duplicate delivery.


def test_the_same_event_delivered_twenty_times_at_once_posts_once(db):
    s = set_up(db, document(), now=T0)
    event = purchase()

    outcomes = race(20, lambda _: events.ingest_reporting_replay(db, s.cache, s.program_id, event, now=T0))

    delivered, _ = split(outcomes)
    assert sorted(replay for _, replay in delivered) == [False] + [True] * 19
    assert len({receipt.model_dump_json() for receipt, _ in delivered}) == 1
    assert transactions(db, "purchase") == 1
    assert balance_of(db, s, "m1") == Balance(available=0, pending=200, owed=0)
    assert_conserved(db, s)


def test_overlapping_batches_delivered_at_once_post_each_event_once(db):
    people = tuple(f"m{i}" for i in range(6))
    s = set_up(db, document(), member_ids=people, now=T0)
    batch: list[Any] = [Signup(event_id=f"s{i}", member_id=m, occurred_at=T0) for i, m in enumerate(people)]
    batch += [purchase(event_id=f"p{i}", member_id=m, order_id=f"o{i}") for i, m in enumerate(people)]
    # The same events in two orders: the batches must still lock their members in one order, or deadlock.
    orders_of_delivery = [batch, batch[::-1]]

    outcomes = race(
        8,
        lambda i: events.ingest_batch_reporting_replays(db, s.cache, s.program_id, orders_of_delivery[i % 2], now=T0),
    )

    deliveries, _ = split(outcomes)
    by_event: dict[str, list[tuple[EventReceipt, bool]]] = {}
    for delivered in deliveries:
        for result in delivered:
            assert not isinstance(result, Exception), result
            by_event.setdefault(result[0].event_id, []).append(result)
    assert len(by_event) == len(batch)
    for event_id, results in by_event.items():
        assert sorted(replay for _, replay in results) == [False] + [True] * 7, event_id
        assert len({receipt.model_dump_json() for receipt, _ in results}) == 1, event_id
    assert (transactions(db, "signup"), transactions(db, "purchase")) == (6, 6)
    for member_id in people:
        assert balance_of(db, s, member_id) == Balance(available=100, pending=200, owed=0)
    assert_conserved(db, s)


def test_a_redelivered_event_replays_the_first_receipt_and_writes_nothing(db):
    s = set_up(db, document(), now=T0)
    first = ingest(s, purchase())
    before = ledger_dump(db)
    again, replay = events.ingest_reporting_replay(db, s.cache, s.program_id, purchase(), now=T0 + DAY)
    assert replay
    assert again == first
    assert ledger_dump(db) == before


# Scenario 4: the same id with a different body.


def test_the_same_event_id_with_another_body_is_409_and_posts_nothing(db):
    s = set_up(db, document(), now=T0)
    ingest(s, purchase())
    before = ledger_dump(db)
    for changed in (
        purchase(total="1500.00"),
        purchase(order_id="o2"),
        Signup(event_id="p1", member_id="m1", occurred_at=T0),
        refund("p1", "10.00"),
    ):
        with pytest.raises(IdempotencyConflict) as refused:
            ingest(s, changed)
        assert refused.value.status == 409
        assert refused.value.field == "event_id"
    assert ledger_dump(db) == before


def test_two_bodies_racing_for_one_event_id_post_one_and_refuse_the_other(db):
    s = set_up(db, document(), member_ids=("m1", "m2"), now=T0)
    bodies = [purchase(total="150.00"), purchase(member_id="m2", order_id="o2", total="20.00")]

    outcomes = race(20, lambda i: ingest(s, bodies[i % 2]))

    receipts, refused = split(outcomes, IdempotencyConflict)
    assert len(receipts) == 10
    assert len(refused) == 10
    assert len({r.model_dump_json() for r in receipts}) == 1
    assert transactions(db, "purchase") == 1
    assert_conserved(db, s)


def test_two_members_reporting_one_order_at_once_earn_for_it_once(db):
    s = set_up(db, document(), member_ids=("m1", "m2"), now=T0)

    # Different event ids and members: no lock is shared, so the order's own unique key decides the race.
    outcomes = race(2, lambda i: ingest(s, purchase(event_id=f"p{i}", member_id=f"m{i + 1}")))

    receipts, refused = split(outcomes, Invalid)
    assert (len(receipts), len(refused)) == (1, 1)
    assert refused[0].field == "order_id"
    assert transactions(db, "purchase") == 1
    assert_conserved(db, s)


# Scenario 5: expiry.


def test_expiry_run_twice_expires_once_and_never_what_was_redeemed(db):
    s = set_up(db, document(), now=T0)
    for day, points in ((0, 100), (10, 200), (20, 300)):
        fund(s, "m1", points, at=T0 + day * DAY)
    # First to expire first: 100 from the first lot (expiring on day 30), 50 from the second (day 40).
    redemptions.redeem(db, s.cache, s.program_id, "m1", "coupon-150", now=T0 + 25 * DAY)

    first = maintenance.expire(db, now=T0 + 45 * DAY)
    assert (first.lots, first.points) == (1, 150)  # the first lot was spent in full: nothing of it expires
    assert program_accounts(db, s.program_id)["expired"] == 150
    after_first = ledger_dump(db)
    again = maintenance.expire(db, now=T0 + 45 * DAY)
    assert (again.lots, again.points) == (0, 0)
    assert ledger_dump(db) == after_first

    later = maintenance.expire(db, now=T0 + 60 * DAY)
    assert later.points == 300
    assert program_accounts(db, s.program_id)["expired"] == 450 == 600 - 150
    assert balance_of(db, s, "m1").available == 0
    # The first lot was spent, not expired; the other two expired with what was left of them.
    assert [(lot.status, lot.remaining) for lot in member_lots(db, s.program_id, "m1")] == [
        (LotStatus.AVAILABLE.value, 0),
        (LotStatus.EXPIRED.value, 0),
        (LotStatus.EXPIRED.value, 0),
    ]
    assert_conserved(db, s)


def test_expiry_running_beside_redemptions_never_expires_a_redeemed_point(db):
    people = tuple(f"m{i}" for i in range(30))
    s = set_up(db, document(), member_ids=people, now=T0)
    for member_id in people:
        fund(s, member_id, 100)  # one lot each, expiring on day 30
    expired_before = program_accounts(db, s.program_id).get("expired", 0)

    def work(i: int) -> object:
        if i < len(people):
            return redemptions.redeem(db, s.cache, s.program_id, people[i], "coupon-60", now=T0 + 29 * DAY)
        # Two expiry jobs at once, in small chunks so that many of their transactions interleave with the redemptions.
        return maintenance.expire(db, now=T0 + 31 * DAY, chunk=3)

    outcomes = race(len(people) + 2, work)

    done, refused = split(outcomes, InsufficientPointsError)
    reports = [o for o in done if isinstance(o, maintenance.RunReport)]
    assert len(reports) == 2
    redeemed = {r.member_id for r, _ in (o for o in done if not isinstance(o, maintenance.RunReport))}
    assert len(redeemed) + len(refused) == len(people)
    expired = moved_per_member(db, "expire", "available")
    for member_id in people:
        # Either the redemption came first and only the 40 points left expired, or the lot expired whole and the
        # redemption found nothing to spend. Never both in full.
        assert -expired[member_id] == (40 if member_id in redeemed else 100), member_id
    expired_total = -sum(expired.values())
    assert expired_total == sum(r.points for r in reports)
    assert program_accounts(db, s.program_id)["expired"] - expired_before == expired_total
    assert expired_total == 100 * len(people) - 60 * len(redeemed)
    assert_conserved(db, s)

    after = ledger_dump(db)
    assert maintenance.expire(db, now=T0 + 31 * DAY).points == 0
    assert ledger_dump(db) == after


def test_points_past_their_expiry_cannot_be_spent_before_the_expiry_job_runs(db):
    s = set_up(db, document(), now=T0)
    fund(s, "m1", 100, at=T0)  # expires on day 30
    fund(s, "m1", 50, at=T0 + 10 * DAY)  # expires on day 40

    # Day 31: the job has not run, yet the first lot is gone; only the second one's 50 points can be spent.
    with pytest.raises(InsufficientPointsError):
        redemptions.redeem(db, s.cache, s.program_id, "m1", "coupon", now=T0 + 31 * DAY)
    assert program_accounts(db, s.program_id).get("expired", 0) == 0  # the refusal changed nothing
    with pytest.raises(InsufficientPointsError):
        adjustments.adjust(db, s.cache, s.program_id, "m1", -60, "test", actor="test", now=T0 + 31 * DAY)

    # A spend the live points cover expires the due lot on the way, so the expiry job finds nothing left.
    adjustments.adjust(db, s.cache, s.program_id, "m1", -30, "test", actor="test", now=T0 + 31 * DAY)
    assert program_accounts(db, s.program_id)["expired"] == 100
    assert balance_of(db, s, "m1").available == 20
    assert maintenance.expire(db, now=T0 + 31 * DAY).points == 0
    assert_conserved(db, s)


# Scenario 6: pending points.


def test_activation_run_twice_activates_once(db):
    s = set_up(db, document(), now=T0)
    ingest(s, purchase())
    assert balance_of(db, s, "m1") == Balance(available=0, pending=200, owed=0)

    assert maintenance.activate(db, now=T0 + 14 * DAY).points == 200
    after_first = ledger_dump(db)
    assert maintenance.activate(db, now=T0 + 14 * DAY).points == 0
    assert maintenance.activate(db, now=T0 + 30 * DAY).points == 0
    assert ledger_dump(db) == after_first
    assert balance_of(db, s, "m1") == Balance(available=200, pending=0, owed=0)
    assert transactions(db, "activate") == 1
    assert_conserved(db, s)


def test_concurrent_activation_runs_activate_once(db):
    people = tuple(f"m{i}" for i in range(12))
    s = set_up(db, document(), member_ids=people, now=T0)
    for i, member_id in enumerate(people):
        ingest(s, purchase(event_id=f"p{i}", member_id=member_id, order_id=f"o{i}"))

    outcomes = race(4, lambda _: maintenance.activate(db, now=T0 + 14 * DAY, chunk=2))

    reports, _ = split(outcomes)
    assert sum(r.points for r in reports) == 200 * len(people)
    assert moved_per_member(db, "activate", "available") == dict.fromkeys(people, 200)
    assert moved_per_member(db, "activate", "pending") == dict.fromkeys(people, -200)
    for member_id in people:
        assert balance_of(db, s, member_id) == Balance(available=200, pending=0, owed=0)
    assert_conserved(db, s)


def test_a_refund_before_activation_cancels_pending_and_leaves_available_alone(db):
    s = set_up(db, document(), now=T0)
    ingest(s, Signup(event_id="s1", member_id="m1", occurred_at=T0))
    ingest(s, purchase())
    ingest(s, purchase(event_id="p2", order_id="o2", total="30.00"))
    assert balance_of(db, s, "m1") == Balance(available=100, pending=230, owed=0)

    whole = ingest(s, refund("r1", "150.00"), now=T0 + DAY)
    assert whole.points == -200
    assert balance_of(db, s, "m1") == Balance(available=100, pending=30, owed=0)
    part = ingest(s, refund("r2", "15.00", order_id="o2"), now=T0 + DAY)
    assert part.points == -15
    assert balance_of(db, s, "m1") == Balance(available=100, pending=15, owed=0)

    activated = maintenance.activate(db, now=T0 + 14 * DAY)
    assert (activated.lots, activated.points) == (1, 15)  # the fully refunded order's lot has nothing to activate
    assert balance_of(db, s, "m1") == Balance(available=115, pending=0, owed=0)
    assert_conserved(db, s)


# Scenario 7: partial refunds.


def order_row(db: Database, s: Setup, order_id: str = "o1") -> Any:
    with db.read() as conn:
        return conn.execute(
            sa.select(orders).where(orders.c.program_id == s.program_id, orders.c.order_id == order_id)
        ).one()


def test_partial_refunds_claw_back_exactly_what_the_order_earned(db):
    s = set_up(db, document(), now=T0)
    ingest(s, purchase())  # 200 points for 150.00
    clawed = [-ingest(s, refund(f"r{i}", amount)).points for i, amount in enumerate(("50.00", "50.00", "49.99"))]
    assert clawed == [66, 67, 66]
    assert -ingest(s, refund("r3", "0.01")).points == 1  # the last cent claws back the rounding left over
    with pytest.raises(Invalid):  # nothing is left to refund
        ingest(s, refund("r4", "0.01"))
    row = order_row(db, s)
    assert (row.refunded, row.clawed_back, row.earned) == (Decimal("150.00"), 200, 200)
    assert balance_of(db, s, "m1") == Balance(available=0, pending=0, owed=0)
    assert_conserved(db, s)


def test_partial_refunds_of_spent_points_become_debt_never_more_than_earned(db):
    s = set_up(db, document(), now=T0)
    ingest(s, purchase())
    maintenance.activate(db, now=T0 + 14 * DAY)
    redemptions.redeem(db, s.cache, s.program_id, "m1", "coupon-150", now=T0 + 15 * DAY)  # 50 points are left
    ingest(s, refund("r1", "75.00"), now=T0 + 16 * DAY)  # claws back 100: 50 from the order's lot, 50 owed
    ingest(s, refund("r2", "75.00"), now=T0 + 16 * DAY)  # the other 100: all owed
    assert balance_of(db, s, "m1") == Balance(available=0, pending=0, owed=150)
    assert order_row(db, s).clawed_back == 200
    assert_conserved(db, s)


def test_two_partial_refunds_at_once_claw_back_no_more_than_earned(db):
    s = set_up(db, document(), now=T0)
    fund(s, "m1", 40)
    ingest(s, purchase())  # 200 pending points for 150.00

    # Unequal parts: each refund's clawback depends on what the other already took (66 + 134 or 133 + 67), so two
    # refunds that both read the order before either wrote would claw back 66 + 133 and leave a point behind.
    outcomes = race(2, lambda i: ingest(s, refund(f"r{i}", ("50.00", "100.00")[i]), now=T0 + DAY))

    receipts, _ = split(outcomes)
    assert sorted(-r.points for r in receipts) in ([66, 134], [67, 133])
    assert order_row(db, s).clawed_back == 200
    assert balance_of(db, s, "m1") == Balance(available=40, pending=0, owed=0)
    assert_conserved(db, s)


def test_concurrent_refunds_beyond_the_order_total_are_refused(db):
    s = set_up(db, document(), now=T0)
    ingest(s, purchase())
    maintenance.activate(db, now=T0 + 14 * DAY)
    redemptions.redeem(db, s.cache, s.program_id, "m1", "coupon-150", now=T0 + 15 * DAY)

    # Four refunds of 50.00 against an order of 150.00, each on its own connection: three fit, the fourth does not.
    outcomes = race(4, lambda i: ingest(s, refund(f"r{i}", "50.00"), now=T0 + 16 * DAY))

    receipts, refused = split(outcomes, Invalid)
    assert (len(receipts), len(refused)) == (3, 1)
    assert sum(-r.points for r in receipts) == 200
    row = order_row(db, s)
    assert (row.refunded, row.clawed_back) == (Decimal("150.00"), 200)
    assert balance_of(db, s, "m1") == Balance(available=0, pending=0, owed=150)
    with db.read() as conn:
        assert conn.execute(sa.select(sa.func.sum(lots.c.remaining))).scalar_one() == 0
    assert_conserved(db, s)
