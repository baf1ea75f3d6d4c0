"""`patron event send` and `patron referrals sign-up`: engagement events, purchases and referred sign-ups from
the command line, through the same services as the API, with a receipt; bad input names the option and writes
nothing."""

import json
from datetime import timedelta

import pytest

from patron.services import members, programs
from patron.services.clock import utcnow
from patron.store.tables import referrals as referral_rows
from tests.cli.conftest import Cli, count, snapshot
from tests.helpers import DEMO_PROGRAM

MEMBERS = "member_id,email\nann,ann@example.com\nbob,bob@example.com\nann2,ann@example.com\n"


@pytest.fixture
def demo(cli: Cli) -> Cli:
    """The demo program (every mechanic: engagement rules deduplicated by reference, surveys, referrals)."""
    cli.ok("init")
    cli.ok("program", "publish", str(DEMO_PROGRAM), "--effective-from", "1990-01-01T00:00Z")
    cli.ok("import", "members", cli.file("members.csv", MEMBERS))
    return cli


def an_hour_ago() -> str:
    return (utcnow() - timedelta(hours=1)).isoformat()


def rule_row(stdout: str, rule_id: str) -> str:
    rows = [line for line in stdout.splitlines() if line.startswith(f"│ {rule_id} ")]
    assert len(rows) == 1, stdout
    return rows[0]


def test_a_review_earns_once_per_review_id_and_a_resend_is_not_counted_twice(demo: Cli):
    at = an_hour_ago()
    sent = demo.ok("event", "send", "ann", "review", "--id", "rv-1", "--attr", "review_id=R1", "--at", at)
    assert "ann earned 20 points (0 pending) for review rv-1" in sent.stdout
    assert "balance: 20 available, 0 pending, 0 owed" in sent.stdout
    assert "│ yes   │ 20" in rule_row(sent.stdout, "review")

    after = snapshot(demo.db)
    again = demo.ok("event", "send", "ann", "review", "--id", "rv-1", "--attr", "review_id=R1", "--at", at)
    assert "already recorded" in again.stderr
    assert "ann earned 20 points" in again.stdout  # the first receipt
    assert snapshot(demo.db) == after

    same_review = demo.ok("event", "send", "ann", "review", "--id", "rv-2", "--attr", "review_id=R1", "--at", at)
    assert "ann earned 0 points" in same_review.stdout
    assert "already rewarded for review_id 'R1'" in rule_row(same_review.stdout, "review")


def test_engagement_events_each_earn_by_their_rule(demo: Cli):
    sends = {
        "social_share": ("social-share", ["--attr", "url=https://example.com/p/1"], 10),
        "follow": ("follow", [], 15),
        "newsletter": ("newsletter", [], 20),
        "profile_completion": ("profile-completion", [], 30),
    }
    for event_type, (rule_id, extra, points) in sends.items():
        sent = demo.ok("event", "send", "bob", event_type, "--id", f"e-{event_type}", *extra)
        assert f"bob earned {points} points" in sent.stdout
        assert f"│ yes   │ {points}" in rule_row(sent.stdout, rule_id)
    again = demo.ok("event", "send", "bob", "follow", "--id", "e-follow-2")
    assert "bob earned 0 points" in again.stdout  # a lifetime cap of once
    assert "│ no " in rule_row(again.stdout, "follow")


def test_a_survey_keeps_its_score_as_a_number(demo: Cli):
    sent = demo.ok("event", "send", "ann", "survey", "--id", "sv-1", "--attr", "survey_id=nps-q1", "--attr", "score=9")
    assert "ann earned 10 points" in sent.stdout
    with demo.db.read() as conn:
        view = members.view(conn, programs.program_id(conn, "default"), "ann", now=utcnow())
    assert view.recognition is not None
    assert view.recognition.scores == {"survey": 9}


def test_a_custom_event_no_rule_names_earns_nothing_and_says_so(demo: Cli):
    sent = demo.ok("event", "send", "ann", "store_visit", "--id", "v-1", "--attr", "store=soho", "--json")
    receipt = json.loads(sent.stdout)
    assert receipt["points"] == 0
    assert receipt["type"] == "custom"
    assert receipt["balance"] == {"available": 0, "pending": 0, "owed": 0}


def test_a_dry_run_says_what_a_purchase_would_earn_and_writes_nothing(demo: Cli):
    line = ["--line", "cup-m:frozen-yogurt:2:3.50", "--line", "lp-1:vinyl:1:93.00"]
    before = snapshot(demo.db)
    tried = demo.ok("event", "send", "ann", "purchase", "--order", "o1", *line, "--at", an_hour_ago(), "--dry-run")
    assert snapshot(demo.db) == before
    assert "ann would earn" in tried.stdout
    assert "nothing was written" in tried.stdout
    assert "card complete" not in tried.stdout
    assert "1 stamp(s): 1 of 9" in rule_row(tried.stdout, "stamp_card:froyo")
    assert "│ yes   │ 50" in rule_row(tried.stdout, "big-basket")  # 100.00 from the lines' sum

    sent = demo.ok("event", "send", "ann", "purchase", "--id", "p-o1", "--order", "o1", *line, "--json")
    receipt = json.loads(sent.stdout)
    assert receipt["pending_points"] == receipt["points"] > 0  # in the return window
    assert receipt["transaction_id"] is not None


