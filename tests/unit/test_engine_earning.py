"""The earning engine: what a purchase, signup or custom event earns, and why."""

from datetime import timedelta
from decimal import Decimal

import pytest

from patron.domain.engine import EventRejected, OrderRecord, Usage, decide
from patron.domain.ledger import Account
from tests.unit.factories import T, custom, member, postings_of, program, purchase, signup

BASE_RULE = {"id": "base", "event": "purchase"}


def outcome(decision, rule_id):
    return next(o for o in decision.outcomes if o.rule_id == rule_id)


@pytest.mark.parametrize(
    ("rate", "rounding", "total", "expected"),
    [
        ("1", "floor", "10.99", 10),
        ("1", "half_up", "10.49", 10),
        ("1", "half_up", "10.50", 11),
        ("1", "ceiling", "10.01", 11),
        ("1", "ceiling", "10.00", 10),
        ("1.5", "floor", "3.33", 4),  # 4.995
        ("1.5", "half_up", "3.33", 5),
        ("1.5", "ceiling", "3.33", 5),
        ("0.1", "floor", "9.99", 0),  # 0.999: nothing
        ("0.1", "ceiling", "0.01", 1),
        ("10", "floor", "0.0999", 0),  # 0.999, money with four decimals
        ("1", "floor", "0", 0),
    ],
)
def test_earn_rate_and_rounding(rate, rounding, total, expected):
    compiled = program(earning={"points_per_unit": rate, "rounding": rounding}, rules=[BASE_RULE])
    decision = decide(compiled, member(), purchase(total))
    assert decision.points == expected
    assert sum(lot.points for lot in decision.new_lots) == expected


def test_rule_rate_overrides_the_program_rate():
    compiled = program(earning={"points_per_unit": "1"}, rules=[{**BASE_RULE, "points": {"per_currency_unit": "2.5"}}])
    assert decide(compiled, member(), purchase("10.10")).points == 25  # 25.25 floored


@pytest.mark.parametrize(
    ("rounding", "points", "multiplier", "total", "expected"),
    [
        ("floor", None, "1.5", "3.00", 4),  # 4.5, rounded once after the multiplier
        ("half_up", None, "1.5", "3.00", 5),
        ("floor", None, "2", "0.60", 1),  # 1.2: rounding the base first would give 0
        ("floor", {"fixed": 15}, "1.5", "1", 22),
        ("ceiling", {"fixed": 15}, "1.5", "1", 23),
        ("floor", {"expression": "event.item_count * 3"}, "2.5", "1", 7),  # 1 line * 3 * 2.5 = 7.5
    ],
)
def test_multiplier_applies_before_rounding(rounding, points, multiplier, total, expected):
    rule = {**BASE_RULE, "multiplier": multiplier}
    if points is not None:
        rule["points"] = points
    compiled = program(earning={"rounding": rounding}, rules=[rule])
    lines = ({"sku": "A", "unit_price": total},)
    assert decide(compiled, member(), purchase(total, lines=lines)).points == expected


def test_a_zero_total_earns_nothing_and_posts_nothing():
    compiled = program(rules=[BASE_RULE])
    decision = decide(compiled, member(), purchase("0"))
    assert decision.points == 0
    assert decision.postings == ()
    assert decision.new_lots == ()
    assert outcome(decision, "base").fired is False
    assert outcome(decision, "base").reason == "earns 0 points"
    assert decision.order is not None
    assert (decision.order.order_id, decision.order.earned) == ("o1", 0)  # the order is still recorded


def test_rules_run_by_priority_then_id_and_all_that_match_add_up():
    compiled = program(
        rules=[
            {"id": "zeta", "event": "purchase", "points": {"fixed": 1}, "priority": 5},
            {"id": "beta", "event": "purchase", "points": {"fixed": 10}},
            {"id": "alpha", "event": "purchase", "points": {"fixed": 100}},
            {"id": "first", "event": "purchase", "points": {"fixed": 1000}, "priority": 1},
        ]
    )
    decision = decide(compiled, member(), purchase())
    assert [o.rule_id for o in decision.outcomes] == ["first", "zeta", "alpha", "beta"]
    assert decision.points == 1111


