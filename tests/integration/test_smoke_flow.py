"""One member's life through the services, on each backend: the shape every other test builds on."""

from datetime import timedelta

import pytest

from patron.domain.events import Purchase, Refund, Signup
from patron.services import adjustments, events, maintenance, members, redemptions
from patron.services.errors import InsufficientPointsError
from tests.conftest import T0
from tests.helpers import check_invariants, set_up


def test_earn_wait_refund_activate_redeem_expire(db):
    s = set_up(db, now=T0)
    welcome = events.ingest(db, s.cache, s.program_id, Signup(event_id="s1", member_id="m1", occurred_at=T0), now=T0)
    assert (welcome.points, welcome.balance.available) == (100, 100)

    bought = events.ingest(
        db,
        s.cache,
        s.program_id,
        Purchase(event_id="p1", member_id="m1", occurred_at=T0, order_id="o1", total="150.00"),
        now=T0,
    )
    assert bought.pending_points == 200  # 150 at 1 point per dollar, and 50 for a basket over 100
    assert bought.balance.available == 100

    refunded = events.ingest(
        db,
        s.cache,
        s.program_id,
        Refund(event_id="r1", member_id="m1", occurred_at=T0, order_id="o1", amount="75.00"),
        now=T0,
    )
    assert (refunded.points, refunded.balance.pending, refunded.balance.available) == (-100, 100, 100)

    assert maintenance.activate(db, now=T0 + timedelta(days=13)).lots == 0  # still inside the return window
    assert maintenance.activate(db, now=T0 + timedelta(days=14)).points == 100
    assert maintenance.activate(db, now=T0 + timedelta(days=14)).points == 0  # once only

    with pytest.raises(InsufficientPointsError):  # 300 points, 200 available
        redemptions.redeem(db, s.cache, s.program_id, "m1", "free-single", now=T0)
    adjustments.adjust(db, s.cache, s.program_id, "m1", 150, "goodwill", actor="test", now=T0)
    redeemed, replay = redemptions.redeem(db, s.cache, s.program_id, "m1", "free-single", now=T0, idempotency_key="k")
    again, replay_again = redemptions.redeem(
        db, s.cache, s.program_id, "m1", "free-single", now=T0, idempotency_key="k"
    )
    assert (replay, replay_again) == (False, True)
    assert again == redeemed
    assert redeemed.balance.available == 50
    assert redeemed.coupon_code
    check_invariants(db)

    report = maintenance.expire(db, now=T0 + timedelta(days=400))
    assert report.points == 50
    assert maintenance.expire(db, now=T0 + timedelta(days=400)).points == 0
    with db.read() as conn:
        assert members.view(conn, s.program_id, "m1", now=T0).balance.available == 0
    check_invariants(db)
