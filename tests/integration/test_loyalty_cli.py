"""`patron grant birthdays`, `patron tiers review|history` and the tier in `patron member show`, on a SQLite file."""

from datetime import date
from decimal import Decimal

from typer.testing import CliRunner

from patron.cli import app
from patron.domain.events import Purchase
from patron.domain.members import MemberProfile
from patron.services import events, members
from patron.store.database import Database
from patron.store.migrate import migrate
from tests.conftest import T0
from tests.helpers import program_document, set_up

TIERS = {
    "qualify_on": "points",
    "window": "calendar_year",
    "downgrade": {"policy": "window_end", "grace_days": 0},
    "levels": [{"id": "silver", "name": "Silver", "threshold": 100}, {"id": "gold", "name": "Gold", "threshold": 500}],
}


def test_birthdays_tiers_and_the_member_card(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PATRON_DATABASE_URL", url)
    monkeypatch.setenv("PATRON_PROGRAM", "test")
    monkeypatch.setenv("COLUMNS", "200")
    db = Database(url)
    migrate(db)
    document = program_document(pending_days=0, tiers=TIERS, birthday={"points": 40}, recognition=True)
    s = set_up(db, document, now=T0)
    members.upsert(db, s.program_id, "m1", MemberProfile(birthday=date(1990, 6, 1)), now=T0)
    purchase = Purchase(event_id="p", member_id="m1", occurred_at=T0, order_id="o", total=Decimal("150.00"))
    events.ingest(db, s.cache, s.program_id, purchase, now=T0)
    db.dispose()
    cli = CliRunner()

    granted = cli.invoke(app, ["grant", "birthdays", "--date", "2026-06-01"])
    assert granted.exit_code == 0, granted.output
    assert "1 member(s) granted 40 points" in granted.output
    assert "0 member(s)" in cli.invoke(app, ["grant", "birthdays", "--date", "2026-06-01"]).output
    assert cli.invoke(app, ["grant", "birthdays", "--date", "June"]).exit_code == 2

    shown = cli.invoke(app, ["member", "show", "m1"])
    # 150 + 50 (big basket) earned; the birthday gift counts for the balance, not towards a tier.
    assert "Silver: 300 points to Gold" in shown.output, shown.output
    reviewed = cli.invoke(app, ["tiers", "review", "--now", "2028-01-02T00:00:00Z"])
    assert "1 tier change(s)" in reviewed.output
    history = cli.invoke(app, ["tiers", "history", "m1"])
    assert "down one level" in history.output
