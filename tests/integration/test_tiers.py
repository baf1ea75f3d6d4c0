"""Tiers through the services on SQLite and PostgreSQL: upgrades recorded with their reason, progress in the member
read model, tier-only rewards refused without a trace, and batches that agree with single events."""

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from patron.domain.events import Purchase, Refund
from patron.services import adjustments, events, members, redemptions, tier_review
from patron.services.errors import NotEligible
from patron.store.tables import member_progress, tier_changes
from tests.conftest import T0
from tests.helpers import behind_a_held_transaction, check_invariants, ledger_dump, program_document, set_up

TIERS = {
    "qualify_on": "points",
    "window": "calendar_year",
    "levels": [
        {"id": "silver", "name": "Silver", "threshold": 100, "earn_multiplier": "1.5"},
        {"id": "gold", "name": "Gold", "threshold": 500, "earn_multiplier": "2", "free_shipping": True},
    ],
}
REWARDS = [
    {"id": "lounge", "name": "Gold lounge pass", "cost": 50, "kind": "coupon", "value": "5.00", "min_tier": "gold"},
    {"id": "coupon-5", "name": "$5 off", "cost": 50, "kind": "coupon", "value": "5.00"},
]


def _program():
    return program_document(
        pending_days=0,
        rules=[{"id": "purchase", "event": "purchase"}],
        rewards=REWARDS,
        tiers=TIERS,
        recognition=True,
    )


def _purchase(n, total, member="m1", at=T0, lines=()):
    return Purchase(
        event_id=f"p{n}-{member}",
        member_id=member,
        occurred_at=at + timedelta(minutes=n),
        order_id=f"o{n}-{member}",
        total=Decimal(total),
        lines=lines,
    )


def _changes(db):
    with db.read() as conn:
        return [
            (r.from_tier, r.to_tier, r.reason, r.event_id is not None)
            for r in conn.execute(sa.select(tier_changes).order_by(tier_changes.c.id))
        ]


def test_upgrade_is_recorded_with_its_reason_and_shown_with_progress(db):
    s = set_up(db, _program(), now=T0)
    first = events.ingest(db, s.cache, s.program_id, _purchase(1, "260.00"), now=T0)
    assert first.points == 260
    assert "tier none -> Silver: 260 points earned in 2026 reached Silver (100 points)" in first.notes
    with db.read() as conn:
        view = members.view(conn, s.program_id, "m1", now=T0)
    assert view.tier is not None
    assert (view.tier.tier, view.tier.name, view.tier.progress) == ("silver", "Silver", "240 points to Gold")
    assert view.tier.qualifying == "260 points"

    second = events.ingest(db, s.cache, s.program_id, _purchase(2, "200.00"), now=T0)
    assert second.points == 300  # Silver's 1.5x
    assert [r.rule_id for r in second.rules] == ["purchase", "tier:silver"]
    assert _changes(db) == [
        (None, "silver", "260 points earned in 2026 reached Silver (100 points)", True),
        ("silver", "gold", "560 points earned in 2026 reached Gold (500 points)", True),
    ]
    with db.read() as conn:
        view = members.view(conn, s.program_id, "m1", now=T0)
    assert (view.tier.tier, view.tier.free_shipping, view.tier.progress) == ("gold", True, "Gold: the highest tier")
    check_invariants(db)


def test_spending_points_does_not_lower_the_tier(db):
    s = set_up(db, _program(), now=T0)
    events.ingest(db, s.cache, s.program_id, _purchase(1, "520.00"), now=T0)
    redemptions.redeem(db, s.cache, s.program_id, "m1", "coupon-5", now=T0)
    adjustments.adjust(db, s.cache, s.program_id, "m1", -400, "test", actor="test", now=T0)
    with db.read() as conn:
        view = members.view(conn, s.program_id, "m1", now=T0)
    assert view.balance.available == 70
    assert view.tier.tier == "gold"


def test_a_tier_only_reward_is_refused_without_the_tier_and_nothing_changes(db):
    s = set_up(db, _program(), now=T0)
    events.ingest(db, s.cache, s.program_id, _purchase(1, "200.00"), now=T0)
    before = ledger_dump(db)
    with pytest.raises(NotEligible) as refused:
        redemptions.redeem(db, s.cache, s.program_id, "m1", "lounge", now=T0)
    assert refused.value.status == 409
    assert refused.value.detail == "'Gold lounge pass' is for Gold members and above"
    assert ledger_dump(db) == before
    events.ingest(db, s.cache, s.program_id, _purchase(2, "300.00"), now=T0)
    redeemed, _ = redemptions.redeem(db, s.cache, s.program_id, "m1", "lounge", now=T0)
    assert redeemed.coupon_code


