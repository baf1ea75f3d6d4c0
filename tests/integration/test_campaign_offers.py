"""Members lapsed from a running win-back campaign hear of it from the worker, once, without coming back first."""

from datetime import timedelta

from sqlalchemy import select

from patron.domain.events import Purchase
from patron.services import events
from patron.store.background import outbox
from patron.store.tables import members
from patron.worker.campaign_jobs import OFFER_TO_LAPSED
from patron.worker.plugins import default_registry
from patron.worker.runner import Worker
from tests.conftest import T0
from tests.helpers import program_document, set_up
from tests.integration.test_jobs import Clock, registry_of, settings

WIN_BACK = {
    "id": "win-back",
    "name": "We miss you",
    "starts_at": T0.isoformat(),
    "ends_at": (T0 + timedelta(days=365)).isoformat(),
    "target": {"lapsed_days": 30},
    "effect": {"bonus_points": 200},
}


def offers(db):
    with db.read() as conn:
        rows = conn.execute(
            select(members.c.external_id, outbox.c.data)
            .join(members, members.c.id == outbox.c.member_id)
            .where(outbox.c.type == "campaign.offered")
            .order_by(outbox.c.id)
        ).all()
    return [(r.external_id, r.data["campaign_id"], r.data["bonus_points"]) for r in rows]


def buy(s, member, order, at):
    purchase = Purchase(event_id=order, member_id=member, occurred_at=at, order_id=order, total="20")
    events.ingest(s.db, s.cache, s.program_id, purchase, now=at)


def test_a_lapsed_member_is_offered_the_campaign_once(db):
    s = set_up(db, program_document(campaigns=[WIN_BACK]), member_ids=("lapsed", "early", "active", "never"), now=T0)
    buy(s, "lapsed", "o1", T0)
    buy(s, "early", "o2", T0)
    buy(s, "active", "o3", T0 + timedelta(days=20))  # came back too: not lapsed
    buy(s, "active", "o4", T0 + timedelta(days=50))
    clock = Clock(T0 + timedelta(days=60))
    worker = Worker(db, registry_of(OFFER_TO_LAPSED), settings(job_chunk=1), clock=clock, name="w1")

    first = worker.run_now("campaigns.offer_to_lapsed")

    assert first.result == {"campaigns": 1, "members": 2}
    assert offers(db) == [("lapsed", "win-back", 200), ("early", "win-back", 200)]
    assert worker.run_now("campaigns.offer_to_lapsed").result == {"campaigns": 1, "members": 0}
    other = Worker(db, registry_of(OFFER_TO_LAPSED), settings(), clock=clock, name="w2")
    assert other.run_now("campaigns.offer_to_lapsed").result == {"campaigns": 1, "members": 0}
    assert len(offers(db)) == 2


def test_an_offer_is_not_repeated_once_its_outbox_message_is_pruned(db):
    s = set_up(db, program_document(campaigns=[WIN_BACK]), now=T0)
    buy(s, "m1", "o1", T0)
    worker = Worker(db, registry_of(OFFER_TO_LAPSED), settings(), clock=Clock(T0 + timedelta(days=40)), name="w")
    assert worker.run_now("campaigns.offer_to_lapsed").result == {"campaigns": 1, "members": 1}
    with db.write() as conn:
        conn.execute(outbox.delete())

    assert worker.run_now("campaigns.offer_to_lapsed").result == {"campaigns": 1, "members": 0}
    assert offers(db) == []


def test_a_member_who_comes_back_before_the_run_is_not_offered(db):
    s = set_up(db, program_document(campaigns=[WIN_BACK]), member_ids=("m1", "never"), now=T0)
    buy(s, "m1", "o1", T0)
    buy(s, "m1", "o2", T0 + timedelta(days=35))
    worker = Worker(db, registry_of(OFFER_TO_LAPSED), settings(), clock=Clock(T0 + timedelta(days=40)), name="w")

    assert worker.run_now("campaigns.offer_to_lapsed").result == {"campaigns": 1, "members": 0}
    assert offers(db) == []


def test_an_ended_campaign_offers_nothing(db):
    s = set_up(db, program_document(campaigns=[WIN_BACK]), now=T0)
    buy(s, "m1", "o1", T0)
    worker = Worker(db, registry_of(OFFER_TO_LAPSED), settings(), clock=Clock(T0 + timedelta(days=400)), name="w")

    assert worker.run_now("campaigns.offer_to_lapsed").result == {"campaigns": 0, "members": 0}
    assert offers(db) == []


def test_the_shipped_worker_runs_the_job_daily():
    registry = default_registry(settings(), worker="w")
    assert registry.kinds["campaigns.offer_to_lapsed"].schedule.every == timedelta(days=1)
