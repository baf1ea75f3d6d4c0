"""The ledger's values: balanced postings, the spending order of lots, and what a spend takes from each."""

from datetime import timedelta

import pytest

from patron.domain.ledger import (
    MEMBER_ACCOUNTS,
    Account,
    InsufficientPoints,
    LotDebit,
    LotStatus,
    Posting,
    UnbalancedTransaction,
    balanced,
    plan_spend,
    spending_order,
    take_from,
)
from tests.unit.factories import T, lot

DAY = timedelta(days=1)


def test_balanced_keeps_nonzero_postings_that_sum_to_zero():
    kept = balanced([Posting(Account.ISSUED, -10), Posting(Account.AVAILABLE, 10), Posting(Account.DEBT, 0)])
    assert kept == (Posting(Account.ISSUED, -10), Posting(Account.AVAILABLE, 10))


@pytest.mark.parametrize(
    "postings",
    [
        [Posting(Account.ISSUED, -10), Posting(Account.AVAILABLE, 9)],
        [Posting(Account.AVAILABLE, 1)],
        [Posting(Account.REDEEMED, 5), Posting(Account.AVAILABLE, 5)],
    ],
)
def test_unbalanced_postings_are_refused(postings):
    with pytest.raises(UnbalancedTransaction):
        balanced(postings)


def test_nothing_is_balanced():
    assert balanced([]) == ()


def test_member_and_program_accounts():
    assert {Account.AVAILABLE, Account.PENDING, Account.DEBT} == MEMBER_ACCOUNTS
    assert not Account.ISSUED.is_member_account
    assert Account.PENDING.is_member_account


def test_spending_order_is_first_to_expire_first_never_expiring_last():
    lots = [
        lot(1, 10, expires_at=None, earned_at=T - 10 * DAY),
        lot(2, 10, expires_at=T + 30 * DAY),
        lot(3, 10, expires_at=T + 5 * DAY),
        lot(4, 10, expires_at=None, earned_at=T - 20 * DAY),  # never expires, but older than lot 1
    ]
    assert [x.id for x in spending_order(lots)] == [3, 2, 4, 1]


def test_spending_order_breaks_ties_by_oldest_earned_then_id():
    same = T + 30 * DAY
    lots = [
        lot(9, 10, expires_at=same, earned_at=T),
        lot(8, 10, expires_at=same, earned_at=T),
        lot(7, 10, expires_at=same, earned_at=T + DAY),
        lot(6, 10, expires_at=same, earned_at=T - DAY),
    ]
    assert [x.id for x in spending_order(lots)] == [6, 8, 9, 7]


def test_spending_order_leaves_out_pending_expired_and_used_up_lots():
    lots = [
        lot(1, 10, status=LotStatus.PENDING, expires_at=T),
        lot(2, 0, points=10, status=LotStatus.EXPIRED, expires_at=T),
        lot(3, 0, points=10, expires_at=T),
        lot(4, 10, expires_at=T + DAY),
    ]
    assert [x.id for x in spending_order(lots)] == [4]


def test_plan_spend_takes_first_to_expire_first_and_splits_a_lot():
    lots = [lot(1, 50, expires_at=T + 30 * DAY), lot(2, 30, expires_at=T + 10 * DAY), lot(3, 40, expires_at=None)]
    assert plan_spend(lots, 60) == [LotDebit(2, 30), LotDebit(1, 30)]
    assert plan_spend(lots, 120) == [LotDebit(2, 30), LotDebit(1, 50), LotDebit(3, 40)]
    assert plan_spend(lots, 0) == []


def test_plan_spend_refuses_what_is_not_there_and_says_how_much_is():
    lots = [lot(1, 50), lot(2, 30, status=LotStatus.PENDING)]
    with pytest.raises(InsufficientPoints) as caught:
        plan_spend(lots, 51)
    assert (caught.value.needed, caught.value.available) == (51, 50)
    assert str(caught.value) == "needs 51 points, 50 available"


def test_take_from_reports_what_is_missing_in_the_given_order():
    lots = [lot(1, 5), lot(2, 0, points=9), lot(3, 7)]
    assert take_from(lots, 10) == ([LotDebit(1, 5), LotDebit(3, 5)], 0)
    assert take_from(lots, 20) == ([LotDebit(1, 5), LotDebit(3, 7)], 8)
    assert take_from([], 3) == ([], 3)
