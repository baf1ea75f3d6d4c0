"""The outbox on SQLite and PostgreSQL: every ledger change writes its events in its own transaction, a change
that rolls back leaves none, and dispatch hands each committed message to consumers once, in order."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from patron.domain.events import Custom, Purchase, Refund
from patron.services import adjustments, events, maintenance, outbox, programs, redemptions
from patron.services.errors import InsufficientPointsError, Invalid, NotFound
from patron.services.outbox import Emitted, EventType
from patron.store.background import outbox as outbox_table
from tests.conftest import T0
from tests.helpers import set_up
from tests.integration.plain_program import plain_program

DAY = timedelta(days=1)


@pytest.fixture
def setup(db):
    document = plain_program(
        pending_days=14,
        rewards=[{"id": "coupon", "name": "Coupon", "cost": 50, "kind": "coupon", "value": "1.00"}],
    )
    return set_up(db, document, member_ids=("m1", "m2"), now=T0)


def written(db):
    """(type, member external id, data) of every outbox row, in id order."""
    with db.read() as conn:
        return [(m.type, m.member, m.data) for m in outbox.read_messages(conn, _ids(conn))]


def _ids(conn):
    return conn.execute(sa.select(outbox_table.c.id).order_by(outbox_table.c.id)).scalars().all()


def types(db):
    return [t for t, _, _ in written(db)]


def test_every_ledger_change_announces_itself(db, setup):
    assert types(db) == ["program.published"]
    purchase = Purchase(event_id="p1", member_id="m1", occurred_at=T0, order_id="o1", total="120")
    events.ingest(db, setup.cache, setup.program_id, purchase, now=T0)
    review = Custom(event_id="r1", member_id="m1", occurred_at=T0, name="review")
    events.ingest(db, setup.cache, setup.program_id, review, now=T0)
    adjustments.adjust(db, setup.cache, setup.program_id, "m1", 100, "welcome back", actor="ann", now=T0)
    redemptions.redeem(db, setup.cache, setup.program_id, "m1", "coupon", now=T0)
    refund = Refund(event_id="f1", member_id="m1", occurred_at=T0 + DAY, order_id="o1", amount="60")
    events.ingest(db, setup.cache, setup.program_id, refund, now=T0 + DAY)
    maintenance.activate(db, now=T0 + 20 * DAY)
    maintenance.expire(db, now=T0 + 800 * DAY)

    rows = written(db)[1:]
    assert [(t, m) for t, m, _ in rows] == [
        ("points.pending", "m1"),
        ("points.earned", "m1"),
        ("points.adjusted", "m1"),
        ("points.redeemed", "m1"),
        ("reward.redeemed", "m1"),
        ("coupon.issued", "m1"),
        ("points.adjusted", "m1"),
        ("points.activated", "m1"),
        ("points.expired", "m1"),
    ]
    data = [d for _, _, d in rows]
    assert data[0]["points"] == 170  # 120 for the dollars, 50 for the big basket, pending for 14 days
    assert data[1]["points"] == 20
    assert (data[2]["points"], data[2]["reason"], data[2]["actor"]) == (100, "welcome back", "ann")
    assert data[3]["points"] == 50
    assert data[5]["coupon_code"] == data[4]["coupon_code"] is not None
    assert (data[6]["points"], data[6]["source"]) == (-85, "refund")
    assert data[7]["points"] == 85
    assert data[8]["points"] == 20 + 100 - 50 + 85


def test_a_batch_announces_its_accepted_events_only(db, setup):
    batch = [
        Purchase(event_id="b1", member_id="m1", occurred_at=T0, order_id="o1", total="10"),
        Purchase(event_id="b2", member_id="nobody", occurred_at=T0, order_id="o2", total="10"),
        Purchase(event_id="b3", member_id="m2", occurred_at=T0, order_id="o3", total="20"),
    ]
    results = events.ingest_batch(db, setup.cache, setup.program_id, batch, now=T0)
    assert isinstance(results[1], NotFound)
    assert [(t, m, d["points"]) for t, m, d in written(db)[1:]] == [
        ("points.pending", "m1", 10),
        ("points.pending", "m2", 20),
    ]
    events.ingest_batch(db, setup.cache, setup.program_id, batch, now=T0)
    assert len(written(db)) == 3, "a batch sent again (replays) announces nothing new"


def test_a_change_that_rolls_back_leaves_no_outbox_row(db, setup):
    before = written(db)
    with pytest.raises(InsufficientPointsError):
        adjustments.adjust(db, setup.cache, setup.program_id, "m1", -10, "too much", actor="ann", now=T0)
    with pytest.raises(InsufficientPointsError):
        redemptions.redeem(db, setup.cache, setup.program_id, "m1", "coupon", now=T0)
    late = Purchase(event_id="x", member_id="m1", occurred_at=T0, order_id="o1", total="10")
    events.ingest(db, setup.cache, setup.program_id, late, now=T0)
    with pytest.raises(Invalid):  # the same order reported again: refused after the member was locked
        events.ingest(
            db,
            setup.cache,
            setup.program_id,
            Purchase(event_id="y", member_id="m1", occurred_at=T0, order_id="o1", total="10"),
            now=T0,
        )
    assert len(written(db)) == len(before) + 1

    # Emitted, then the transaction fails: the row goes with it.
    def emit_then_fail(conn):
        outbox.emit(conn, [Emitted(setup.program_id, EventType.POINTS_EARNED, None, {"points": 1}, T0)], now=T0)
        raise RuntimeError("the change failed after its event was written")

    with pytest.raises(RuntimeError):
        db.run(emit_then_fail)
    assert len(written(db)) == len(before) + 1


def test_a_publish_announces_the_new_version(db, setup):
    programs.publish(db, setup.program_id, plain_program(), actor="ann", now=T0 + DAY)
    (kind, member, data) = written(db)[-1]
    assert (kind, member, data["version"], data["published_by"]) == ("program.published", None, 2, "ann")


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.seen = []

    def consume(self, conn, messages, now):
        self.seen.extend(m.id for m in messages)


def test_dispatch_hands_each_committed_message_to_every_consumer_once_in_order(db, setup):
    for n in range(7):
        adjustments.adjust(db, setup.cache, setup.program_id, f"m{n % 2 + 1}", 5, f"r{n}", actor="a", now=T0)
    first, second = Recorder(), Recorder()
    total = 0
    while dispatched := outbox.dispatch(db, [first, second], now=T0, batch=3):
        total += dispatched
    assert total == 8
    assert first.seen == second.seen == sorted(first.seen)
    assert len(set(first.seen)) == 8
    assert outbox.dispatch(db, [first], now=T0) == 0

    class Broken:
        name = "broken"

        def consume(self, conn, messages, now):
            raise RuntimeError("bug")

    adjustments.adjust(db, setup.cache, setup.program_id, "m1", 5, "late", actor="a", now=T0)
    with pytest.raises(RuntimeError):
        outbox.dispatch(db, [first, Broken()], now=T0)
    with db.read() as conn:
        assert outbox.backlog(conn) == 1, "a failed dispatch is offered again"
