"""The worker grants birthdays and anniversaries and reviews tiers by itself: nobody runs a command at night, and
a job run again (a restart, a second worker) changes nothing."""

from datetime import UTC, date, datetime

from patron.domain.events import Purchase
from patron.domain.members import MemberProfile
from patron.services import events, members, standing
from patron.worker.loyalty_jobs import OCCASIONS, TIER_REVIEW
from patron.worker.plugins import default_registry
from patron.worker.runner import Worker
from tests.conftest import T0
from tests.helpers import check_invariants, ledger_dump, program_document, set_up
from tests.integration.test_jobs import Clock, registry_of, settings

COUPON = {"id": "coupon-5", "name": "$5 off", "cost": 500, "kind": "coupon", "value": "5.00"}
TIERS = {
    "qualify_on": "points",
    "window": "calendar_year",
    "downgrade": {"policy": "window_end", "grace_days": 30},
    "levels": [
        {"id": "silver", "name": "Silver", "threshold": 100},
        {"id": "gold", "name": "Gold", "threshold": 500},
    ],
}


def points_and_grants(db):
    """The ledger and the grants; the job tables record every run, so they are left out."""
    kept = ("journal", "postings", "lots", "balances", "occasion_grants", "reward_grants")
    return {name: rows for name, rows in ledger_dump(db).items() if name in kept}


def test_the_worker_grants_birthdays_and_anniversaries_once_a_year(db):
    document = program_document(
        rewards=[COUPON], birthday={"points": 100, "reward": "coupon-5"}, anniversary={"points": 50}
    )
    s = set_up(db, document, member_ids=(), now=T0)
    members.upsert(db, s.program_id, "today", MemberProfile(birthday=date(1990, 3, 10)), now=T0)
    members.upsert(db, s.program_id, "later", MemberProfile(birthday=date(1990, 6, 1)), now=T0)
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    worker = Worker(db, registry_of(OCCASIONS), settings(), clock=clock, name="w")

    first = worker.run_now("loyalty.grant_occasions")
    assert first.result == {"birthday": 1, "anniversary": 0, "points": 100, "coupons": 1}
    after_first = points_and_grants(db)
    assert worker.run_now("loyalty.grant_occasions").result == {
        "birthday": 0,
        "anniversary": 0,
        "points": 0,
        "coupons": 0,
    }
    assert points_and_grants(db) == after_first
    with db.read() as conn:
        view = members.view(conn, s.program_id, "today", now=clock.now)
        untouched = members.view(conn, s.program_id, "later", now=clock.now)
    assert (view.balance.available, untouched.balance.available) == (100, 0)

    clock.now = datetime(2027, 1, 5, 12, tzinfo=UTC)  # a year after both enrolled on T0: their anniversary
    assert worker.run_now("loyalty.grant_occasions").result == {
        "birthday": 0,
        "anniversary": 2,
        "points": 100,
        "coupons": 0,
    }
    check_invariants(db)


def test_the_worker_reviews_tiers_at_the_window_end_once(db):
    s = set_up(
        db, program_document(pending_days=0, rules=[{"id": "purchase", "event": "purchase"}], tiers=TIERS), now=T0
    )
    purchase = Purchase(event_id="p", member_id="m1", occurred_at=T0, order_id="o", total="600")
    events.ingest(db, s.cache, s.program_id, purchase, now=T0)
    clock = Clock(datetime(2028, 2, 1, tzinfo=UTC))  # no points in 2027: Gold falls to Silver after the grace
    worker = Worker(db, registry_of(TIER_REVIEW), settings(), clock=clock, name="w")

    assert worker.run_now("loyalty.review_tiers").result == {"members": 1, "changes": 1}
    assert worker.run_now("loyalty.review_tiers").result == {"members": 1, "changes": 0}
    with db.read() as conn:
        history = standing.tier_history(conn, members.require(conn, s.program_id, "m1").id)
    assert [(c.from_tier, c.to_tier) for c in history] == [(None, "gold"), ("gold", "silver")]


def test_the_shipped_worker_runs_the_loyalty_jobs(db):
    registry = default_registry(settings(), worker="w")
    assert {"loyalty.grant_occasions", "loyalty.review_tiers"} <= set(registry.kinds)
