"""An order import spread over processes earns exactly what one process earns, and fails loudly."""

import os
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path

import pytest
import sqlalchemy as sa

from patron.demo import cdnow
from patron.domain.program import ProgramDocument
from patron.services import import_split, imports, programs
from patron.services.imports import ImportReport, Row
from patron.store.database import Database
from patron.store.tables import (
    balances,
    campaign_budgets,
    journal,
    lots,
    member_progress,
    members,
    orders,
    postings,
    referrals,
    reward_grants,
    rule_usage,
)
from tests.conftest import T0, make_database

DEMO = programs.read_document(Path(cdnow.__file__).parent / "program.yaml")
FIRST_VERSION = datetime(1997, 1, 1, tzinfo=cdnow.ZONE)
WIN_BACK_DAY = datetime(2026, 1, 2, 12, tzinfo=cdnow.ZONE)  # the demo's budgeted win-back campaign runs all 2026


def _demo(budget: int) -> ProgramDocument:
    """The demo program with a win-back budget small enough that who buys first decides who gets the bonus."""
    campaigns = [
        c.model_copy(update={"budget_points": budget}) if c.budget_points is not None else c for c in DEMO.campaigns
    ]
    return DEMO.model_copy(update={"campaigns": tuple(campaigns)})


def _program(db: Database, slug: str, document: ProgramDocument) -> int:
    program_id = programs.create_program(db, slug, now=T0)
    programs.publish(db, program_id, document, actor="test", now=T0, effective_from=FIRST_VERSION)
    return program_id


def _orders() -> tuple[list[Row], list[Row]]:
    """The first 1,500 orders of the CDNOW sample, with a bad total, a future order and a repeated row among
    them, then orders of twelve members on one day of the win-back campaign."""
    purchases = cdnow.read(cdnow.locate(sample=True))
    member_rows = cdnow.member_rows(purchases)
    rows = list(islice(cdnow.order_rows(purchases), 1_500))
    last = rows[-1][0]
    rows.insert(700, (last + 1, {**rows[10][1], "order_id": "bad-total", "total": "12.3.4"}))
    rows.insert(900, (last + 2, {**rows[20][1], "order_id": "from-the-future", "occurred_at": "2030-01-01T00:00:00Z"}))
    rows.insert(1_100, (last + 3, dict(rows[30][1])))  # the same order again: replayed
    lapsed = [cells["member_id"] for _, cells in member_rows[:12]]
    for n, member_id in enumerate(lapsed):
        at = (WIN_BACK_DAY + timedelta(minutes=n)).isoformat()
        rows.append(
            (last + 10 + n, {"member_id": member_id, "order_id": f"back-{n}", "occurred_at": at, "total": "30"})
        )
    return member_rows, rows


def _seen(db: Database, program_id: int) -> dict[str, object]:
    """Everything an import leaves that a member, the merchant or an auditor sees, by member id (the two imports
    number their rows differently)."""
    who = sa.select(members.c.id, members.c.external_id).where(members.c.program_id == program_id).subquery()

    def by_member(*columns: sa.ColumnElement[object], key: sa.Column[int]) -> list[tuple]:
        query = sa.select(who.c.external_id, *columns).join(who, who.c.id == key)
        return sorted(tuple(r) for r in conn.execute(query))

    with db.read() as conn:
        return {
            "balances": by_member(balances.c.available, balances.c.pending, balances.c.debt, key=balances.c.member_id),
            "lots": by_member(
                lots.c.order_id,
                lots.c.points,
                lots.c.remaining,
                lots.c.status,
                lots.c.earned_at,
                lots.c.available_at,
                lots.c.expires_at,
                key=lots.c.member_id,
            ),
            "orders": by_member(orders.c.order_id, orders.c.total, orders.c.earned, key=orders.c.member_id),
            "usage": by_member(
                rule_usage.c.rule_id,
                rule_usage.c.period_key,
                rule_usage.c.times,
                rule_usage.c.points,
                key=rule_usage.c.member_id,
            ),
            "progress": sorted(
                (r.external_id, str(r.state))
                for r in conn.execute(
                    sa.select(who.c.external_id, member_progress.c.state).join(
                        who, who.c.id == member_progress.c.member_id
                    )
                )
            ),
            "grants": by_member(reward_grants.c.reward_id, reward_grants.c.reward_kind, key=reward_grants.c.member_id),
            "postings": sorted(
                (str(r[0]), r[1], int(r[2]))
                for r in conn.execute(
                    sa.select(who.c.external_id, postings.c.account, sa.func.sum(postings.c.amount))
                    .select_from(postings.outerjoin(who, who.c.id == postings.c.member_id))
                    .where(postings.c.program_id == program_id)
                    .group_by(who.c.external_id, postings.c.account)
                )
            ),
            "memos": sorted(
                tuple(r)
                for r in conn.execute(
                    sa.select(journal.c.kind, journal.c.memo, journal.c.occurred_at).where(
                        journal.c.program_id == program_id
                    )
                )
            ),
            "budgets": sorted(
                tuple(r)
                for r in conn.execute(
                    sa.select(campaign_budgets.c.campaign_id, campaign_budgets.c.spent).where(
                        campaign_budgets.c.program_id == program_id
                    )
                )
            ),
        }