def bonus_rules(**stopper):
    return [
        {"id": "base", "event": "purchase", "priority": 20},
        {
            "id": "vip",
            "event": "purchase",
            "priority": 10,
            "when": "event.total_minor >= 5000",
            "points": {"fixed": 500},
            "stop_after": True,
            **stopper,
        },
    ]


def test_stop_after_skips_later_rules_when_it_fires():
    compiled = program(rules=bonus_rules())
    decision = decide(compiled, member(), purchase("50.00"))
    assert decision.points == 500
    skipped = outcome(decision, "base")
    assert (skipped.fired, skipped.points) == (False, 0)
    assert skipped.reason == "skipped: rule 'vip' stops later rules"


def test_stop_after_does_nothing_when_its_rule_does_not_fire():
    compiled = program(rules=bonus_rules())
    decision = decide(compiled, member(), purchase("49.99"))
    assert decision.points == 49
    assert outcome(decision, "vip").reason == "condition not met: event.total_minor >= 5000"
    assert outcome(decision, "base").fired is True


def test_stop_after_does_nothing_when_its_rule_is_capped_to_zero():
    compiled = program(rules=bonus_rules(caps=[{"period": "lifetime", "max_times": 1}]))
    used = member(usage={("vip", "lifetime"): Usage(1, 500)})
    decision = decide(compiled, used, purchase("50.00"))
    assert decision.points == 50
    assert outcome(decision, "vip").reason == "cap reached: 1 time(s) per lifetime"


@pytest.mark.parametrize(("total", "fires"), [("100.00", True), ("99.99", False), ("99.9949", False)])
def test_condition_on_the_total_in_minor_units(total, fires):
    compiled = program(rules=[{**BASE_RULE, "when": "event.total_minor >= 10000", "points": {"fixed": 50}}])
    decision = decide(compiled, member(), purchase(total))
    assert outcome(decision, "base").fired is fires
    assert decision.points == (50 if fires else 0)


VINYL_LINES = (
    {"sku": "LP-1", "category": "vinyl", "quantity": 2, "unit_price": "20.00"},
    {"sku": "CD-1", "category": "cd", "unit_price": "9.99"},
)


@pytest.mark.parametrize(
    ("when", "lines", "fires"),
    [
        ('event.lines.exists(l, l.category == "vinyl")', VINYL_LINES, True),
        ('event.lines.exists(l, l.category == "vinyl")', VINYL_LINES[1:], False),
        ("event.lines.all(line, line.quantity >= 2)", VINYL_LINES, False),
        ('event.lines.filter(x, x.category == "vinyl").size() == 1', VINYL_LINES, True),
        ("event.item_count >= 3", VINYL_LINES, True),
        ("event.item_count >= 3", VINYL_LINES[1:], False),
        ('size(event.lines) == 2 && event.lines[0].sku == "LP-1"', VINYL_LINES, True),
    ],
)
def test_conditions_on_order_lines(when, lines, fires):
    compiled = program(rules=[{**BASE_RULE, "when": when, "points": {"fixed": 7}}])
    decision = decide(compiled, member(), purchase("49.99", lines=lines))
    assert outcome(decision, "base").fired is fires


def test_points_from_an_expression_over_lines():
    rule = {
        **BASE_RULE,
        "points": {"expression": 'event.lines.filter(x, x.category == "vinyl").map(x, x.quantity * 25)[0]'},
    }
    decision = decide(program(rules=[rule]), member(), purchase("49.99", lines=VINYL_LINES))
    assert decision.points == 50


@pytest.mark.parametrize(
    ("attributes", "fires"),
    [({"tier": "gold"}, True), ({"tier": "silver"}, False), ({}, False)],
)
def test_conditions_on_member_attributes(attributes, fires):
    rule = {
        **BASE_RULE,
        "when": 'has(member.attributes.tier) && member.attributes.tier == "gold"',
        "points": {"fixed": 10},
    }
    decision = decide(program(rules=[rule]), member(attributes=attributes), purchase())
    assert outcome(decision, "base").fired is fires


