"""Stamp cards, engagement deduplication, birthdays and anniversaries, campaigns and the tier review job, through
the services on SQLite and PostgreSQL."""

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from patron.domain.events import Custom, OrderLine, Purchase, Refund
from patron.domain.members import MemberProfile
from patron.services import events, members, occasions, standing, tier_review
from patron.services import progress as progress_store
from patron.services.errors import Invalid
from patron.store.background import outbox
from patron.store.tables import campaign_budgets, occasion_grants, reward_grants
from tests.conftest import T0
from tests.helpers import check_invariants, ledger_dump, program_document, set_up

FREE_CUP = {"id": "free-cup", "name": "A free cup", "cost": 1, "kind": "free_product", "sku": "FROYO-CUP"}
COUPON = {"id": "coupon-5", "name": "$5 off", "cost": 500, "kind": "coupon", "value": "5.00"}
CUP = OrderLine(sku="FROYO-CUP", category="frozen-yogurt", unit_price=Decimal("4.50"))
FROYO_CARD = {
    "id": "froyo",
    "name": "Frozen-yogurt card",
    "when": 'event.lines.exists(l, l.category == "frozen-yogurt")',
    "size": 9,
    "reward": "free-cup",
}


def _cup(n, member="m1"):
    return Purchase(
        event_id=f"p{n}-{member}",
        member_id=member,
        occurred_at=T0 + timedelta(minutes=n),
        order_id=f"o{n}-{member}",
        total=Decimal("4.50"),
        lines=(CUP,),
    )


def _grants(db):
    with db.read() as conn:
        return conn.execute(
            sa.select(reward_grants.c.member_id, reward_grants.c.reward_id, reward_grants.c.source).order_by(
                reward_grants.c.id
            )
        ).all()


def test_the_ninth_cup_completes_the_card_and_gives_a_free_cup_coupon(db):
    s = set_up(db, program_document(rewards=[FREE_CUP], stamp_cards=[FROYO_CARD]), now=T0)
    for n in range(8):
        receipt = events.ingest(db, s.cache, s.program_id, _cup(n), now=T0)
    assert receipt.rules[-1].reason == "1 stamp(s): 8 of 9"
    assert _grants(db) == []
    ninth = events.ingest(db, s.cache, s.program_id, _cup(8), now=T0)
    assert "card complete" in ninth.rules[-1].reason
    with db.read() as conn:
        member_id = members.require(conn, s.program_id, "m1").id
        (granted,) = standing.grants(conn, member_id)
    assert (granted.reward_id, granted.reward_kind, granted.source) == ("free-cup", "free_product", "stamp_card:froyo")
    assert len(granted.coupon_code) == 14
    with db.read() as conn:
        told = {r.type: r.data for r in conn.execute(sa.select(outbox.c.type, outbox.c.data))}
    assert told["stamp_card.completed"]["coupon_code"] == granted.coupon_code
    assert told["coupon.issued"]["reward_id"] == "free-cup"
    check_invariants(db)


def test_a_batch_stamps_cards_like_single_events(db):
    s = set_up(db, program_document(rewards=[FREE_CUP], stamp_cards=[FROYO_CARD]), member_ids=("m1", "m2"), now=T0)
    for n in range(10):
        events.ingest(db, s.cache, s.program_id, _cup(n, "m1"), now=T0)
    events.ingest_batch(db, s.cache, s.program_id, [_cup(n, "m2") for n in range(10)], now=T0)
    assert [(g.reward_id, g.source) for g in _grants(db)] == [("free-cup", "stamp_card:froyo")] * 2
    with db.read() as conn:
        one = progress_store.load_one(conn, members.require(conn, s.program_id, "m1").id)
        two = progress_store.load_one(conn, members.require(conn, s.program_id, "m2").id)
    assert one.cards["froyo"].count == two.cards["froyo"].count == 1


def test_refunding_a_stamped_purchase_takes_its_stamp_back(db):
    s = set_up(db, program_document(rewards=[FREE_CUP], stamp_cards=[FROYO_CARD]), now=T0)
    for n in range(3):
        events.ingest(db, s.cache, s.program_id, _cup(n), now=T0)
    refund = Refund(event_id="r", member_id="m1", occurred_at=T0 + timedelta(hours=1), order_id="o2-m1", amount="4.50")
    receipt = events.ingest(db, s.cache, s.program_id, refund, now=T0)
    assert "1 stamp(s) of the refunded order removed" in [r.reason for r in receipt.rules]
    nxt = events.ingest(db, s.cache, s.program_id, _cup(5), now=T0)
    assert nxt.rules[-1].reason == "1 stamp(s): 3 of 9"


