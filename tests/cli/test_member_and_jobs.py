"""`patron member show`, `patron activate` and `patron expire`: what a member has, and the ledger's jobs."""

import pytest

from tests.cli.conftest import Cli, snapshot

MEMBERS = "member_id,email\nann,ann@example.com\nbob,\n"
# Earned 2024-03-01: pending until 03-15 (the 14-day return window), then available until 2025-03-01 (12 months).
ORDERS = """\
member_id,order_id,occurred_at,total
ann,o1,2024-03-01T12:00:00Z,120.00
ann,o2,2024-03-01T12:00:00Z,9.99
"""


@pytest.fixture
def ann(shop: Cli) -> Cli:
    shop.ok("import", "members", shop.file("members.csv", MEMBERS))
    shop.ok("import", "orders", shop.file("orders.csv", ORDERS))
    return shop


def test_member_show_has_balance_lots_and_history(ann: Cli):
    shown = ann.ok("member", "show", "ann").stdout
    assert "ann@example.com" in shown
    assert "available" in shown
    assert "│ 0         │ 179     │" in shown  # available 0, pending 179 (the Points table)
    # points, remaining, status, earned, available from (after the return window), expires (12 months), order
    lot = "│ 170    │ 170       │ pending │ 2024-03-01T12:00+00:00 │ 2024-03-15T12:00+00:00 │ 2025-03-01T12:00+00:00 │"
    assert lot in shown
    assert "purchase order:o1: +170 points (big-basket, purchase)" in shown
    assert "purchase order:o2: +9 points" in shown


def test_activation_is_done_once(ann: Cli):
    too_early = ann.ok("activate", "--now", "2024-03-14T00:00:00Z")
    assert "activated 0 points in 0 lots" in too_early.stdout
    first = ann.ok("activate", "--now", "2024-03-16T00:00:00Z")
    assert "activated 179 points in 2 lots" in first.stdout
    after = snapshot(ann.db)
    assert "activated 0 points" in ann.ok("activate", "--now", "2024-03-17T00:00:00Z").stdout
    assert snapshot(ann.db) == after
    assert "│ 179       │ 0       │" in ann.ok("member", "show", "ann").stdout


def test_expiry_is_done_once(ann: Cli):
    ann.ok("activate", "--now", "2024-03-16T00:00:00Z")
    assert "expired 0 points" in ann.ok("expire", "--now", "2025-02-28T00:00:00Z").stdout
    assert "expired 179 points in 2 lots" in ann.ok("expire", "--now", "2025-03-02T00:00:00Z").stdout
    after = snapshot(ann.db)
    assert "expired 0 points" in ann.ok("expire", "--now", "2025-03-03T00:00:00Z", "--program", "default").stdout
    assert snapshot(ann.db) == after
    shown = ann.ok("member", "show", "ann").stdout
    assert "No open lots." in shown
    assert "expire" in shown


def test_a_member_that_does_not_exist_is_named(ann: Cli):
    result = ann("member", "show", "nobody")
    assert result.exit_code == 1
    assert "nobody" in result.stderr
    assert result.stderr.startswith("error: member_id:")


def test_a_bad_time_is_a_usage_error_and_runs_nothing(ann: Cli):
    before = snapshot(ann.db)
    not_a_time = ann("expire", "--now", "tomorrow")
    assert not_a_time.exit_code == 2
    assert "error: --now: not an ISO 8601 time: 'tomorrow'" in not_a_time.stderr
    no_zone = ann("activate", "--now", "2030-01-01T00:00")
    assert no_zone.exit_code == 2
    assert "error: --now: '2030-01-01T00:00' has no time zone" in no_zone.stderr
    assert snapshot(ann.db) == before


def test_a_job_for_an_unknown_program_runs_nothing(ann: Cli):
    before = snapshot(ann.db)
    result = ann("activate", "--now", "2030-01-01T00:00Z", "--program", "nope")
    assert result.exit_code == 1
    assert "error: program: no program 'nope'" in result.stderr
    assert snapshot(ann.db) == before