def test_a_failing_expression_is_explained_not_raised_and_other_rules_still_run():
    compiled = program(
        rules=[
            {"id": "broken", "event": "purchase", "when": 'member.attributes.tier == "gold"', "points": {"fixed": 5}},
            {"id": "base", "event": "purchase"},
        ]
    )
    decision = decide(compiled, member(attributes={}), purchase("12.00"))
    broken = outcome(decision, "broken")
    assert broken.fired is False
    assert broken.reason.startswith("expression failed:")
    assert decision.points == 12


@pytest.mark.parametrize(
    ("expression", "reason_part"),
    [
        ("event.total_minor > 0", "must give a whole number of points"),  # a bool is not a number of points
        ('"ten"', "must give a whole number of points"),
        ("event.total_minor / 0", "expression failed"),
    ],
)
def test_an_expression_of_the_wrong_kind_earns_nothing(expression, reason_part):
    rule = {**BASE_RULE, "points": {"expression": expression}}
    decision = decide(program(rules=[rule]), member(), purchase())
    assert decision.points == 0
    assert reason_part in outcome(decision, "base").reason


def test_a_condition_must_be_true_or_false():
    rule = {**BASE_RULE, "when": "event.total_minor", "points": {"fixed": 5}}
    decision = decide(program(rules=[rule]), member(), purchase())
    assert decision.points == 0
    assert "must be true or false" in outcome(decision, "base").reason


def test_a_negative_expression_never_takes_points():
    rule = {**BASE_RULE, "points": {"expression": "100 - event.total_minor"}}
    decision = decide(program(rules=[rule]), member(), purchase("5.00"))  # 100 - 500
    assert decision.points == 0
    assert decision.postings == ()
    assert outcome(decision, "base").fired is False


def test_expression_points_use_integer_minor_units():
    rule = {**BASE_RULE, "points": {"expression": "event.total_minor / 100 * 2"}}
    assert decide(program(rules=[rule]), member(), purchase("12.99")).points == 24  # 1299 / 100 = 12


def test_custom_events_match_rules_by_name_and_read_their_attributes():
    compiled = program(
        rules=[
            {"id": "review", "event": "review", "points": {"fixed": 20}},
            {"id": "great-review", "event": "review", "when": "event.attributes.stars >= 4", "points": {"fixed": 5}},
            {"id": "share", "event": "share", "points": {"fixed": 3}},
        ]
    )
    assert decide(compiled, member(), custom("review", stars=5)).points == 25
    assert decide(compiled, member(), custom("review", stars=2)).points == 20
    assert decide(compiled, member(), custom("share")).points == 3
    nothing = decide(compiled, member(), custom("survey"))
    assert (nothing.points, nothing.outcomes, nothing.postings) == (0, (), ())


def test_rules_of_other_events_do_not_fire():
    compiled = program(rules=[{"id": "welcome", "event": "signup", "points": {"fixed": 100}}, BASE_RULE])
    assert [o.rule_id for o in decide(compiled, member(), signup()).outcomes] == ["welcome"]
    assert [o.rule_id for o in decide(compiled, member(), purchase()).outcomes] == ["base"]


def test_the_explanation_says_why_each_rule_fired_or_not():
    compiled = program(
        rules=[
            {"id": "base", "event": "purchase"},
            {"id": "big", "event": "purchase", "when": "event.total_minor >= 10000", "points": {"fixed": 50}},
            {"id": "zero", "event": "purchase", "points": {"expression": "0"}},
        ]
    )
    decision = decide(compiled, member(), purchase("20.00"))
    assert {o.rule_id: (o.fired, o.points, o.reason) for o in decision.outcomes} == {
        "base": (True, 20, "fired"),
        "big": (False, 0, "condition not met: event.total_minor >= 10000"),
        "zero": (False, 0, "earns 0 points"),
    }


# --- pending and immediate points ---------------------------------------------------------------------------


