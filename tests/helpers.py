"""Building blocks for tests: a program with members, and a check of the ledger's invariants."""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection

from patron.domain.members import MemberProfile
from patron.domain.program import ProgramDocument
from patron.services import members, programs
from patron.services.program_cache import ProgramCache
from patron.store import tables
from patron.store.database import Database
from patron.store.tables import balances, journal, lots, metadata, postings

DEMO_PROGRAM = Path(__file__).parents[1] / "src" / "patron" / "demo" / "program.yaml"
LONG_AGO = datetime(1990, 1, 1, tzinfo=UTC)


@dataclass
class Setup:
    db: Database
    program_id: int
    cache: ProgramCache


# The demo's showcase of loyalty mechanics (tiers, stamp cards, campaigns, birthdays, behavioural bonuses, its coupon
# batch and raffle) is left out of program_document(): a test asks for the mechanics it tests, so its points don't
# shift with the showcase.
SHOWCASE_SECTIONS = (
    "tiers",
    "stamp_cards",
    "campaigns",
    "birthday",
    "anniversary",
    "recognition",
    "coupon_batches",
    "raffles",
)
SHOWCASE_RULES = frozenset(
    {"quiet-hours", "crate-digger", "new-genre", "regulars", "follow", "survey", "newsletter", "profile-completion"}
)
SHOWCASE_REWARDS = frozenset({"free-froyo", "listening-session", "rsd-exclusive"})


def program_document(**overrides: Any) -> ProgramDocument:
    """The demo program without its showcase of mechanics (SHOWCASE_*), with top-level fields replaced."""
    base = programs.read_document(DEMO_PROGRAM).model_dump(mode="json")
    for section in SHOWCASE_SECTIONS:
        base.pop(section, None)
    base["rules"] = [
        {k: v for k, v in r.items() if k != "unique_by"} for r in base["rules"] if r["id"] not in SHOWCASE_RULES
    ]
    base["rewards"] = [r for r in base["rewards"] if r["id"] not in SHOWCASE_REWARDS]
    base.update(overrides)
    return ProgramDocument.model_validate(base)


def set_up(
    db: Database,
    document: ProgramDocument | None = None,
    *,
    member_ids: tuple[str, ...] = ("m1",),
    now: datetime,
    slug: str = "test",
) -> Setup:
    program_id = programs.create_program(db, slug, now=now)
    programs.publish(db, program_id, document or program_document(), actor="test", now=now, effective_from=LONG_AGO)
    for member_id in member_ids:
        members.upsert(db, program_id, member_id, MemberProfile(), now=now)
    return Setup(db, program_id, ProgramCache())


def check_invariants(db: Database) -> None:
    """Invariants 1, 3, 4 and 5 of LEDGER.md, read straight from the tables."""
    with db.read() as conn:
        unbalanced = conn.execute(
            sa.select(postings.c.transaction_id)
            .group_by(postings.c.transaction_id)
            .having(sa.func.sum(postings.c.amount) != 0)
        ).all()
        assert unbalanced == [], f"unbalanced transactions: {unbalanced}"
        empty = conn.execute(
            sa.select(journal.c.id).where(~journal.c.id.in_(sa.select(postings.c.transaction_id)))
        ).all()
        assert empty == [], f"journal transactions without postings: {empty}"
        for row in conn.execute(sa.select(balances)).all():
            sums = dict(
                conn.execute(
                    sa.select(postings.c.account, sa.func.sum(postings.c.amount))
                    .where(postings.c.member_id == row.member_id)
                    .group_by(postings.c.account)
                ).all()
            )
            assert row.available == int(sums.get("available", 0)), f"member {row.member_id} available"
            assert row.pending == int(sums.get("pending", 0)), f"member {row.member_id} pending"
            assert row.debt == int(sums.get("debt", 0)), f"member {row.member_id} debt"
            assert row.available >= 0
            assert row.pending >= 0
            assert row.debt <= 0
            open_lots = dict(
                conn.execute(
                    sa.select(lots.c.status, sa.func.sum(lots.c.remaining))
                    .where(lots.c.member_id == row.member_id, lots.c.remaining > 0)
                    .group_by(lots.c.status)
                ).all()
            )
            assert int(open_lots.get("available", 0)) == row.available, f"member {row.member_id} lots vs available"
            assert int(open_lots.get("pending", 0)) == row.pending, f"member {row.member_id} lots vs pending"
            assert "expired" not in open_lots
        bad_lots = conn.execute(
            sa.select(lots.c.id).where((lots.c.remaining < 0) | (lots.c.remaining > lots.c.points))
        ).all()
        assert bad_lots == []


def ledger_dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, ordered by primary key: two dumps are equal only if nothing was written."""
    with db.read() as conn:
        return {
            table.name: [tuple(row) for row in conn.execute(sa.select(table).order_by(*table.primary_key.columns))]
            for table in metadata.sorted_tables
        }


def program_accounts(db: Database, program_id: int) -> dict[str, int]:
    """The balances of the program's own accounts (issued, redeemed, expired, ...), summed from their postings."""
    with db.read() as conn:
        rows = conn.execute(
            sa.select(postings.c.account, sa.func.sum(postings.c.amount))
            .where(postings.c.program_id == program_id, postings.c.member_id.is_(None))
            .group_by(postings.c.account)
        ).all()
    return {account: int(total) for account, total in rows if int(total) != 0}


def member_lots(db: Database, program_id: int, external_id: str) -> list[Any]:
    """The member's lots in the order they were earned (by id), every column."""
    with db.read() as conn:
        return list(
            conn.execute(
                sa.select(lots)
                .join(tables.members, tables.members.c.id == lots.c.member_id)
                .where(tables.members.c.program_id == program_id, tables.members.c.external_id == external_id)
                .order_by(lots.c.id)
            ).all()
        )


def wait_until_blocked(db: Database) -> None:
    """Until another connection waits for a lock (PostgreSQL); SQLite's writer waits for the write lock."""
    if db.engine.dialect.name != "postgresql":
        time.sleep(0.3)
        return
    deadline = time.monotonic() + 30
    with db.engine.connect() as conn:
        while not conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        ).scalar_one():
            assert time.monotonic() < deadline, "nothing waited for a lock"
            time.sleep(0.01)
            conn.rollback()


R = TypeVar("R")


def behind_a_held_transaction(db: Database, hold: Callable[[Connection], object], waiter: Callable[[], R]) -> R:
    """Runs `hold` in a write transaction of its own and keeps it open while `waiter` runs in another thread, until
    `waiter` waits for a lock; then commits it, and returns what `waiter` returned once it is done."""
    holding, release = threading.Event(), threading.Event()

    def holder_work() -> None:
        with db.write() as conn:
            hold(conn)
            holding.set()
            release.wait()

    holder = threading.Thread(target=holder_work)
    holder.start()
    holding.wait()
    returned: list[R] = []
    waiting = threading.Thread(target=lambda: returned.append(waiter()))
    waiting.start()
    try:
        wait_until_blocked(db)
    finally:
        release.set()
        holder.join()
        waiting.join()
    assert returned, "the waiter failed"
    return returned[0]
