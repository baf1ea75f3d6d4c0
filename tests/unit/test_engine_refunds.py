"""Refunds: proportional, cumulative clawback, taken from the order's own points first, shortfall by policy."""

from datetime import timedelta
from decimal import Decimal

import pytest

from patron.domain.engine import EventRejected, OrderRecord, decide
from patron.domain.ledger import Account, LotDebit, LotStatus
from patron.domain.replay import Replay
from tests.unit.factories import T, lot, member, postings_of, program, purchase, refund

RULES = [{"id": "base", "event": "purchase"}]


def order(total="100.00", earned=100, refunded="0", clawed_back=0, order_id="o1"):
    return OrderRecord(order_id, Decimal(total), earned, Decimal(refunded), clawed_back)


def own_lot(lot_id, remaining, **kw):
    return lot(lot_id, remaining, order_id="o1", **kw)


def test_refund_claws_back_in_proportion():
    compiled = program(rules=RULES)
    state = member(order=order(), lots=(own_lot(1, 100),))
    decision = decide(compiled, state, refund("25.00"))
    assert decision.points == -25
    assert postings_of(decision) == {Account.ISSUED: 25, Account.AVAILABLE: -25}
    assert decision.lot_debits == (LotDebit(1, 25),)
    assert decision.order is not None
    assert (decision.order.refunded, decision.order.clawed_back) == (Decimal("25.00"), 25)
    (outcome,) = decision.outcomes
    assert (outcome.rule_id, outcome.fired, outcome.points) == ("refund", True, -25)
    assert outcome.reason == "claws back 25 of the 100 points the order earned"


def test_partial_refunds_are_cumulative_and_add_up_to_exactly_what_the_order_earned():
    compiled = program(rules=RULES)
    total, earned = Decimal("99.99"), 99
    refunded, clawed = Decimal(0), 0
    steps = []
    for amount in ("30.00", "30.00", "39.99"):
        state = member(order=order(str(total), earned, str(refunded), clawed), lots=(own_lot(1, earned - clawed),))
        decision = decide(compiled, state, refund(amount))
        steps.append(-decision.points)
        refunded += Decimal(amount)
        clawed += -decision.points
    # floor(99 * 30 / 99.99) = 29, floor(99 * 60 / 99.99) = 59, then the rest. Rounding each refund on its own
    # would claw back 29 + 29 + 39 = 97 and leave the member 2 points of a fully refunded order.
    assert steps == [29, 30, 40]
    assert clawed == earned


def test_many_tiny_refunds_never_claw_back_more_than_earned():
    compiled = program(rules=RULES)
    total, earned = Decimal("10.00"), 7
    refunded, clawed = Decimal(0), 0
    for _ in range(1000):
        state = member(order=order(str(total), earned, str(refunded), clawed), lots=(own_lot(1, earned - clawed),))
        decision = decide(compiled, state, refund("0.01"))
        assert decision.points <= 0
        clawed -= decision.points
        refunded += Decimal("0.01")
        assert clawed <= earned
    assert refunded == total
    assert clawed == earned


def test_a_refund_too_small_to_claw_back_a_point_posts_nothing_but_counts():
    compiled = program(rules=RULES)
    decision = decide(compiled, member(order=order(), lots=(own_lot(1, 100),)), refund("0.50"))
    assert (decision.points, decision.postings, decision.lot_debits) == (0, (), ())
    assert decision.outcomes[0].fired is False
    assert decision.order is not None
    assert (decision.order.refunded, decision.order.clawed_back) == (Decimal("0.50"), 0)
    # the next half makes a whole point
    later = decide(compiled, member(order=order(refunded="0.50"), lots=(own_lot(1, 100),)), refund("0.50"))
    assert later.points == -1


def test_an_order_that_earned_nothing_claws_back_nothing():
    compiled = program(rules=RULES)
    decision = decide(compiled, member(order=order(earned=0)), refund("100.00"))
    assert (decision.points, decision.postings) == (0, ())


def test_an_order_already_fully_clawed_back_gives_nothing_more():
    compiled = program(rules=RULES)
    state = member(order=order(refunded="90.00", clawed_back=100), lots=(lot(5, 50),))
    decision = decide(compiled, state, refund("10.00"))
    assert (decision.points, decision.postings) == (0, ())


@pytest.mark.parametrize(
    ("already", "amount", "field"),
    [("0", "100.01", "amount"), ("60.00", "40.01", "amount"), ("100.00", "0.01", "amount")],
)
def test_over_refund_is_rejected_naming_the_field(already, amount, field):
    compiled = program(rules=RULES)
    with pytest.raises(EventRejected) as caught:
        decide(compiled, member(order=order(refunded=already), lots=(own_lot(1, 100),)), refund(amount))
    assert caught.value.field == field
    assert "exceeds" in caught.value.message