def test_purchase_points_wait_for_the_return_window():
    compiled = program(pending_days=14, rules=[BASE_RULE])
    decision = decide(compiled, member(), purchase("30.00"))
    assert decision.pending_points == 30
    assert postings_of(decision) == {Account.ISSUED: -30, Account.PENDING: 30}
    (new,) = decision.new_lots
    assert (new.points, new.pending, new.available_at, new.order_id) == (30, True, T + timedelta(days=14), "o1")


def test_signup_and_custom_points_are_immediate_unless_the_rule_says_pending():
    compiled = program(
        pending_days=14,
        rules=[
            {"id": "welcome", "event": "signup", "points": {"fixed": 100}},
            {"id": "review", "event": "review", "points": {"fixed": 20}, "pending": True},
        ],
    )
    welcome = decide(compiled, member(), signup())
    assert postings_of(welcome) == {Account.ISSUED: -100, Account.AVAILABLE: 100}
    assert welcome.new_lots[0].available_at == T
    review = decide(compiled, member(), custom("review"))
    assert postings_of(review) == {Account.ISSUED: -20, Account.PENDING: 20}


def test_a_purchase_rule_may_pay_immediately_beside_a_pending_one():
    compiled = program(
        pending_days=14,
        rules=[BASE_RULE, {"id": "instant", "event": "purchase", "points": {"fixed": 5}, "pending": False}],
    )
    decision = decide(compiled, member(), purchase("30.00"))
    assert postings_of(decision) == {Account.ISSUED: -35, Account.PENDING: 30, Account.AVAILABLE: 5}
    assert sorted((lot.points, lot.pending) for lot in decision.new_lots) == [(5, False), (30, True)]
    assert {lot.order_id for lot in decision.new_lots} == {"o1"}


def test_without_a_return_window_purchase_points_are_immediate():
    decision = decide(program(pending_days=0, rules=[BASE_RULE]), member(), purchase("30.00"))
    assert decision.pending_points == 0
    assert postings_of(decision) == {Account.ISSUED: -30, Account.AVAILABLE: 30}


# --- debts from earlier refunds -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owed", "earned", "expected_postings", "lot_points"),
    [
        (30, 100, {Account.ISSUED: -100, Account.DEBT: 30, Account.AVAILABLE: 70}, [70]),
        (150, 100, {Account.ISSUED: -100, Account.DEBT: 100}, []),
        (100, 100, {Account.ISSUED: -100, Account.DEBT: 100}, []),
        (0, 100, {Account.ISSUED: -100, Account.AVAILABLE: 100}, [100]),
    ],
)
def test_immediate_points_settle_a_debt_first(owed, earned, expected_postings, lot_points):
    compiled = program(rules=[{"id": "welcome", "event": "signup", "points": {"fixed": earned}}])
    decision = decide(compiled, member(owed=owed), signup())
    assert decision.points == earned
    assert postings_of(decision) == expected_postings
    assert [lot.points for lot in decision.new_lots] == lot_points
    settled = min(owed, earned)
    assert decision.notes == ((f"{settled} points settle points owed from an earlier refund",) if settled else ())


def test_pending_points_do_not_settle_a_debt_until_they_activate():
    decision = decide(program(pending_days=14, rules=[BASE_RULE]), member(owed=40), purchase("30.00"))
    assert postings_of(decision) == {Account.ISSUED: -30, Account.PENDING: 30}


def test_an_order_id_is_reported_once():
    compiled = program(rules=[BASE_RULE])
    known = member(order=OrderRecord("o1", Decimal("10.00"), 10))
    with pytest.raises(EventRejected) as caught:
        decide(compiled, known, purchase("10.00"))
    assert caught.value.field == "order_id"


def test_the_decision_records_the_program_version_and_the_order():
    compiled = program(rules=[BASE_RULE])
    decision = decide(compiled, member(), purchase("12.34", order_id="A-1"))
    assert decision.program_version == 1
    assert decision.order is not None
    assert (decision.order.order_id, decision.order.total, decision.order.earned) == ("A-1", Decimal("12.34"), 12)


def test_decide_is_deterministic():
    compiled = program(pending_days=3, rules=bonus_rules())
    event = purchase("77.77", lines=VINYL_LINES)
    assert decide(compiled, member(), event) == decide(compiled, member(), event)
