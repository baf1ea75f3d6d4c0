"""`patron referrals code` and `patron referrals list`: the code a member hands out, and what became of each
referral, with the reason when it was not eligible."""

from datetime import timedelta

import pytest
import yaml

from patron.services import programs, referrals
from patron.services.clock import utcnow
from patron.services.program_cache import ProgramCache
from tests.cli.conftest import Cli, snapshot
from tests.helpers import program_document

SCHEME = {"referrer": {"points": 100}, "referee": {"points": 50}, "min_spend": "20.00", "within_days": 30}
MEMBERS = "member_id,email\nann,ann@example.com\nbob,bob@example.com\nann2,ann@example.com\n"


@pytest.fixture
def shop(cli: Cli) -> Cli:
    cli.ok("init")
    document = program_document().model_dump(mode="json", exclude_none=True) | {"referrals": SCHEME}
    published = cli.file("program.yaml", yaml.safe_dump(document, sort_keys=False))
    cli.ok("program", "publish", published, "--effective-from", "1990-01-01T00:00Z")
    cli.ok("import", "members", cli.file("members.csv", MEMBERS))
    return cli


def sign_up(shop: Cli, member_id: str, code: str) -> None:
    with shop.db.read() as conn:
        program = programs.program_id(conn, "default")
    referrals.sign_up(shop.db, ProgramCache(), program, member_id, code, ip=None, now=utcnow() - timedelta(days=1))


def test_the_code_is_made_once_and_printed_alone(shop: Cli):
    made = shop.ok("referrals", "code", "ann")
    code = made.stdout.strip()
    assert len(code) == referrals.CODE_LENGTH
    assert "Made a referral code" in made.stderr
    again = shop.ok("referrals", "code", "ann")
    assert again.stdout.strip() == code
    assert again.stderr == ""


def test_the_list_shows_each_referral_with_its_status_and_reason(shop: Cli):
    code = shop.ok("referrals", "code", "ann").stdout.strip()
    assert "ann has referred nobody yet." in shop.ok("referrals", "list", "ann").stdout
    sign_up(shop, "bob", code)
    sign_up(shop, "ann2", code)  # ann's own email under another id: self-referral
    day = (utcnow() - timedelta(hours=1)).isoformat()
    shop.ok("import", "orders", shop.file("orders.csv", f"member_id,order_id,occurred_at,total\nbob,o1,{day},25.00\n"))
    listed = shop.ok("referrals", "list", "ann").stdout
    rows = {line.split("│")[1].strip(): line for line in listed.splitlines() if line.count("│") > 2}
    assert "rewarded" in rows["bob"]
    assert "o1" in rows["bob"]
    assert "not_eligible" in rows["ann2"]
    assert "│ no " in rows["ann2"]
    assert "self-referral: same email address as the referrer" in rows["ann2"]


def test_an_unknown_member_is_refused_and_nothing_changes(shop: Cli):
    before = snapshot(shop.db)
    for command in ("code", "list"):
        refused = shop("referrals", command, "nobody")
        assert refused.exit_code == 1
        assert "nobody" in refused.stderr
    assert snapshot(shop.db) == before
