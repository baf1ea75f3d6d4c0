"""`patron cart MEMBER --total X --code C`: the earnings, coupons and hints of POST /v1/members/{id}/cart, and
nothing written."""

import json

import pytest
import yaml

from tests.cli.conftest import Cli, snapshot

DOCUMENT = {
    "name": "Cart shop",
    "currency": "USD",
    "rules": [
        {"id": "purchase", "description": "1 point per dollar spent", "event": "purchase"},
        {
            "id": "big-basket",
            "description": "50 bonus points for orders of 100 dollars or more",
            "event": "purchase",
            "when": "event.total_minor >= 10000",
            "points": {"fixed": 50},
        },
    ],
}


@pytest.fixture
def shop(cli: Cli) -> Cli:
    cli.ok("init")
    published = cli.file("program.yaml", yaml.safe_dump(DOCUMENT, sort_keys=False))
    cli.ok("program", "publish", published, "--effective-from", "1990-01-01T00:00Z")
    cli.ok("import", "members", cli.file("members.csv", "member_id,email\nann,ann@example.com\n"))
    return cli


def ten_percent_code(shop: Cli) -> str:
    return shop.ok("coupons", "create-batch", "ten", "--kind", "percent_off", "--percent", "10").stdout.strip()


def test_the_cart_shows_earnings_coupons_and_hints_and_writes_nothing(shop: Cli):
    code = ten_percent_code(shop)
    before = snapshot(shop.db)
    shown = shop.ok("cart", "ann", "--total", "88.00", "--code", code.lower()).stdout
    assert shown.startswith("ann would earn 88 points")
    assert "best coupon discount 8.80" in shown
    assert "hint: spend 12.00 more for 50 bonus points" in shown
    coupon_row = next(line for line in shown.splitlines() if code in line)
    assert "│ yes " in coupon_row
    assert "8.80" in coupon_row
    assert snapshot(shop.db) == before


def test_json_is_the_apis_answer(shop: Cli):
    body = json.loads(shop.ok("cart", "ann", "--total", "120.00", "--json").stdout)
    assert body["points"] == 170
    assert {r["rule_id"]: r["points"] for r in body["rules"] if r["fired"]} == {"purchase": 120, "big-basket": 50}
    assert body["hints"] == []
    assert body["balance"] == {"available": 0, "pending": 0, "owed": 0}


def test_bad_carts_are_refused_naming_the_field(shop: Cli):
    before = snapshot(shop.db)
    assert "member" in shop("cart", "nobody", "--total", "5").stderr
    unknown = shop("cart", "ann", "--total", "5", "--code", "NOPE-NOPE")
    assert unknown.exit_code == 1
    assert "error: coupons:" in unknown.stderr
    negative = shop("cart", "ann", "--total", "-5")
    assert negative.exit_code == 1
    assert "total" in negative.stderr
    assert snapshot(shop.db) == before
