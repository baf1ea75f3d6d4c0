"""Referrals against real databases: the IP-burst cap under concurrent sign-ups, and rewards dated at the
qualifying purchase's time (not when it was processed), on PostgreSQL and SQLite."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from patron.domain.calendar import add_months
from patron.domain.events import Purchase, Refund
from patron.domain.program import ProgramDocument
from patron.domain.referrals import Status
from patron.services import events, referrals
from patron.store.database import Database
from patron.store.tables import journal, lots
from tests.conftest import T0
from tests.helpers import Setup, check_invariants, program_document, set_up

IP = "203.0.113.9"
BURST = 3


def scheme_program(**scheme: object) -> ProgramDocument:
    base = {"referrer": {"points": 100}, "referee": {"points": 50}, "min_spend": "20.00", "within_days": 30}
    return ProgramDocument.model_validate(program_document().model_dump(mode="json") | {"referrals": base | scheme})


def test_the_ip_burst_cap_holds_when_sign_ups_from_one_ip_race(db: Database):
    # Each newcomer uses a different referrer's code, so the referrers' row locks do not serialise the sign-ups:
    # only the burst check itself can keep the cap.
    n = 8
    document = scheme_program(max_per_referrer_per_week=None, ip_burst={"max_signups": BURST, "minutes": 60})
    referrers = tuple(f"r{i}" for i in range(n))
    newcomers = tuple(f"n{i}" for i in range(n))
    setup = set_up(db, document, member_ids=(*referrers, *newcomers), now=T0)
    codes = [referrals.code_for(db, setup.program_id, r, now=T0)[0].code for r in referrers]
    barrier = threading.Barrier(n, timeout=30)

    def sign(i: int) -> Status:
        barrier.wait()
        view = referrals.sign_up(db, setup.cache, setup.program_id, newcomers[i], codes[i], ip=IP, now=T0)
        return view.status

    with ThreadPoolExecutor(max_workers=n) as pool:
        statuses = list(pool.map(sign, range(n)))
    assert statuses.count(Status.PENDING) == BURST
    assert statuses.count(Status.NOT_ELIGIBLE) == n - BURST


def test_another_ip_is_not_held_up_by_a_burst(db: Database):
    document = scheme_program(max_per_referrer_per_week=None, ip_burst={"max_signups": 1, "minutes": 60})
    setup = set_up(db, document, member_ids=("ann", "bob", "cat", "dan"), now=T0)
    code = referrals.code_for(db, setup.program_id, "ann", now=T0)[0].code
    sign = referrals.sign_up
    assert sign(db, setup.cache, setup.program_id, "bob", code, ip=IP, now=T0).status is Status.PENDING
    assert sign(db, setup.cache, setup.program_id, "cat", code, ip=IP, now=T0).status is Status.NOT_ELIGIBLE
    assert sign(db, setup.cache, setup.program_id, "dan", code, ip="198.51.100.1", now=T0).status is Status.PENDING


DAY = timedelta(days=1)
SIGNED_UP = T0 - 400 * DAY  # more than the program's 12 months of expiry before the purchase is processed


def purchase(setup: Setup, order_id: str, at: datetime, total: str = "50.00", *, now: datetime = T0) -> None:
    event = Purchase(
        event_id=f"p-{order_id}",
        member_id="bob",
        occurred_at=at,
        order_id=order_id,
        total=Decimal(total),
    )
    events.ingest(setup.db, setup.cache, setup.program_id, event, now=now)


def referred(db: Database) -> Setup:
    setup = set_up(db, scheme_program(), member_ids=("ann", "bob"), now=SIGNED_UP)
    code = referrals.code_for(db, setup.program_id, "ann", now=SIGNED_UP)[0].code
    assert referrals.sign_up(db, setup.cache, setup.program_id, "bob", code, ip=None, now=SIGNED_UP).status == "pending"
    return setup


def referral_rewards(db: Database) -> list[sa.Row[tuple[str, datetime, datetime, datetime, datetime | None, int]]]:
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(
                    journal.c.reference,
                    journal.c.occurred_at,
                    journal.c.posted_at,
                    lots.c.earned_at,
                    lots.c.expires_at,
                    lots.c.points,
                )
                .join(lots, lots.c.transaction_id == journal.c.id)
                .where(journal.c.kind == "referral")
                .order_by(journal.c.reference)
            ).all()
        )


@pytest.mark.parametrize("batch", [False, True], ids=["single", "bulk"])
def test_a_late_imported_purchase_dates_the_rewards_at_the_purchase(db: Database, batch: bool):
    setup = referred(db)
    bought = SIGNED_UP + 10 * DAY
    if batch:
        event = Purchase(event_id="p-o1", member_id="bob", occurred_at=bought, order_id="o1", total=Decimal(50))
        assert not isinstance(events.ingest_batch(db, setup.cache, setup.program_id, [event], now=T0)[0], Exception)
    else:
        purchase(setup, "o1", bought)
    rewards = referral_rewards(db)
    assert [r.reference for r in rewards] == ["referral:referee", "referral:referrer"]
    # 12 months after the purchase, in the program's time zone: already past when the purchase was processed.
    expiry = add_months(bought.astimezone(ZoneInfo(program_document().timezone)), 12)
    assert expiry < T0
    for reward in rewards:
        assert reward.occurred_at == bought
        assert reward.posted_at == T0
        assert reward.earned_at == bought
        assert reward.expires_at == expiry
    check_invariants(db)


def test_the_window_is_judged_on_the_purchase_time_not_the_processing_time(db: Database):
    setup = referred(db)
    # Processed long after the 30-day window closed, but made within it: it qualifies.
    purchase(setup, "in-time", SIGNED_UP + 29 * DAY)
    with db.read() as conn:
        made = referrals.made_by(conn, setup.cache, setup.program_id, "ann", now=T0)
    assert made[0].status == "rewarded"
    assert made[0].order_id == "in-time"


def test_a_purchase_made_after_the_window_expires_the_referral_even_if_processed_early(db: Database):
    setup = referred(db)
    purchase(setup, "too-late", SIGNED_UP + 31 * DAY, now=SIGNED_UP + 31 * DAY)
    with db.read() as conn:
        made = referrals.made_by(conn, setup.cache, setup.program_id, "ann", now=T0)
    assert made[0].status == "expired"
    assert referral_rewards(db) == []


def test_a_claw_back_is_dated_at_the_refund(db: Database):
    setup = referred(db)
    purchase(setup, "o1", SIGNED_UP + 10 * DAY)
    refunded = SIGNED_UP + 20 * DAY
    refund = Refund(event_id="r-o1", member_id="bob", occurred_at=refunded, order_id="o1", amount=Decimal(50))
    events.ingest(db, setup.cache, setup.program_id, refund, now=T0)
    with db.read() as conn:
        taken = conn.execute(
            sa.select(journal.c.occurred_at, journal.c.posted_at).where(journal.c.reference == "referral:clawback")
        ).all()
    assert [(t.occurred_at, t.posted_at) for t in taken] == [(refunded, T0), (refunded, T0)]
    check_invariants(db)