def _review(n, review_id):
    return Custom(
        event_id=f"rv{n}",
        member_id="m1",
        occurred_at=T0 + timedelta(minutes=n),
        name="review",
        attributes={"review_id": review_id},
    )


def test_a_review_id_earns_once_even_under_new_event_ids(db):
    rules = [{"id": "review", "event": "review", "points": {"fixed": 20}, "unique_by": "review_id"}]
    s = set_up(db, program_document(rules=rules), now=T0)
    first = events.ingest(db, s.cache, s.program_id, _review(1, "R-1"), now=T0)
    again = events.ingest(db, s.cache, s.program_id, _review(2, "R-1"), now=T0)
    batch = events.ingest_batch(db, s.cache, s.program_id, [_review(3, "R-1"), _review(4, "R-2")], now=T0)
    assert [first.points, again.points] == [20, 0]
    assert again.rules[0].reason == "already rewarded for review_id 'R-1'"
    assert [r.points for r in batch] == [0, 20]
    assert again.balance.available == 20


BIRTHDAY = {"points": 100, "reward": "coupon-5", "days_before": 7}


def _birthday_program():
    return program_document(rewards=[COUPON], birthday=BIRTHDAY, anniversary={"points": 50})


def _enrol(db, s, member_id, **profile):
    members.upsert(db, s.program_id, member_id, MemberProfile(**profile), now=T0)


def test_birthdays_are_granted_once_a_year_days_before(db):
    s = set_up(db, _birthday_program(), member_ids=(), now=T0)
    _enrol(db, s, "soon", birthday=date(1990, 3, 10))
    _enrol(db, s, "later", birthday=date(1990, 3, 20))
    _enrol(db, s, "none")
    at = datetime(2026, 3, 3, 12, tzinfo=UTC)
    report = occasions.grant(db, s.cache, s.program_id, "birthday", on=date(2026, 3, 3), now=at)
    assert (report.members, report.points, report.coupons) == (1, 100, 1)
    before = ledger_dump(db)
    again = occasions.grant(db, s.cache, s.program_id, "birthday", on=date(2026, 3, 9), now=at + timedelta(days=6))
    assert again.members == 0  # already granted for 2026
    assert ledger_dump(db) == before
    with db.read() as conn:
        view = members.view(conn, s.program_id, "soon", now=at)
        grants = standing.grants(conn, members.require(conn, s.program_id, "soon").id)
    assert view.balance.available == 100
    assert [(g.reward_id, g.source, g.reason) for g in grants] == [("coupon-5", "birthday", "birthday 2026")]
    later = occasions.grant(db, s.cache, s.program_id, "birthday", on=date(2026, 3, 13), now=at)
    assert later.members == 1  # the 20th is due from the 13th on
    next_year = occasions.grant(db, s.cache, s.program_id, "birthday", on=date(2027, 3, 10), now=at)
    assert next_year.members == 1
    check_invariants(db)


def test_the_member_time_zone_decides_which_day_it_is(db):
    s = set_up(db, _birthday_program(), member_ids=(), now=T0)
    _enrol(db, s, "tokyo", birthday=date(1990, 3, 17), timezone="Asia/Tokyo")
    _enrol(db, s, "la", birthday=date(1990, 3, 17), timezone="America/Los_Angeles")
    # 20:00 UTC on the 9th is already the 10th in Tokyo (7 days before the 17th), still the 9th in Los Angeles.
    report = occasions.grant(db, s.cache, s.program_id, "birthday", on=None, now=datetime(2026, 3, 9, 20, tzinfo=UTC))
    assert report.members == 1
    with db.read() as conn:
        granted = conn.execute(sa.select(occasion_grants.c.member_id, occasion_grants.c.year)).all()
        tokyo = members.require(conn, s.program_id, "tokyo").id
    assert granted == [(tokyo, 2026)]


def test_anniversaries_start_after_a_year_of_membership(db):
    s = set_up(db, _birthday_program(), member_ids=("m1",), now=T0)  # joined 2026-01-05
    assert occasions.grant(db, s.cache, s.program_id, "anniversary", on=date(2026, 1, 5), now=T0).members == 0
    report = occasions.grant(db, s.cache, s.program_id, "anniversary", on=date(2027, 1, 5), now=T0)
    assert (report.members, report.points, report.coupons) == (1, 50, 0)


