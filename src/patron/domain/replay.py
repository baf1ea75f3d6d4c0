"""Applying decisions to member state in memory: what batch ingestion, the simulator and the engine benchmark
stand on.

`advance` does to a MemberState what the store does to the tables for one decision, so a replay in memory and
production agree: both call `decide` on the same state.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from itertools import count

from patron.domain.engine import (
    AnyEvent,
    CompiledProgram,
    Decision,
    MemberState,
    OrderChange,
    OrderRecord,
    Usage,
    decide,
)
from patron.domain.events import Purchase, Refund
from patron.domain.ledger import Account, Lot, LotStatus

# Enum members looked up once: reading one off its class costs more than the comparison on a hot path.
_PENDING, _AVAILABLE, _DEBT = LotStatus.PENDING, LotStatus.AVAILABLE, Account.DEBT


def advance(state: MemberState, event: AnyEvent, decision: Decision, new_lot_id: Callable[[], int]) -> MemberState:
    """The member's state after `decision` (rule usage, open lots, points owed). The order is not kept here."""
    usage = state.usage
    if decision.usage:
        usage = dict(usage)
        for inc in decision.usage:
            before = usage.get((inc.rule_id, inc.period_key), Usage())
            usage[(inc.rule_id, inc.period_key)] = Usage(before.times + inc.times, before.points + inc.points)
    lots = state.lots
    if decision.lot_debits:
        taken = {d.lot_id: d.points for d in decision.lot_debits}
        lots = tuple(replace(lot, remaining=lot.remaining - taken[lot.id]) if lot.id in taken else lot for lot in lots)
        lots = tuple(lot for lot in lots if lot.remaining > 0)
    if decision.new_lots:
        added = []
        for new in decision.new_lots:
            status = _PENDING if new.pending else _AVAILABLE
            added.append(
                Lot(
                    new_lot_id(),
                    new.points,
                    new.points,
                    status,
                    event.occurred_at,
                    new.expires_at,
                    new.order_id,
                    new.available_at,
                )
            )
        lots = (*lots, *added)
    owed = state.owed
    for posting in decision.postings:
        if posting.account is _DEBT:
            owed -= posting.amount
    progress = state.progress if decision.progress is None else decision.progress
    # Built directly rather than with dataclasses.replace, which costs more than the decision on a hot path.
    return MemberState(state.member_id, state.attributes, usage, owed, None, lots, progress, state.campaign_budgets)


def advance_order(known: OrderRecord | None, change: OrderChange) -> OrderRecord:
    if known is None:
        return OrderRecord(change.order_id, change.total, change.earned)
    return replace(known, refunded=known.refunded + change.refunded, clawed_back=known.clawed_back + change.clawed_back)


@dataclass
class ReplayTotals:
    events: int = 0
    points_earned: int = 0
    points_clawed_back: int = 0
    by_account: dict[Account, int] = field(default_factory=dict)


class Replay:
    """Events through the engine with no database: each member's state lives in memory."""

    def __init__(self, program: CompiledProgram) -> None:
        self.program = program
        self.members: dict[str, MemberState] = {}
        # The orders seen, each as the fields of its OrderRecord in a tuple (see `order`): a replay keeps one per
        # purchase, and the garbage collector stops looking at a tuple of strings and numbers, where it would scan
        # every OrderRecord again on each full collection (full collections were a fifth of a CDNOW replay's time;
        # without the records a replay of it needs one fewer).
        self.orders: dict[str, tuple[str, Decimal, int, Decimal, int]] = {}
        self.totals = ReplayTotals()
        self._lot_ids = count(1).__next__
        # Campaign budgets are shared by all members: points left per budgeted campaign.
        self.budgets = {c.id: c.budget_points for c in program.document.campaigns if c.budget_points is not None}

    def run(self, events: Iterable[AnyEvent]) -> ReplayTotals:
        for event in events:
            self.apply(event)
        return self.totals

    def order(self, order_id: str) -> OrderRecord | None:
        """The order as recorded so far, if seen."""
        kept = self.orders.get(order_id)
        return None if kept is None else OrderRecord(*kept)

    def apply(self, event: AnyEvent) -> Decision:
        # Every member's state shares the one budgets dict: the engine reads it, the replay spends from it.
        state = self.members.get(event.member_id) or MemberState(event.member_id, campaign_budgets=self.budgets)
        if isinstance(event, (Purchase, Refund)) and (kept := self.orders.get(event.order_id)) is not None:
            state = replace(state, order=OrderRecord(*kept))  # most purchases are of new orders: no record to build
        decision = decide(self.program, state, event)
        for campaign_id, points in decision.campaign_spend:
            if campaign_id in self.budgets:  # an unbudgeted campaign's points are spent too, from no budget
                self.budgets[campaign_id] -= points
        self.members[event.member_id] = advance(state, event, decision, self._lot_ids)
        if (change := decision.order) is not None:
            kept = self.orders.get(change.order_id)
            record = advance_order(None if kept is None else OrderRecord(*kept), change)
            self.orders[change.order_id] = (
                record.order_id,
                record.total,
                record.earned,
                record.refunded,
                record.clawed_back,
            )
        totals = self.totals
        totals.events += 1
        if decision.points >= 0:
            totals.points_earned += decision.points
        else:
            totals.points_clawed_back -= decision.points
        by_account = totals.by_account
        for posting in decision.postings:
            by_account[posting.account] = by_account.get(posting.account, 0) + posting.amount
        return decision