def _report(report: ImportReport) -> tuple:
    return (
        report.rows,
        report.accepted,
        report.replayed,
        report.rejected,
        report.points,
        report.pending_points,
        [str(r) for r in report.rejections],
    )


def test_two_processes_import_exactly_what_one_does(pg_db: Database) -> None:
    member_rows, order_rows = _orders()
    document = _demo(budget=300)  # two win-back bonuses of 150: the first two of the twelve lapsed members
    one, two = _program(pg_db, "one", document), _program(pg_db, "two", document)
    reports = []
    for program_id, jobs in ((one, 1), (two, 2)):
        imports.import_members(pg_db, program_id, member_rows, now=T0)
        reports.append(imports.import_orders(pg_db, program_id, order_rows, now=T0, jobs=jobs, batch_size=100))

    alone, split = reports
    assert (alone.processes, split.processes) == (1, 2)
    assert _report(split) == _report(alone)
    assert (alone.replayed, alone.rejected) == (1, 2)
    assert [r.field for r in split.rejections] == ["total", "occurred_at"]
    seen_alone, seen_split = _seen(pg_db, one), _seen(pg_db, two)
    assert seen_alone["budgets"] == [("win-back", 300)]  # the budget ran out, so order mattered
    assert seen_split == seen_alone


def test_running_a_split_import_again_replays_every_order(pg_db: Database) -> None:
    member_rows, order_rows = _orders()
    program_id = _program(pg_db, "demo", _demo(budget=300))
    imports.import_members(pg_db, program_id, member_rows, now=T0)
    first = imports.import_orders(pg_db, program_id, order_rows, now=T0, jobs=2, batch_size=250)
    before = _seen(pg_db, program_id)

    again = imports.import_orders(pg_db, program_id, order_rows, now=T0, jobs=2, batch_size=250)

    assert (again.accepted, again.replayed, again.rejected) == (0, first.accepted + first.replayed, 2)
    assert _seen(pg_db, program_id) == before


def test_members_linked_by_referrals_are_imported_by_one_process(pg_db: Database) -> None:
    program_id = _program(pg_db, "demo", DEMO)
    imports.import_members(pg_db, program_id, [(n, {"member_id": f"m{n:03}"}) for n in range(200)], now=T0)
    with pg_db.write() as conn:
        ids = dict(conn.execute(sa.select(members.c.external_id, members.c.id)).all())
        chain = [("m001", "m050"), ("m050", "m099"), ("m150", "m001"), ("m007", "m008")]  # referrer, referee
        conn.execute(
            sa.insert(referrals),
            [
                {
                    "program_id": program_id,
                    "referrer_id": ids[a],
                    "referee_id": ids[b],
                    "status": "pending",
                    "fingerprints": [],
                    "rewards": {},
                    "created_at": T0,
                }
                for a, b in chain
            ],
        )

    split = import_split.plan(pg_db, program_id, 2)

    assert len({split.worker_of(m) for m in ("m001", "m050", "m099", "m150")}) == 1
    assert split.worker_of("m007") == split.worker_of("m008")
    assert {split.worker_of(f"m{n:03}") for n in range(200)} == {0, 1}  # the others are spread over both


def test_sqlite_imports_in_one_process_whatever_is_asked(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    db = make_database("sqlite", request, tmp_path)
    member_rows, order_rows = _orders()
    program_id = _program(db, "demo", DEMO)
    imports.import_members(db, program_id, member_rows, now=T0)
    report = imports.import_orders(db, program_id, order_rows[:300], now=T0, jobs=2)
    db.dispose()
    assert (report.processes, report.accepted) == (1, 300)


def _fail_in_worker(db: Database, rows: object, progress: object) -> ImportReport:
    if os.getpid() != PARENT:
        raise RuntimeError("the disk is full")
    return ImportReport()


def _die_in_worker(db: Database, rows: object, progress: object) -> ImportReport:
    if os.getpid() != PARENT:
        os._exit(3)
    return ImportReport()


PARENT = os.getpid()


@pytest.mark.parametrize(
    ("import_here", "message"),
    [(_fail_in_worker, "RuntimeError: the disk is full"), (_die_in_worker, "ended with exit code 3")],
)
def test_a_failing_worker_stops_the_import_with_its_reason(pg_db: Database, import_here, message) -> None:
    rows = [(n, {"member_id": f"m{n}", "order_id": f"o{n}"}) for n in range(5_000)]
    with pytest.raises(import_split.ImportProcessFailed, match=message):
        import_split.run(pg_db, import_split.Plan(2, {}, []), rows, import_here, ImportReport(), None, batch_size=100)
