"""`patron rewards list`: the catalog in force with stock and tier rules, and for a named member why they may not
redeem a reward yet."""

from datetime import timedelta

import pytest
import yaml

from patron.services.clock import utcnow
from tests.cli.conftest import Cli, snapshot
from tests.helpers import program_document

SOON, LATER = (utcnow() + timedelta(days=5)), (utcnow() + timedelta(days=10))
LEVELS = [{"id": "silver", "name": "Silver", "threshold": 100}, {"id": "gold", "name": "Gold", "threshold": 500}]
REWARDS = [
    {"id": "lounge", "name": "Gold lounge", "cost": 10, "kind": "coupon", "value": "5.00", "min_tier": "gold"},
    {
        "id": "presale",
        "name": "Presale",
        "cost": 10,
        "kind": "coupon",
        "value": "5.00",
        "available_from": LATER.isoformat(),
        "early_access": [
            {"tier": "silver", "available_from": SOON.isoformat()},
            {"tier": "gold", "available_from": (utcnow() - timedelta(days=1)).isoformat()},
        ],
    },
    {"id": "mug", "name": "Mug", "cost": 100, "kind": "gift", "stock": 7},
]
ORDERS_AGO = (utcnow() - timedelta(days=2)).isoformat()
ORDERS = f"member_id,order_id,occurred_at,total\nann,o1,{ORDERS_AGO},600.00\nbob,o2,{ORDERS_AGO},150.00\n"


@pytest.fixture
def shop(cli: Cli) -> Cli:
    cli.ok("init")
    document = program_document(
        pending_days=0,
        rules=[{"id": "purchase", "event": "purchase"}],
        rewards=REWARDS,
        tiers={"qualify_on": "points", "window": "lifetime", "levels": LEVELS},
    ).model_dump(mode="json", exclude_none=True)
    cli.ok("program", "publish", cli.file("p.yaml", yaml.safe_dump(document)), "--effective-from", "1990-01-01T00:00Z")
    cli.ok("import", "members", cli.file("members.csv", "member_id,email\nann,\nbob,\n"))
    cli.ok("import", "orders", cli.file("orders.csv", ORDERS))
    return cli


def rows(listed: str) -> dict[str, str]:
    return {line.split("│")[1].split(":")[0].strip(): line for line in listed.splitlines() if line.count("│") > 2}


def test_the_catalog_shows_stock_and_tier_rules(shop: Cli):
    listed = rows(shop.ok("rewards", "list").stdout)
    assert "Gold and above" in listed["lounge"]
    early = (
        f"Gold from {(utcnow() - timedelta(days=1)).date()}; Silver from {SOON.date()}; everyone from {LATER.date()}"
    )
    assert early in listed["presale"]
    assert "│ 7 " in listed["mug"]


def test_a_member_sees_why_they_may_not_redeem_yet(shop: Cli):
    gold = rows(shop.ok("rewards", "list", "--member", "ann").stdout)
    assert all("may redeem" in gold[reward] for reward in ("lounge", "presale", "mug"))
    silver = rows(shop.ok("rewards", "list", "--member", "bob").stdout)
    assert "'Gold lounge' is for Gold members and above" in silver["lounge"]
    assert f"'Presale' opens to you on {SOON.date()}" in silver["presale"]
    before = snapshot(shop.db)
    refused = shop("rewards", "list", "--member", "nobody")
    assert refused.exit_code == 1
    assert "nobody" in refused.stderr
    assert snapshot(shop.db) == before