def test_a_batch_reaches_the_same_tiers_and_progress_as_single_events(db):
    s = set_up(db, _program(), member_ids=("m1", "m2"), now=T0)
    line = ({"sku": "FROYO", "category": "frozen-yogurt", "unit_price": "3.00"},)
    single = [_purchase(n, "90.00", "m1", lines=line) for n in range(4)]
    batch = [_purchase(n, "90.00", "m2", lines=line) for n in range(4)]
    for event in single:
        events.ingest(db, s.cache, s.program_id, event, now=T0)
    events.ingest_batch(db, s.cache, s.program_id, batch, now=T0)
    with db.read() as conn:
        states = {r.member_id: r.state for r in conn.execute(sa.select(member_progress))}
        one = members.view(conn, s.program_id, "m1", now=T0)
        two = members.view(conn, s.program_id, "m2", now=T0)
    assert len(states) == 2
    first, second = states.values()
    assert first == second
    assert one.tier == two.tier
    assert one.tier.tier == "silver"
    assert (two.recognition.usual_sku, two.recognition.usual_category, two.recognition.visits) == (
        "FROYO",
        "frozen-yogurt",
        4,
    )
    assert [c[:2] for c in _changes(db)] == [(None, "silver"), (None, "silver")]
    check_invariants(db)


def test_a_refund_reduces_what_counts_but_never_demotes_at_once(db):
    s = set_up(db, _program(), now=T0)
    events.ingest(db, s.cache, s.program_id, _purchase(1, "150.00"), now=T0)
    refund = Refund(event_id="r1", member_id="m1", occurred_at=T0 + timedelta(hours=1), order_id="o1-m1", amount="100")
    events.ingest(db, s.cache, s.program_id, refund, now=T0)
    with db.read() as conn:
        view = members.view(conn, s.program_id, "m1", now=T0 + timedelta(hours=2))
    assert (view.tier.tier, view.tier.qualifying, view.tier.progress) == ("silver", "50 points", "450 points to Gold")


def test_a_tier_review_that_waited_for_a_members_lock_reviews_what_the_holder_saved(db):
    """The review locks members and their progress together: had it read progress along with locking only the
    member, PostgreSQL would give it the progress from before the wait, and the review would save that back over
    the purchase the other transaction had just counted."""
    reviewed = program_document(
        pending_days=0,
        rules=[{"id": "purchase", "event": "purchase"}],
        tiers={**TIERS, "downgrade": {"policy": "window_end", "grace_days": 0}},
    )
    racing, alone = (set_up(db, reviewed, now=T0, slug=slug) for slug in ("racing", "alone"))
    next_year = T0 + timedelta(days=400)
    earlier, held = _purchase(0, "150.00"), _purchase(1, "200.00", at=next_year)
    for s in (racing, alone):
        events.ingest(db, s.cache, s.program_id, earlier, now=T0)
    later = next_year + timedelta(days=1)
    behind_a_held_transaction(
        db,
        lambda conn: events._apply(
            conn, racing.cache, racing.program_id, held, events.fingerprint(held), now=next_year
        ),
        lambda: tier_review.review(db, racing.cache, racing.program_id, now=later),
    )

    events.ingest(db, alone.cache, alone.program_id, held, now=next_year)
    tier_review.review(db, alone.cache, alone.program_id, now=later)
    assert _progress(db, racing.program_id) == _progress(db, alone.program_id)
    assert _changes_of(db, racing.program_id) == _changes_of(db, alone.program_id)


def _progress(db, program_id):
    with db.read() as conn:
        member = members.require(conn, program_id, "m1")
        return conn.execute(sa.select(member_progress.c.state).where(member_progress.c.member_id == member.id)).scalar()


def _changes_of(db, program_id):
    with db.read() as conn:
        return [
            (r.from_tier, r.to_tier, r.reason)
            for r in conn.execute(
                sa.select(tier_changes).where(tier_changes.c.program_id == program_id).order_by(tier_changes.c.id)
            )
        ]
