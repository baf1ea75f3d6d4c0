"""`patron member show`: the tier with the distance to the next one, and stamp cards (in progress, expiry,
completed with their reward codes), from the same read model the API's member views use."""

import json
from datetime import datetime, timedelta

import pytest

from patron.services.clock import utcnow
from tests.cli.conftest import Cli
from tests.helpers import DEMO_PROGRAM

MEMBERS = "member_id,email\nann,ann@example.com\nbob,\ncat,\n"
CARD = "froyo: Frozen-yogurt card (buy 9, the 10th is free)"  # 9 stamps, expires 180 days after its first


@pytest.fixture
def demo(cli: Cli) -> Cli:
    cli.ok("init")
    cli.ok("program", "publish", str(DEMO_PROGRAM), "--effective-from", "1990-01-01T00:00Z")
    cli.ok("import", "members", cli.file("members.csv", MEMBERS))
    return cli


def buy_froyo(cli: Cli, member_id: str, times: int, first: datetime) -> list[datetime]:
    moments = [first + timedelta(hours=i) for i in range(times)]
    for i, at in enumerate(moments):
        cli.ok(
            "event", "send", member_id, "purchase", "--id", f"{member_id}-{i}", "--order", f"{member_id}-{i}",
            "--line", "cup-m:frozen-yogurt:1:3.50", "--at", at.isoformat(),
        )  # fmt: skip
    return moments


def minutes(moment: datetime) -> str:
    return moment.isoformat(timespec="minutes")


def table_row(stdout: str, first_cell: str) -> str:
    rows = [line for line in stdout.splitlines() if line.startswith(f"│ {first_cell} ")]
    assert len(rows) == 1, stdout
    return rows[0]


def test_a_full_card_is_listed_with_its_reward_and_the_next_one_is_in_progress(demo: Cli):
    moments = buy_froyo(demo, "ann", 11, utcnow().replace(microsecond=0) - timedelta(days=3))
    shown = demo.ok("member", "show", "ann").stdout
    # The 9th purchase filled the first card; the 10th and 11th are on the second, whose expiry counts from its
    # first stamp (the 10th).
    started = moments[9]
    card = table_row(shown, CARD)
    assert "│ 2 of 9 │" in card
    assert minutes(started) in card
    assert minutes(started + timedelta(days=180)) in card
    assert card.rstrip(" │").endswith("1")  # completed once
    full = table_row(shown, "froyo")
    assert "free-froyo" in full
    assert minutes(moments[8]) in full
    assert full.split("│")[3].strip().count("-") == 2  # the coupon code given, XXXX-XXXX-XXXX


def test_a_card_past_its_expiry_says_the_next_stamp_starts_over(demo: Cli):
    first = utcnow().replace(microsecond=0) - timedelta(days=200)
    buy_froyo(demo, "bob", 3, first)
    card = table_row(demo.ok("member", "show", "bob").stdout, CARD)
    assert "│ 3 of 9 │" in card
    assert f"{minutes(first + timedelta(days=180))} (expired: the next stamp starts a new card)" in card


def test_a_member_without_stamps_sees_the_empty_card_and_the_way_to_the_first_tier(demo: Cli):
    shown = demo.ok("member", "show", "cat").stdout
    assert "│ 0 of 9 │" in table_row(shown, CARD)
    assert "Completed cards" not in shown
    tier = next(line for line in shown.splitlines() if line.startswith("tier "))
    assert tier.split(maxsplit=1)[1].strip() == "none: 1000 points to Silver"


def test_the_tier_line_says_how_far_the_next_tier_is(demo: Cli):
    sent = demo.ok("event", "send", "bob", "purchase", "--id", "big", "--order", "big", "--total", "1500.00", "--json")
    # 1,550 points, or 4,550 in the quiet hours (weekday afternoons in New York earn 2 more per dollar).
    earned = json.loads(sent.stdout)["points"]
    assert earned in (1550, 4550)
    expected = "Silver: 1450 points to Gold" if earned == 1550 else "Gold: 3450 points to Platinum"
    shown = demo.ok("member", "show", "bob").stdout
    tier = next(line for line in shown.splitlines() if line.startswith("tier "))
    assert tier.split(maxsplit=1)[1].strip().startswith(expected)


def test_a_program_without_stamp_cards_shows_no_card_table(shop: Cli):
    shop.ok("import", "members", shop.file("members.csv", MEMBERS))
    assert "Stamp cards" not in shop.ok("member", "show", "ann").stdout