def test_refunded_lines_add_up_and_an_over_refund_by_lines_names_lines():
    compiled = program(rules=RULES)
    state = member(order=order(), lots=(own_lot(1, 100),))
    lines = ({"sku": "A", "quantity": 2, "unit_price": "10.00"}, {"sku": "B", "unit_price": "5.50"})
    assert decide(compiled, state, refund(lines=lines)).points == -25
    too_many = ({"sku": "A", "quantity": 11, "unit_price": "10.00"},)
    with pytest.raises(EventRejected) as caught:
        decide(compiled, state, refund(lines=too_many))
    assert caught.value.field == "lines"


def test_refund_of_an_unknown_order_is_rejected():
    with pytest.raises(EventRejected) as caught:
        decide(program(rules=RULES), member(), refund("1.00", order_id="nope"))
    assert caught.value.field == "order_id"
    assert "nope" in caught.value.message


def test_clawback_order_own_pending_then_own_lots_then_other_lots_first_to_expire():
    compiled = program(rules=RULES)
    soon, later = T + timedelta(days=10), T + timedelta(days=20)
    lots = (
        lot(1, 20, order_id="o2", expires_at=later),  # another order's points, expiring later
        own_lot(2, 10, points=40, expires_at=later),  # the order's own available points (30 already spent)
        lot(3, 50, order_id="o3", status=LotStatus.PENDING),  # another order's pending points: never touched
        lot(4, 20, expires_at=soon),  # an adjustment, expiring first
        own_lot(5, 60, status=LotStatus.PENDING),  # the order's own pending points
        lot(6, 30, expires_at=None),  # never expires: taken last
    )
    decision = decide(compiled, member(order=order(), lots=lots), refund("100.00"))
    assert decision.lot_debits == (LotDebit(5, 60), LotDebit(2, 10), LotDebit(4, 20), LotDebit(1, 10))
    assert postings_of(decision) == {Account.ISSUED: 100, Account.PENDING: -60, Account.AVAILABLE: -40}
    assert decision.notes == ()


def test_a_refund_before_activation_cancels_pending_points_only():
    compiled = program(pending_days=14, rules=RULES)
    lots = (own_lot(1, 100, status=LotStatus.PENDING), lot(2, 500))
    decision = decide(compiled, member(order=order(), lots=lots), refund("40.00"))
    assert decision.lot_debits == (LotDebit(1, 40),)
    assert postings_of(decision) == {Account.ISSUED: 40, Account.PENDING: -40}


@pytest.mark.parametrize(
    ("policy", "shortfall_account", "note"),
    [
        ("negative_balance", Account.DEBT, "70 points were already spent: the member owes them, new points settle it"),
        ("write_off", Account.WRITE_OFF, "70 points were already spent: written off by the program's refund policy"),
    ],
)
def test_points_already_spent_follow_the_refund_policy(policy, shortfall_account, note):
    compiled = program(refunds={"shortfall": policy}, rules=RULES)
    lots = (own_lot(1, 10, points=100), lot(2, 20, order_id="o2"))
    decision = decide(compiled, member(order=order(), lots=lots), refund("100.00"))
    assert decision.points == -100
    assert decision.lot_debits == (LotDebit(1, 10), LotDebit(2, 20))
    assert postings_of(decision) == {Account.ISSUED: 100, Account.AVAILABLE: -30, shortfall_account: -70}
    assert decision.notes == (note,)


def test_a_member_with_nothing_left_owes_it_all():
    compiled = program(rules=RULES)
    decision = decide(compiled, member(order=order(), owed=5), refund("50.00"))
    assert postings_of(decision) == {Account.ISSUED: 50, Account.DEBT: -50}


def test_a_purchase_after_a_refund_is_a_new_order():
    compiled = program(rules=RULES)
    assert decide(compiled, member(), purchase("20.00", order_id="o2")).points == 20


def test_a_replay_keeps_each_order_with_what_its_refunds_took_back():
    replay = Replay(program(rules=RULES))
    replay.apply(purchase("100.00"))
    replay.apply(refund("30.00"))
    replay.apply(refund("20.00", at=T + timedelta(hours=1)))
    assert replay.order("o1") == order(earned=100, refunded="50.00", clawed_back=50)
    assert replay.order("o2") is None
    with pytest.raises(EventRejected, match=r"exceeds the 50\.00 not yet refunded"):
        replay.apply(refund("50.01"))
