"""Double-entry postings and point lots, as values. Nothing here reads or writes storage.

Sign convention: a member account's balance is what the program owes the member (positive). Every transaction's
postings sum to zero, so the program accounts carry the other side (issued is negative as points go out).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from patron.domain.values import quick_init


class Account(StrEnum):
    # per member
    AVAILABLE = "available"
    PENDING = "pending"
    DEBT = "debt"  # negative while a member owes points clawed back after they were spent
    # per program
    ISSUED = "issued"
    REDEEMED = "redeemed"
    EXPIRED = "expired"
    ADJUSTMENTS = "adjustments"
    WRITE_OFF = "write_off"

    @property
    def is_member_account(self) -> bool:
        return self in MEMBER_ACCOUNTS


MEMBER_ACCOUNTS = frozenset({Account.AVAILABLE, Account.PENDING, Account.DEBT})


class UnbalancedTransaction(ValueError):
    pass


@quick_init
@dataclass(frozen=True, slots=True)
class Posting:
    account: Account
    amount: int  # signed points


def balanced(postings: Iterable[Posting]) -> tuple[Posting, ...]:
    """Drops zero postings and checks that the rest sum to zero."""
    # One plain loop: generator expressions cost more than the check on the engine's hot path.
    kept = []
    total = 0
    for posting in postings:
        if posting.amount != 0:
            kept.append(posting)
            total += posting.amount
    if total != 0:
        raise UnbalancedTransaction(f"postings do not sum to zero: {tuple(kept)}")
    return tuple(kept)


class LotStatus(StrEnum):
    """A lot whose remaining reaches zero is used up, whatever its status."""

    PENDING = "pending"
    AVAILABLE = "available"
    EXPIRED = "expired"


@quick_init
@dataclass(frozen=True, slots=True)
class Lot:
    """Points earned together, spent and expired together. remaining is what is left of points."""

    id: int
    points: int
    remaining: int
    status: LotStatus
    earned_at: datetime
    expires_at: datetime | None
    order_id: str | None = None
    available_at: datetime | None = None  # when a pending lot becomes available


@quick_init
@dataclass(frozen=True, slots=True)
class LotDebit:
    lot_id: int
    points: int


def spending_order(lots: Iterable[Lot]) -> list[Lot]:
    """First to expire first; never-expiring lots last; ties by oldest earned, then id."""
    return sorted(
        (lot for lot in lots if lot.status is LotStatus.AVAILABLE and lot.remaining > 0),
        key=lambda lot: (lot.expires_at is None, lot.expires_at or lot.earned_at, lot.earned_at, lot.id),
    )


class InsufficientPoints(ValueError):
    def __init__(self, needed: int, available: int) -> None:
        super().__init__(f"needs {needed} points, {available} available")
        self.needed = needed
        self.available = available


def take_from(lots: Sequence[Lot], points: int) -> tuple[list[LotDebit], int]:
    """Debits lots in the given order until `points` are covered; returns the debits and what is still missing."""
    debits: list[LotDebit] = []
    missing = points
    for lot in lots:
        if missing == 0:
            break
        taken = min(lot.remaining, missing)
        if taken > 0:
            debits.append(LotDebit(lot.id, taken))
            missing -= taken
    return debits, missing


def plan_spend(lots: Iterable[Lot], points: int) -> list[LotDebit]:
    """The lot debits for spending `points` first-to-expire-first.

    A member who owes points from a refund has no available lots left (new points settle the debt before they
    become available), so the lots alone say what can be spent.
    """
    ordered = spending_order(lots)
    spendable = sum(lot.remaining for lot in ordered)
    if points > spendable:
        raise InsufficientPoints(points, spendable)
    debits, _ = take_from(ordered, points)
    return debits
