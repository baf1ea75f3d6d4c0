"""The earning engine: a pure function of (program version, member state, event) -> decision.

Live ingestion, bulk import, dry runs and the simulator all call `decide`, so a what-if is exactly what
production would do. It never reads a clock, a database or a random source.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from patron.domain.calendar import expires_at, period_key
from patron.domain.events import Custom, Purchase, Refund, Signup, as_expression_context, rule_trigger
from patron.domain.expressions import Expression, ExpressionError
from patron.domain.ledger import Account, Lot, LotDebit, LotStatus, Posting, balanced, spending_order, take_from
from patron.domain.program import (
    EXPRESSION_VARIABLES,
    EarnRule,
    Fixed,
    Formula,
    PerCurrencyUnit,
    ProgramDocument,
    RefundShortfall,
)

AnyEvent = Purchase | Refund | Signup | Custom


class EventRejected(ValueError):
    """The event cannot be applied as sent; `field` names the part of the event at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: EarnRule
    when: Expression | None
    formula: Expression | None


# For each expression variable, the fields some rule reads (None: it may read any).
ContextShape = Mapping[str, frozenset[str] | None]


@dataclass(frozen=True)
class CompiledProgram:
    """A published program version, with its expressions compiled once."""

    version: int
    document: ProgramDocument
    zone: ZoneInfo
    rules_by_trigger: Mapping[str, tuple[CompiledRule, ...]]
    context_shapes: Mapping[str, ContextShape]

    @classmethod
    def compile(cls, document: ProgramDocument, version: int) -> "CompiledProgram":
        def compiled(source: str | None) -> Expression | None:
            if source is None:
                return None
            return Expression.compile(source, allowed_variables=EXPRESSION_VARIABLES)

        by_trigger: dict[str, list[CompiledRule]] = {}
        for rule in sorted(document.rules, key=lambda r: (r.priority, r.id)):
            formula = compiled(rule.points.expression) if isinstance(rule.points, Formula) else None
            by_trigger.setdefault(rule.event, []).append(CompiledRule(rule, compiled(rule.when), formula))
        shapes = {trigger: _context_shape(rules) for trigger, rules in by_trigger.items()}
        return cls(version, document, ZoneInfo(document.timezone), {k: tuple(v) for k, v in by_trigger.items()}, shapes)


def _context_shape(rules: list[CompiledRule]) -> ContextShape:
    shape: dict[str, frozenset[str] | None] = {}
    for expression in (e for rule in rules for e in (rule.when, rule.formula) if e is not None):
        for variable in EXPRESSION_VARIABLES:
            fields = expression.fields_of(variable)
            if fields is None or shape.get(variable, frozenset()) is None:
                shape[variable] = None
            else:
                shape[variable] = (shape.get(variable) or frozenset()) | fields
    return shape


@dataclass(frozen=True, slots=True)
class Usage:
    times: int = 0
    points: int = 0


@dataclass(frozen=True, slots=True)
class OrderRecord:
    order_id: str
    total: Decimal
    earned: int
    refunded: Decimal = Decimal(0)
    clawed_back: int = 0


@dataclass(frozen=True, slots=True)
class MemberState:
    member_id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    usage: Mapping[tuple[str, str], Usage] = field(default_factory=dict)  # (rule id, period key)
    owed: int = 0  # points clawed back after they were spent, still to be settled
    order: OrderRecord | None = None  # the order this event's order_id names, if already known
    lots: tuple[Lot, ...] = ()  # open lots; only refunds need them


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    rule_id: str
    fired: bool
    points: int
    reason: str


@dataclass(frozen=True, slots=True)
class NewLot:
    points: int
    pending: bool
    available_at: datetime
    expires_at: datetime | None
    order_id: str | None


@dataclass(frozen=True, slots=True)
class UsageIncrement:
    rule_id: str
    period_key: str
    times: int
    points: int


@dataclass(frozen=True, slots=True)
class OrderChange:
    """For a purchase: the order as recorded. For a refund: what this refund adds to the order's totals."""

    order_id: str
    total: Decimal
    earned: int
    refunded: Decimal
    clawed_back: int


@dataclass(frozen=True, slots=True)
class Decision:
    event_type: str
    program_version: int
    points: int  # earned (positive) or clawed back (negative), across all accounts
    outcomes: tuple[RuleOutcome, ...] = ()
    postings: tuple[Posting, ...] = ()
    new_lots: tuple[NewLot, ...] = ()
    lot_debits: tuple[LotDebit, ...] = ()
    usage: tuple[UsageIncrement, ...] = ()
    order: OrderChange | None = None
    notes: tuple[str, ...] = ()

    @property
    def pending_points(self) -> int:
        return sum(lot.points for lot in self.new_lots if lot.pending)