def test_a_program_without_birthdays_refuses_the_job(db):
    s = set_up(db, program_document(), now=T0)
    with pytest.raises(Invalid, match="gives nothing on a member's birthday"):
        occasions.grant(db, s.cache, s.program_id, "birthday", on=date(2026, 1, 1), now=T0)


def _campaign_program(budget):
    return program_document(
        pending_days=0,
        rules=[{"id": "purchase", "event": "purchase"}],
        campaigns=[
            {
                "id": "double",
                "name": "Double points week",
                "starts_at": "2026-01-01T00:00:00Z",
                "ends_at": "2026-02-01T00:00:00Z",
                "effect": {"multiplier": 2},
                "budget_points": budget,
            }
        ],
    )


def _spent(db, program_id):
    with db.read() as conn:
        return conn.execute(
            sa.select(campaign_budgets.c.spent).where(campaign_budgets.c.program_id == program_id)
        ).scalar_one()


def test_a_campaign_budget_stops_the_campaign_in_single_and_batch_ingestion(db):
    s = set_up(db, _campaign_program(25), member_ids=("m1", "m2"), now=T0)
    buy = lambda n, m: Purchase(  # noqa: E731
        event_id=f"p{n}{m}", member_id=m, occurred_at=T0, order_id=f"o{n}{m}", total=Decimal("10.00")
    )
    assert events.ingest(db, s.cache, s.program_id, buy(1, "m1"), now=T0).points == 20
    batch = events.ingest_batch(db, s.cache, s.program_id, [buy(2, "m2"), buy(3, "m1"), buy(4, "m2")], now=T0)
    assert [r.points for r in batch] == [20, 15, 10]
    assert _spent(db, s.program_id) == 25


def test_concurrent_purchases_never_pass_a_campaign_budget(db):
    members_ids = tuple(f"m{n}" for n in range(8))
    s = set_up(db, _campaign_program(55), member_ids=members_ids, now=T0)
    results: list[int] = []
    start = threading.Barrier(len(members_ids))

    def shop(member_id):
        start.wait()
        for n in range(3):
            event = Purchase(
                event_id=f"{member_id}-{n}",
                member_id=member_id,
                occurred_at=T0,
                order_id=f"{member_id}-{n}",
                total="10",
            )
            results.append(events.ingest(db, s.cache, s.program_id, event, now=T0).points - 10)

    threads = [threading.Thread(target=shop, args=(m,)) for m in members_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 55
    assert _spent(db, s.program_id) == 55
    check_invariants(db)


def test_the_tier_review_job_downgrades_silent_members_once(db):
    document = program_document(
        pending_days=0,
        rules=[{"id": "purchase", "event": "purchase"}],
        tiers={
            "qualify_on": "points",
            "window": "calendar_year",
            "downgrade": {"policy": "window_end", "grace_days": 30},
            "levels": [
                {"id": "silver", "name": "Silver", "threshold": 100},
                {"id": "gold", "name": "Gold", "threshold": 500},
            ],
        },
    )
    s = set_up(db, document, now=T0)
    events.ingest(
        db,
        s.cache,
        s.program_id,
        Purchase(event_id="p", member_id="m1", occurred_at=T0, order_id="o", total="600"),
        now=T0,
    )
    assert tier_review.review(db, s.cache, s.program_id, now=datetime(2027, 1, 30, tzinfo=UTC)).changes == 0
    feb = datetime(2027, 2, 1, tzinfo=UTC)
    report = tier_review.review(db, s.cache, s.program_id, now=feb)
    assert (report.members, report.changes) == (1, 0)  # 600 points in 2026: Gold is kept through 2027
    late = datetime(2028, 2, 1, tzinfo=UTC)
    assert tier_review.review(db, s.cache, s.program_id, now=late).changes == 1
    assert tier_review.review(db, s.cache, s.program_id, now=late).changes == 0
    with db.read() as conn:
        history = standing.tier_history(conn, members.require(conn, s.program_id, "m1").id)
        view = members.view(conn, s.program_id, "m1", now=late)
    assert [(c.from_tier, c.to_tier) for c in history] == [(None, "gold"), ("gold", "silver")]
    with db.read() as conn:
        announced = conn.execute(sa.select(outbox.c.data).where(outbox.c.type == "tier.changed")).scalars().all()
    assert [(d["from_tier"], d["to_tier"]) for d in announced] == [(None, "gold"), ("gold", "silver")]
    assert history[-1].reason == "0 points earned in 2027; Gold needs 500 points: down one level after 30 days' grace"
    assert view.tier.tier == "silver"
