"""`patron demo --sample --no-serve`: the demo program and CDNOW's sample, loaded through `patron import`'s path,
on each backend; a second run imports nothing twice."""

import re
from datetime import timedelta

from patron.demo import cdnow
from patron.services import coupons, keys, programs, raffles
from patron.services.clock import utcnow
from patron.services.keys import Scope
from tests.cli.conftest import Cli, snapshot

KEY_LINE = re.compile(r"^export PATRON_KEY=(ptn_\S+)$", re.MULTILINE)


def _token(output: str) -> str:
    found = KEY_LINE.findall(output)
    assert len(found) == 1, output
    return str(found[0])


def test_demo_loads_the_sample_once(cli: Cli):
    first = cli.ok("demo", "--sample", "--no-serve").stdout
    assert "Created program 'demo'." in first
    # The history is replayed to end yesterday (in CDNOW's time zone), so members have points to spend today.
    yesterday = utcnow().astimezone(cdnow.ZONE).date() - timedelta(days=1)
    start = yesterday - (cdnow.LAST_DAY - cdnow.FIRST_DAY)
    assert f"Published program.yaml as version 1, in force from {start}." in first
    assert f"replayed as if made from {start} to {yesterday}." in first
    assert "Members: 2,357 rows: 2,357 accepted, 0 already imported, 0 rejected" in first
    assert "Orders: 6,919 rows: 6,919 accepted, 0 already imported, 0 rejected" in first
    totals = re.search(r"available now ([\d,]+), pending ([\d,]+)\.", first)
    assert totals is not None
    available, pending = (int(n.replace(",", "")) for n in totals.groups())
    assert available > 0
    assert pending > 0  # the last 14 days' purchases are in their return window

    # Something to try at a checkout and a raffle to enter: program.yaml declares them, its publication made them.
    assert "Made coupon batch 'spend-200-save-20': 100 codes" in first
    assert "Made raffle 'listening-party'" in first
    assert "Offers: coupon batch 'spend-200-save-20'" in first
    with cli.db.read() as conn:
        program = programs.program_id(conn, "demo")
        batch = coupons.batch_detail(conn, program, "spend-200-save-20", with_codes=False)
        raffle = raffles.view(conn, program, "listening-party")
    assert (batch.offer.kind, batch.offer.min_spend, batch.offer.amount) == ("spend_and_save", 200, 20)
    assert (batch.codes_issued, batch.created_by) == (100, "program version 1")
    assert (raffle.entry_cost, raffle.prize_reward_id, raffle.seed) == (100, "free-single", None)
    # Like the history, the raffle is moved: it draws 30 days after the replay's last day, at 20:00 in the shop.
    assert raffle.draws_at.astimezone(cdnow.ZONE).date() == yesterday + timedelta(days=30)
    assert raffle.draws_at.astimezone(cdnow.ZONE).hour == 20

    token = _token(first)
    with cli.db.read() as conn:
        key = keys.authenticate(conn, token)
    assert key is not None
    assert key.program == "demo"
    assert key.allows(Scope.REDEEM)

    before = snapshot(cli.db)
    second = cli.ok("demo", "--sample", "--no-serve").stdout
    assert "Created program" not in second
    assert "Published" not in second
    assert "Members: 2,357 rows: 0 accepted, 2,357 already imported, 0 rejected" in second
    assert "Orders: 6,919 rows: 0 accepted, 6,919 already imported, 0 rejected" in second
    assert f"available now {available:,}, pending {pending:,}." in second
    assert _token(second) != token
    after = snapshot(cli.db)
    assert len(after.pop("api_keys")) == len(before.pop("api_keys")) + 1  # a fresh key: tokens are never stored
    assert after == before
