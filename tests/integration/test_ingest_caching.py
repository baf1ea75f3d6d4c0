"""What single-event ingestion keeps in process or reads cheaply stays correct: program versions published by
another process, budgets locked only by purchases that draw on them, pooled connections that died while idle."""

import threading
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa

from patron.domain.events import Purchase
from patron.services import events, programs
from patron.services.program_cache import ProgramCache
from patron.store import database as database_module
from patron.store.tables import campaign_budgets
from tests.conftest import T0
from tests.helpers import program_document, set_up


def _purchase(n: int, at=T0, member_id="m1", total="10.00") -> Purchase:
    return Purchase(event_id=f"p{n}", member_id=member_id, occurred_at=at, order_id=f"o{n}", total=Decimal(total))


def test_a_version_published_by_another_process_judges_events_from_its_start(db):
    s = set_up(db, now=T0)
    assert events.ingest(db, s.cache, s.program_id, _purchase(1), now=T0).program_version == 1
    # Published without this process's cache knowing: as another API worker or the CLI would.
    starts = T0 + timedelta(hours=1)
    programs.publish(db, s.program_id, program_document(), actor="elsewhere", now=T0, effective_from=starts)
    later = T0 + timedelta(hours=2)
    assert events.ingest(db, s.cache, s.program_id, _purchase(2, at=starts), now=later).program_version == 2
    assert events.ingest(db, s.cache, s.program_id, _purchase(3, at=T0), now=later).program_version == 1
    with db.read() as conn:
        assert ProgramCache().in_force(conn, s.program_id, starts).version == 2
        assert s.cache.in_force(conn, s.program_id, starts - timedelta(seconds=1)).version == 1


def _budgeted_program(budget: int):
    return program_document(
        pending_days=0,
        rules=[{"id": "purchase", "event": "purchase"}],
        campaigns=[
            {
                "id": "big-spenders",
                "name": "100 points on orders of 100 or more",
                "starts_at": "2026-01-01T00:00:00Z",
                "ends_at": "2026-02-01T00:00:00Z",
                "target": {"when": "event.total_minor >= 10000"},
                "effect": {"bonus_points": 100},
                "budget_points": budget,
            }
        ],
    )


def test_a_purchase_the_budgeted_campaign_does_not_reward_does_not_wait_for_its_budget(pg_db):
    s = set_up(pg_db, _budgeted_program(1000), member_ids=("m1", "m2"), now=T0)
    answered: list[int] = []
    with pg_db.write() as holder:
        # Another transaction holds the budget (as one spending from it would, until it commits).
        holder.execute(sa.select(campaign_budgets).with_for_update()).all()
        small = threading.Thread(
            target=lambda: answered.append(events.ingest(pg_db, s.cache, s.program_id, _purchase(1), now=T0).points)
        )
        small.start()
        small.join(timeout=30)
        assert answered == [10], "a purchase the campaign does not reward went through while the budget was held"
    big = events.ingest(pg_db, s.cache, s.program_id, _purchase(2, member_id="m2", total="100.00"), now=T0)
    assert big.points == 200
    with pg_db.read() as conn:
        assert conn.execute(sa.select(campaign_budgets.c.spent)).scalar_one() == 100


def test_a_pooled_connection_that_died_while_idle_is_replaced(pg_db, monkeypatch):
    monkeypatch.setattr(database_module, "IDLE_PING_SECONDS", 0.0)
    # Held throughout, so that the pool cannot hand it the connection it kills.
    with pg_db.engine.connect() as other:
        with pg_db.read() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        other.commit()
        with pg_db.read() as conn:
            assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() != pid