def decide(program: CompiledProgram, member: MemberState, event: AnyEvent) -> Decision:
    if isinstance(event, Refund):
        return _decide_refund(program, member, event)
    if isinstance(event, Purchase) and member.order is not None:
        raise EventRejected("order_id", f"order {event.order_id!r} was already reported by another event")
    return _decide_earn(program, member, event)


def _decide_earn(program: CompiledProgram, member: MemberState, event: Purchase | Signup | Custom) -> Decision:
    trigger = rule_trigger(event)
    rules = program.rules_by_trigger.get(trigger, ())
    context = _LazyContext(event, member, program.context_shapes.get(trigger, {}))
    outcomes: list[RuleOutcome] = []
    usage: list[UsageIncrement] = []
    pending_points = immediate_points = 0
    stopped_by: str | None = None
    for compiled in rules:
        rule = compiled.rule
        if stopped_by is not None:
            outcomes.append(RuleOutcome(rule.id, False, 0, f"skipped: rule {stopped_by!r} stops later rules"))
            continue
        try:
            if compiled.when is not None and not compiled.when.is_true(context.value):
                outcomes.append(RuleOutcome(rule.id, False, 0, f"condition not met: {rule.when}"))
                continue
            points = _rule_points(program, compiled, event, context)
        except ExpressionError as exc:
            outcomes.append(RuleOutcome(rule.id, False, 0, f"expression failed: {exc}"))
            continue
        points, cap_reason, increments = _apply_caps(program, rule, member.usage, event.occurred_at, points)
        if points <= 0:
            outcomes.append(RuleOutcome(rule.id, False, 0, cap_reason or "earns 0 points"))
            continue
        usage.extend(increments)
        outcomes.append(RuleOutcome(rule.id, True, points, cap_reason or "fired"))
        if rule.waits_for_return_window and program.document.pending_days > 0:
            pending_points += points
        else:
            immediate_points += points
        if rule.stop_after:
            stopped_by = rule.id

    order_id = event.order_id if isinstance(event, Purchase) else None
    lots, postings, notes = _earn_postings(
        program, member, event.occurred_at, order_id, pending_points, immediate_points
    )
    order = None
    if isinstance(event, Purchase):
        order = OrderChange(event.order_id, event.total, pending_points + immediate_points, Decimal(0), 0)
    return Decision(
        event_type=event.type,
        program_version=program.version,
        points=pending_points + immediate_points,
        outcomes=tuple(outcomes),
        postings=balanced(postings),
        new_lots=tuple(lots),
        usage=tuple(usage),
        order=order,
        notes=tuple(notes),
    )


def _rule_points(program: CompiledProgram, compiled: CompiledRule, event: AnyEvent, context: "_LazyContext") -> int:
    rule, spec = compiled.rule, compiled.rule.points
    if isinstance(spec, Fixed):
        base = Decimal(spec.fixed)
    elif isinstance(spec, Formula):
        assert compiled.formula is not None
        base = Decimal(compiled.formula.integer(context.value))
    else:
        assert isinstance(event, Purchase)  # the program document refuses per-unit points on other events
        rate = spec.per_currency_unit if isinstance(spec, PerCurrencyUnit) else program.document.earning.points_per_unit
        base = event.total * rate
    return program.document.earning.rounding.to_points(base * rule.multiplier)


def _apply_caps(
    program: CompiledProgram,
    rule: EarnRule,
    used: Mapping[tuple[str, str], Usage],
    occurred_at: datetime,
    points: int,
) -> tuple[int, str | None, list[UsageIncrement]]:
    if not rule.caps:
        return points, None, []
    reason: str | None = None
    keys = []
    for cap in rule.caps:
        key = period_key(cap.period, occurred_at, program.zone)
        so_far = used.get((rule.id, key), Usage())
        keys.append(key)
        if cap.max_times is not None and so_far.times >= cap.max_times:
            return 0, f"cap reached: {cap.max_times} time(s) per {cap.period.value}", []
        if cap.max_points is not None and so_far.points + points > cap.max_points:
            points = max(cap.max_points - so_far.points, 0)
            reason = f"capped at {cap.max_points} points per {cap.period.value}"
            if points == 0:
                return 0, f"cap reached: {cap.max_points} points per {cap.period.value}", []
    increments = [UsageIncrement(rule.id, key, 1, points) for key in dict.fromkeys(keys)]
    return points, reason, increments