def test_a_refund_through_the_cli_claws_the_points_back(demo: Cli):
    at = an_hour_ago()
    demo.ok("event", "send", "ann", "purchase", "--id", "p-o1", "--order", "o1", "--total", "50.00", "--at", at)
    refunded = demo.ok("event", "send", "ann", "refund", "--id", "r-o1", "--order", "o1", "--amount", "50.00")
    assert "balance: 0 available, 0 pending, 0 owed" in refunded.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["review", "--attr", "review_id=R1"], 2, "error: --id: give the event an id"),
        (["review", "--id", "x", "--order", "o1"], 2, "error: --order: a review event does not take --order"),
        (["purchase", "--id", "x", "--total", "5"], 2, "error: --order: required for this event type"),
        (["purchase", "--id", "x", "--order", "o1"], 2, "error: --total: give the amount paid"),
        (["purchase", "--id", "x", "--order", "o1", "--total", "ten"], 2, "error: --total: not an amount: 'ten'"),
        (["purchase", "--id", "x", "--order", "o1", "--total", "-1"], 1, "error: --total:"),
        (["purchase", "--id", "x", "--order", "o 1", "--total", "1"], 1, "error: --order:"),
        (["purchase", "--id", "x", "--order", "o1", "--line", "sku:b:2"], 2, "error: --line: 'sku:b:2' is not SKU"),
        (["purchase", "--id", "x", "--order", "o1", "--line", "a:b:0:1"], 2, "quantity: Input should be greater"),
        (["refund", "--id", "x", "--order", "o1"], 2, "error: --amount: give exactly one of --amount or --line"),
        (["review", "--id", "x", "--attr", "review_id"], 2, "error: --attr: 'review_id' is not KEY=VALUE"),
        (["Not A Type", "--id", "x"], 1, "error: TYPE:"),
        (["review", "--id", "x", "--at", "2026-01-01T00:00"], 2, "error: --at: '2026-01-01T00:00' has no time zone"),
        (["review", "--id", "x", "--at", "2999-01-01T00:00Z"], 1, "error: --at: 2999-01-01T00:00:00+00:00 is in the"),
        (["review", "--id", "x", "--program", "nope"], 1, "error: program: no program 'nope'"),
    ],
)
def test_bad_input_names_the_option_and_writes_nothing(demo: Cli, args: list[str], code: int, message: str):
    before = snapshot(demo.db)
    refused = demo("event", "send", "ann", *args)
    assert refused.exit_code == code, refused.stderr
    assert message in refused.stderr
    assert refused.stdout == ""
    assert snapshot(demo.db) == before


def test_an_unknown_member_and_a_reused_id_are_refused(demo: Cli):
    unknown = demo("event", "send", "nobody", "follow", "--id", "f-1")
    assert unknown.exit_code == 1
    assert "error: member_id: no member 'nobody'" in unknown.stderr
    demo.ok("event", "send", "ann", "follow", "--id", "f-1")
    before = snapshot(demo.db)
    reused = demo("event", "send", "ann", "newsletter", "--id", "f-1")
    assert reused.exit_code == 1
    assert reused.stderr.startswith("error: --id: ")
    assert "without --at the time is now" in reused.stderr
    assert snapshot(demo.db) == before


def test_a_referred_sign_up_and_its_first_purchase_reward_both_sides(demo: Cli):
    code = demo.ok("referrals", "code", "ann").stdout.strip()
    signed = demo.ok("referrals", "sign-up", "bob", code.lower(), "--ip", "203.0.113.9", "--fingerprint", "f" * 32)
    assert "bob signed up with ann's code: pending" in signed.stdout
    self_referral = demo.ok("referrals", "sign-up", "ann2", code)
    assert "not_eligible: self-referral: same email address as the referrer" in self_referral.stdout

    demo.ok("event", "send", "bob", "purchase", "--id", "p-b1", "--order", "b1", "--total", "25.00")
    listed = demo.ok("referrals", "list", "ann").stdout
    assert "rewarded" in next(line for line in listed.splitlines() if "│ bob " in line)
    with demo.db.read() as conn:
        program = programs.program_id(conn, "default")
        assert members.view(conn, program, "ann", now=utcnow()).balance.available == 200
        assert members.view(conn, program, "bob", now=utcnow()).balance.available == 100


def test_a_bad_sign_up_is_refused_with_its_field_and_writes_nothing(demo: Cli):
    code = demo.ok("referrals", "code", "ann").stdout.strip()
    before = snapshot(demo.db)
    for args, exit_code, message in (
        (["bob", "ZZZZZZZZ"], 1, "error: code: no referral code 'ZZZZZZZZ'"),
        (["ann", code], 1, "error: code: a member cannot use their own referral code"),
        (["nobody", code], 1, "error: member_id: no member 'nobody'"),
        (["bob", code, "--ip", "not an ip"], 2, "error: --ip: 'not an ip'"),
        (["bob", code, "--fingerprint", "4111 1111 1111 1111"], 2, "error: --fingerprint:"),
    ):
        refused = demo("referrals", "sign-up", *args)
        assert refused.exit_code == exit_code, refused.stderr
        assert message in refused.stderr
    assert snapshot(demo.db) == before
    demo.ok("referrals", "sign-up", "bob", code)
    twice = demo("referrals", "sign-up", "bob", code)
    assert twice.exit_code == 1
    assert "error: member_id: member 'bob' was already referred" in twice.stderr
    assert count(demo.db, referral_rows) == 1
