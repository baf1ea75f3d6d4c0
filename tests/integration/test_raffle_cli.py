"""`patron raffle draw` and `verify` on a SQLite file; verify fails when a recorded winner was tampered with."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from typer.testing import CliRunner

from patron.cli import app
from patron.services import adjustments, raffles
from patron.services.raffles import RaffleSpec
from patron.store.database import Database
from patron.store.migrate import migrate
from patron.store.tables import raffle_winners
from tests.helpers import set_up

PAST = datetime(2026, 1, 1, tzinfo=UTC)


def test_draw_then_verify(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PATRON_DATABASE_URL", url)
    monkeypatch.setenv("PATRON_PROGRAM", "test")
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    assert runner.invoke(app, ["--help"]).exit_code == 0
    db = Database(url)
    migrate(db)
    setup = set_up(db, now=PAST, member_ids=("ann", "bob", "cy"))
    spec = RaffleSpec(
        name="spring",
        prize_reward_id="coupon-5",
        winners=2,
        entry_cost=10,
        max_entries_per_member=3,
        draws_at=PAST + timedelta(days=1),
    )
    raffles.create(db, setup.cache, setup.program_id, spec, actor="t", now=PAST)
    for member_id in ("ann", "bob", "cy"):
        adjustments.adjust(db, setup.cache, setup.program_id, member_id, 100, "funds", actor="t", now=PAST)
        raffles.enter(db, setup.program_id, "spring", member_id, 2, now=PAST)

    assert runner.invoke(app, ["raffle", "verify", "spring"]).exit_code == 1  # not drawn: the seed is secret
    drawn = runner.invoke(app, ["raffle", "draw", "spring"])
    assert drawn.exit_code == 0, drawn.output
    assert "Winners" in drawn.stdout
    verified = runner.invoke(app, ["raffle", "verify", "spring"])
    assert verified.exit_code == 0, verified.output
    assert "verified" in verified.stdout

    with db.write() as conn:
        conn.execute(sa.update(raffle_winners).where(raffle_winners.c.rank == 1).values(ticket="9:9"))
    tampered = runner.invoke(app, ["raffle", "verify", "spring"])
    assert tampered.exit_code == 1
    assert "NOT VERIFIED" in tampered.stdout
    db.dispose()
