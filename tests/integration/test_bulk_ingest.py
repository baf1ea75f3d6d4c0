"""Batch ingestion must be indistinguishable from sending the same events one at a time."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patron.domain.events import Custom, Purchase, Refund, Signup
from patron.domain.members import MemberProfile
from patron.domain.progress import EMPTY as EMPTY_PROGRESS
from patron.services import bulk_ingest, events, programs
from patron.services import members as member_service
from patron.services.errors import IdempotencyConflict, Invalid, NotFound, ServiceError
from patron.services.program_cache import ProgramCache
from patron.store import progress as progress_store
from patron.store.tables import journal, lots, members, orders, postings, rule_usage
from tests.conftest import T0
from tests.helpers import DEMO_PROGRAM, LONG_AGO, behind_a_held_transaction, check_invariants, program_document, set_up

MEMBERS = ("m1", "m2", "m3")


def _event(kind: str, n: int, member: str, amount: int, order: int):
    at = T0 + timedelta(hours=n)
    if kind == "purchase":
        return Purchase(
            event_id=f"e{n}", member_id=member, occurred_at=at, order_id=f"o{order}", total=Decimal(amount) / 4
        )
    if kind == "refund":
        return Refund(
            event_id=f"e{n}", member_id=member, occurred_at=at, order_id=f"o{order}", amount=Decimal(max(amount, 1)) / 8
        )
    if kind == "signup":
        return Signup(event_id=f"e{n}", member_id=member, occurred_at=at)
    return Custom(event_id=f"e{n}", member_id=member, occurred_at=at, name=kind)


events_strategy = st.lists(
    st.tuples(
        st.sampled_from(["purchase", "purchase", "refund", "signup", "review", "social_share"]),
        st.sampled_from((*MEMBERS, "stranger")),
        st.integers(min_value=0, max_value=2000),
        st.integers(min_value=0, max_value=5),
    ),
    min_size=1,
    max_size=25,
)


def _ledger(db, program_id):
    """What members and an auditor can see of one program, without the ids the two paths number differently."""
    who = sa.select(members.c.id, members.c.external_id).where(members.c.program_id == program_id).subquery()
    with db.read() as conn:
        moved = conn.execute(
            sa.select(who.c.external_id, postings.c.account, sa.func.sum(postings.c.amount))
            .select_from(postings.outerjoin(who, who.c.id == postings.c.member_id))
            .where(postings.c.program_id == program_id)
            .group_by(who.c.external_id, postings.c.account)
            .order_by(who.c.external_id, postings.c.account)
        ).all()
        lot_rows = conn.execute(
            sa.select(
                who.c.external_id, lots.c.order_id, lots.c.points, lots.c.remaining, lots.c.status, lots.c.expires_at
            )
            .join(who, who.c.id == lots.c.member_id)
            .order_by(who.c.external_id, lots.c.earned_at, lots.c.status, lots.c.points)
        ).all()
        order_rows = conn.execute(
            sa.select(
                orders.c.order_id,
                who.c.external_id,
                orders.c.total,
                orders.c.earned,
                orders.c.refunded,
                orders.c.clawed_back,
            )
            .join(who, who.c.id == orders.c.member_id)
            .order_by(orders.c.order_id)
        ).all()
        usage = conn.execute(
            sa.select(
                who.c.external_id,
                rule_usage.c.rule_id,
                rule_usage.c.period_key,
                rule_usage.c.times,
                rule_usage.c.points,
            )
            .join(who, who.c.id == rule_usage.c.member_id)
            .order_by(who.c.external_id, rule_usage.c.rule_id, rule_usage.c.period_key)
        ).all()
        memos = conn.execute(
            sa.select(journal.c.kind, journal.c.memo, journal.c.reference)
            .where(journal.c.program_id == program_id)
            .order_by(journal.c.id)
        ).all()
    return moved, lot_rows, order_rows, usage, memos


def _comparable(outcome):
    if isinstance(outcome, ServiceError):
        return (type(outcome).__name__, outcome.field)
    receipt, replayed = outcome
    return receipt.model_dump(exclude={"transaction_id"}), replayed


def _program(db, slug):
    program_id = programs.create_program(db, slug, now=T0)
    programs.publish(db, program_id, program_document(), actor="test", now=T0, effective_from=LONG_AGO)
    for member_id in MEMBERS:
        member_service.upsert(db, program_id, member_id, MemberProfile(), now=T0)
    return program_id


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=events_strategy)
def test_a_batch_equals_the_same_events_one_by_one(db, spec):
    batch = [_event(kind, n, member, amount, order) for n, (kind, member, amount, order) in enumerate(spec)]
    cache = ProgramCache()
    suffix = uuid.uuid4().hex[:8]
    singles, grouped = _program(db, f"single-{suffix}"), _program(db, f"batch-{suffix}")
    expected = []
    for event in batch:
        try:
            expected.append(events.ingest_reporting_replay(db, cache, singles, event, now=T0))
        except ServiceError as exc:
            expected.append(exc)
    got = db.run(lambda conn: bulk_ingest.ingest_many(conn, cache, grouped, batch, now=T0))

    assert [_comparable(o) for o in got] == [_comparable(o) for o in expected]
    assert _ledger(db, grouped) == _ledger(db, singles)
    check_invariants(db)


def test_duplicates_inside_and_across_batches(db):
    s = set_up(db, now=T0)
    purchase = Purchase(event_id="p1", member_id="m1", occurred_at=T0, order_id="o1", total="10")
    changed = Purchase(event_id="p1", member_id="m1", occurred_at=T0, order_id="o1", total="11")
    unknown = Signup(event_id="s9", member_id="nobody", occurred_at=T0)
    first = db.run(
        lambda conn: bulk_ingest.ingest_many(
            conn, s.cache, s.program_id, [purchase, purchase, changed, unknown], now=T0
        )
    )
    assert first[1] == (first[0][0], True)
    assert first[0][1] is False
    assert first[0][0].transaction_id is not None
    assert isinstance(first[2], IdempotencyConflict)
    assert isinstance(first[3], NotFound)
    again = db.run(lambda conn: bulk_ingest.ingest_many(conn, s.cache, s.program_id, [purchase], now=T0))
    assert again == [(first[0][0], True)]
    with db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(journal)).scalar_one() == 1
    check_invariants(db)


def test_a_rejected_event_leaves_its_neighbours_alone(db):
    s = set_up(db, now=T0)
    batch = [
        Purchase(event_id="p1", member_id="m1", occurred_at=T0, order_id="o1", total="40"),
        Refund(event_id="r1", member_id="m1", occurred_at=T0, order_id="o1", amount="50"),  # more than paid
        Refund(event_id="r2", member_id="m1", occurred_at=T0, order_id="o1", amount="10"),
    ]
    got = db.run(lambda conn: bulk_ingest.ingest_many(conn, s.cache, s.program_id, batch, now=T0))
    assert got[0][0].pending_points == 40
    assert isinstance(got[1], Invalid)
    assert got[1].field == "amount"
    assert got[2][0].points == -10
    assert got[2][0].balance.pending == 30
    check_invariants(db)


@pytest.mark.parametrize("size", [1, 300])
def test_batch_of_many_members_posts_each_once(db, size):
    members = tuple(f"m{i}" for i in range(size))
    s = set_up(db, member_ids=members, now=T0)
    batch = [
        Purchase(event_id=f"p{i}", member_id=m, occurred_at=T0, order_id=f"o{i}", total="5")
        for i, m in enumerate(members)
    ]
    got = db.run(lambda conn: bulk_ingest.ingest_many(conn, s.cache, s.program_id, batch, now=T0))
    assert all(r.pending_points == 5 for r, _ in got)
    assert len({r.transaction_id for r, _ in got}) == size
    check_invariants(db)


def test_a_batch_that_waited_for_a_members_lock_sees_what_the_holder_wrote(db):
    """The batch locks its members and only then reads their balances and progress: read in the locking statement,
    PostgreSQL would give them as they were before the wait (it re-reads only the locked rows), and the batch would
    show a stale balance and overwrite the progress the other transaction had just saved."""
    document = programs.read_document(DEMO_PROGRAM)  # with stamp cards and tiers: members have progress
    racing = set_up(db, document, member_ids=("m1",), now=T0, slug="racing")
    alone = set_up(db, document, member_ids=("m1",), now=T0, slug="alone")
    first = Purchase(event_id="p1", member_id="m1", order_id="o1", occurred_at=T0, total=Decimal("40.00"))
    second = Purchase(
        event_id="p2", member_id="m1", order_id="o2", occurred_at=T0 + timedelta(hours=1), total=Decimal("25.00")
    )
    outcomes = behind_a_held_transaction(
        db,
        lambda conn: events._apply(conn, racing.cache, racing.program_id, first, events.fingerprint(first), now=T0),
        lambda: events.ingest_batch_reporting_replays(db, racing.cache, racing.program_id, [second], now=T0),
    )

    for event in (first, second):  # the same two purchases, one after the other
        events.ingest(db, alone.cache, alone.program_id, event, now=T0)
    ((receipt, replayed),) = outcomes
    assert not replayed
    assert receipt.balance == _balance_of(db, racing.program_id, "m1") == _balance_of(db, alone.program_id, "m1")
    assert _progress_of(db, racing.program_id, "m1") == _progress_of(db, alone.program_id, "m1") != EMPTY_PROGRESS
    check_invariants(db)


def _balance_of(db, program_id: int, member: str):
    with db.read() as conn:
        return member_service.balance(conn, member_service.require(conn, program_id, member).id)


def _progress_of(db, program_id: int, member: str):
    with db.read() as conn:
        return progress_store.load_one(conn, member_service.require(conn, program_id, member).id)


@pytest.mark.parametrize(("size", "prepared"), [(3, False), (bulk_ingest.SMALL_BATCH, True)])
def test_a_small_batch_is_planned_for_its_own_keys_and_a_big_one_keeps_the_plan_cache(pg_db, size, prepared):
    """A statement run often enough is prepared, and may be given one generic plan: not the small batch's."""
    s = set_up(pg_db, member_ids=tuple(f"m{i}" for i in range(size)), now=T0)
    batch = [
        Purchase(event_id=f"e{i}", member_id=f"m{i}", occurred_at=T0, order_id=f"o{i}", total=Decimal(10))
        for i in range(size)
    ]
    probe = "SELECT 1 AS {} WHERE CAST(:n AS integer) >= 0"
    with pg_db.write() as conn:
        bulk_ingest.BatchState.load(conn, s.cache, s.program_id, batch)
        for n in range(8):  # past psycopg's threshold for preparing a statement
            conn.execute(sa.text(probe.format("during_the_batch")), {"n": n})
        assert _prepared(conn, "during_the_batch") == prepared
    with pg_db.read() as conn:  # the pooled connection prepares again once its transaction is over
        for n in range(8):
            conn.execute(sa.text(probe.format("after_the_batch")), {"n": n})
        assert _prepared(conn, "after_the_batch")


def _prepared(conn, text: str) -> bool:
    statements = conn.execute(sa.text("SELECT statement FROM pg_prepared_statements")).scalars()
    return any(text in s for s in statements)