def _earn_postings(
    program: CompiledProgram,
    member: MemberState,
    occurred_at: datetime,
    order_id: str | None,
    pending_points: int,
    immediate_points: int,
) -> tuple[list[NewLot], list[Posting], list[str]]:
    document = program.document
    expiry = expires_at(document.expiry, occurred_at, program.zone)
    lots: list[NewLot] = []
    postings = [Posting(Account.ISSUED, -(pending_points + immediate_points))]
    notes: list[str] = []
    if pending_points:
        available_at = occurred_at + timedelta(days=document.pending_days)
        lots.append(NewLot(pending_points, True, available_at, expiry, order_id))
        postings.append(Posting(Account.PENDING, pending_points))
    settled = min(member.owed, immediate_points)
    if settled:
        postings.append(Posting(Account.DEBT, settled))
        notes.append(f"{settled} points settle points owed from an earlier refund")
    if immediate_points - settled:
        lots.append(NewLot(immediate_points - settled, False, occurred_at, expiry, order_id))
        postings.append(Posting(Account.AVAILABLE, immediate_points - settled))
    return lots, postings, notes


def _decide_refund(program: CompiledProgram, member: MemberState, event: Refund) -> Decision:
    order = member.order
    if order is None:
        raise EventRejected("order_id", f"no purchase with order id {event.order_id!r} for this member")
    left = order.total - order.refunded
    if event.refunded > left:
        raise EventRejected(
            "amount" if event.amount is not None else "lines",
            f"refund of {event.refunded} exceeds the {left} not yet refunded on the order",
        )
    refunded_after = order.refunded + event.refunded
    # Cumulative proportion, so several partial refunds add up to exactly the order's points, never more.
    target = order.earned if order.total == 0 else int(order.earned * refunded_after / order.total)
    clawback = max(min(target, order.earned) - order.clawed_back, 0)

    own = [lot for lot in member.lots if lot.order_id == event.order_id and lot.remaining > 0]
    own_pending = [lot for lot in own if lot.status is LotStatus.PENDING]
    own_available = spending_order(own)
    others = [lot for lot in spending_order(member.lots) if lot.order_id != event.order_id]
    from_pending, missing = take_from(own_pending, clawback)
    from_available, missing = take_from(own_available + others, missing)

    taken_pending = sum(d.points for d in from_pending)
    taken_available = sum(d.points for d in from_available)
    postings = [
        Posting(Account.ISSUED, clawback),
        Posting(Account.PENDING, -taken_pending),
        Posting(Account.AVAILABLE, -taken_available),
    ]
    notes = []
    if missing:
        if program.document.refunds.shortfall is RefundShortfall.NEGATIVE_BALANCE:
            postings.append(Posting(Account.DEBT, -missing))
            notes.append(f"{missing} points were already spent: the member owes them, new points settle it")
        else:
            postings.append(Posting(Account.WRITE_OFF, -missing))
            notes.append(f"{missing} points were already spent: written off by the program's refund policy")
    return Decision(
        event_type=event.type,
        program_version=program.version,
        points=-clawback,
        outcomes=(
            RuleOutcome(
                "refund",
                clawback > 0,
                -clawback,
                f"claws back {clawback} of the {order.earned} points the order earned",
            ),
        ),
        postings=balanced(postings),
        lot_debits=tuple(from_pending + from_available),
        order=OrderChange(order.order_id, order.total, order.earned, event.refunded, clawback),
        notes=tuple(notes),
    )


class _LazyContext:
    """Builds the expression context only when a rule has an expression: most purchases need none."""

    __slots__ = ("_event", "_member", "_shape", "_value")

    def __init__(self, event: AnyEvent, member: MemberState, shape: ContextShape) -> None:
        self._event, self._member, self._shape = event, member, shape
        self._value: dict[str, Any] | None = None

    @property
    def value(self) -> dict[str, Any]:
        if self._value is None:
            self._value = {}
            event_fields = self._shape.get("event", frozenset())
            if event_fields != frozenset():
                self._value["event"] = as_expression_context(self._event, event_fields)
            member_fields = self._shape.get("member", frozenset())
            if member_fields != frozenset():
                member = {"id": self._member.member_id, "attributes": dict(self._member.attributes)}
                self._value["member"] = (
                    member if member_fields is None else {k: v for k, v in member.items() if k in member_fields}
                )
        return self._value
