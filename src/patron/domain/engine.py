"""The earning engine: a pure function of (program version, member state, event) -> decision.

Live ingestion, bulk import, dry runs and the simulator all call `decide`, so a what-if is exactly what
production would do. It never reads a clock, a database or a random source.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from patron.domain import tiers
from patron.domain.calendar import ExpiryRule, expiry_rule, period_key
from patron.domain.events import (
    Custom,
    Getter,
    OrderLine,
    Purchase,
    Refund,
    Signup,
    expression_getters,
    rule_trigger,
)
from patron.domain.expressions import Bindings, Expression, ExpressionError, Variables
from patron.domain.ledger import Account, Lot, LotDebit, LotStatus, Posting, balanced, spending_order, take_from
from patron.domain.program import (
    EXPRESSION_VARIABLES,
    Campaign,
    EarnRule,
    Fixed,
    Formula,
    PerCurrencyUnit,
    ProgramDocument,
    RefundShortfall,
    StampCard,
)
from patron.domain.progress import EMPTY, OpenCard, Progress, Stamp, StampedLine, StampedOrder, Tally
from patron.domain.tiers import TierChange
from patron.domain.values import quick_init

AnyEvent = Purchase | Refund | Signup | Custom
# Enum members looked up once: reading one off its class costs more than building the posting it goes in.
_ISSUED, _PENDING, _AVAILABLE, _DEBT = Account.ISSUED, Account.PENDING, Account.AVAILABLE, Account.DEBT
_NOTHING = Decimal(0)  # nothing refunded yet: one value rather than one per purchase
_KEPT_FAILURES = 16  # distinct failure outcomes remembered per rule
_KEPT_FIRED = 1024  # distinct amounts whose outcome is remembered per rule
_TWO_DAYS = timedelta(days=2)


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
    # Worked out once rather than per event: the outcome when the condition is not met, the points of a fixed
    # rule (multiplier and rounding applied), and whether its points wait the program's return window.
    unmet: "RuleOutcome | None" = None
    fixed_points: int | None = None
    pending: bool = False
    # The outcome for each way its condition failed, made once: a member without the attribute the condition reads
    # fails it the same way on every event. Bounded, as a failure's words may name a value.
    failures: dict[str, "RuleOutcome"] = field(default_factory=dict, compare=False, repr=False)
    # The outcome of firing for so many points (with no cap to explain), made once per amount. Bounded.
    fired: dict[int, "RuleOutcome"] = field(default_factory=dict, compare=False, repr=False)
    # Points per currency unit of a per-unit rule (its own rate or the program's), None for fixed and formula rules.
    rate: Decimal | None = None
    # The rule's multiplier, None when it is one: times one changes neither the value nor the rounding.
    multiplier: Decimal | None = None


@dataclass(frozen=True, slots=True)
class CompiledCard:
    card: StampCard
    when: Expression
    no_stamp: "RuleOutcome | None" = None  # the outcome for a purchase that earns no stamp


@dataclass(frozen=True, slots=True)
class CompiledCampaign:
    campaign: Campaign
    when: Expression | None


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
    cards: tuple[CompiledCard, ...] = ()
    campaigns: tuple[CompiledCampaign, ...] = ()
    # Whether decisions keep a member's Progress, and which parts of it: off for programs that need none, and
    # only the parts some mechanic reads otherwise, which keeps the hot path lean.
    tracks_progress: bool = False
    progress_needs: frozenset[str] = frozenset()
    shared_bindings: frozenset[str] = frozenset()  # triggers whose events meet several expressions
    # From the first campaign's start to the last one's end: outside it, no campaign can apply.
    campaign_span: tuple[datetime, datetime] | None = None
    # The span two days wider each way, in the program's time zone: an event's local time is compared with it as
    # wall clocks (one tzinfo: no UTC offset is worked out), and no zone's offset moves by two days, so an event
    # outside it is outside the span, which most events are.
    campaign_wall_span: tuple[datetime, datetime] | None = None
    # How to build the expression variables, per (trigger, event type): worked out on the first such event.
    context_plans: dict[tuple[str, type], "_ContextPlan"] = field(default_factory=dict, compare=False, repr=False)
    # Worked out once rather than per event: the return window, and the decimal rounding mode of earned points.
    pending_for: timedelta = timedelta(0)
    rounding_mode: str = ""
    expiry: ExpiryRule = field(default=lambda _, __: None, compare=False, repr=False)

    @classmethod
    def compile(cls, document: ProgramDocument, version: int) -> "CompiledProgram":
        def compiled(source: str | None) -> Expression | None:
            if source is None:
                return None
            return Expression.compile(source, allowed_variables=EXPRESSION_VARIABLES)

        by_trigger: dict[str, list[CompiledRule]] = {}
        rounding = document.earning.rounding
        for rule in sorted(document.rules, key=lambda r: (r.priority, r.id)):
            formula = compiled(rule.points.expression) if isinstance(rule.points, Formula) else None
            when = compiled(rule.when)
            by_trigger.setdefault(rule.event, []).append(
                CompiledRule(
                    rule,
                    when,
                    formula,
                    None if when is None else RuleOutcome(rule.id, False, 0, f"condition not met: {rule.when}"),
                    (
                        rounding.to_points(Decimal(rule.points.fixed) * rule.multiplier)
                        if isinstance(rule.points, Fixed)
                        else None
                    ),
                    rule.waits_for_return_window and document.pending_days > 0,
                    rate=(
                        None
                        if isinstance(rule.points, (Fixed, Formula))
                        else rule.points.per_currency_unit
                        if isinstance(rule.points, PerCurrencyUnit)
                        else document.earning.points_per_unit
                    ),
                    multiplier=None if rule.multiplier == 1 else rule.multiplier,
                )
            )
        cards = tuple(
            CompiledCard(
                card,
                Expression.compile(card.when, allowed_variables=EXPRESSION_VARIABLES),
                RuleOutcome(f"stamp_card:{card.id}", False, 0, f"no stamp: {card.when}"),
            )
            for card in document.stamp_cards
        )
        campaigns = tuple(
            CompiledCampaign(c, compiled(c.target.when))
            for c in sorted(document.campaigns, key=lambda c: (c.priority, c.id))
        )
        expressions: dict[str, list[Expression]] = {
            trigger: [e for rule in rules for e in (rule.when, rule.formula) if e is not None]
            for trigger, rules in by_trigger.items()
        }
        expressions.setdefault("purchase", []).extend(
            [c.when for c in cards] + [c.when for c in campaigns if c.when is not None]
        )
        shapes = {trigger: _context_shape(found) for trigger, found in expressions.items()}
        # Converting variables to CEL once pays off from two expressions CEL runs on; for one, a plain dict is
        # cheaper. Formulas always run on CEL; conditions only when the fast path cannot take them.
        formulas = {id(rule.formula) for rules in by_trigger.values() for rule in rules if rule.formula is not None}
        shared = frozenset(
            trigger
            for trigger, found in expressions.items()
            if sum(1 for e in found if e.fast is None or id(e) in formulas) >= 2
        )

        def read(variable: str, *fields: str) -> bool:
            return any(_reads(shape, variable, frozenset(fields)) for shape in shapes.values())

        wanted = {
            "tally": document.tiers is not None or read("member", "visits"),
            "purchases": document.recognition or read("member", "categories") or read("event", "new_categories"),
            "last_purchase": document.recognition or any(c.target.lapsed_days for c in document.campaigns),
            "tier": document.tiers is not None or read("member", "tier"),
            "cards": bool(cards),
            "references": any(rule.unique_by for rule in document.rules),
        }
        needs = frozenset(name for name, needed in wanted.items() if needed)
        zone = ZoneInfo(document.timezone)
        span, wall_span = _campaign_spans(document, zone)
        return cls(
            version,
            document,
            zone,
            {k: tuple(v) for k, v in by_trigger.items()},
            shapes,
            cards,
            campaigns,
            bool(needs),
            needs,
            shared,
            span,
            wall_span,
            pending_for=timedelta(days=document.pending_days),
            rounding_mode=rounding.decimal_mode,
            expiry=expiry_rule(document.expiry, zone),
        )


def _campaign_spans(
    document: ProgramDocument, zone: ZoneInfo
) -> tuple[tuple[datetime, datetime] | None, tuple[datetime, datetime] | None]:
    """From the first campaign's start to the last one's end, and the same two days wider each way in `zone` (see
    CompiledProgram.campaign_wall_span)."""
    if not document.campaigns:
        return None, None
    span = (min(c.starts_at for c in document.campaigns), max(c.ends_at for c in document.campaigns))
    try:
        # In UTC: an event's time in the program's zone compares with it at a fraction of the cost of comparing
        # with the document's parsed offsets.
        utc = (span[0].astimezone(UTC), span[1].astimezone(UTC))
        wall = (utc[0].astimezone(zone) - _TWO_DAYS, utc[1].astimezone(zone) + _TWO_DAYS)
    except OverflowError:  # a campaign at an end of the calendar: its span as written, and no shortcut
        return span, None
    return utc, wall


def _reads(shape: ContextShape, variable: str, fields: frozenset[str]) -> bool:
    read = shape.get(variable, frozenset())
    return read is None or bool(read & fields)


def _context_shape(expressions: list[Expression]) -> ContextShape:
    shape: dict[str, frozenset[str] | None] = {}
    for expression in expressions:
        for variable in EXPRESSION_VARIABLES:
            fields = expression.fields_of(variable)
            if fields is None or shape.get(variable, frozenset()) is None:
                shape[variable] = None
            else:
                shape[variable] = (shape.get(variable) or frozenset()) | fields
    return shape


@quick_init
@dataclass(frozen=True, slots=True)
class Usage:
    times: int = 0
    points: int = 0


@quick_init
@dataclass(frozen=True, slots=True)
class OrderRecord:
    order_id: str
    total: Decimal
    earned: int
    refunded: Decimal = Decimal(0)
    clawed_back: int = 0


@quick_init
@dataclass(frozen=True, slots=True)
class MemberState:
    member_id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    usage: Mapping[tuple[str, str], Usage] = field(default_factory=dict)  # (rule id, period key)
    owed: int = 0  # points clawed back after they were spent, still to be settled
    order: OrderRecord | None = None  # the order this event's order_id names, if already known
    lots: tuple[Lot, ...] = ()  # open lots; only refunds need them
    progress: Progress = EMPTY  # kept only when the program tracks progress (CompiledProgram.tracks_progress)
    campaign_budgets: Mapping[str, int] = field(default_factory=dict)  # points left, budgeted campaigns only


@quick_init
@dataclass(frozen=True, slots=True)
class RuleOutcome:
    rule_id: str
    fired: bool
    points: int
    reason: str


@quick_init
@dataclass(frozen=True, slots=True)
class NewLot:
    points: int
    pending: bool
    available_at: datetime
    expires_at: datetime | None
    order_id: str | None


@quick_init
@dataclass(frozen=True, slots=True)
class UsageIncrement:
    rule_id: str
    period_key: str
    times: int
    points: int


@quick_init
@dataclass(frozen=True, slots=True)
class OrderChange:
    """For a purchase: the order as recorded. For a refund: what this refund adds to the order's totals."""

    order_id: str
    total: Decimal
    earned: int
    refunded: Decimal
    clawed_back: int


@quick_init
@dataclass(frozen=True, slots=True)
class RewardGrant:
    """A reward given for free (a full stamp card, a campaign): the store issues its coupon."""

    reward_id: str
    reward_kind: str  # coupon or free_product
    source: str  # e.g. "stamp_card:froyo"
    reason: str


@quick_init
@dataclass(frozen=True, slots=True)
class Signal:
    """Something worth telling other systems about (webhooks), e.g. stamp_card.completed."""

    type: str
    data: Mapping[str, Any]


@quick_init
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
    progress: Progress | None = None  # the member's progress after the event, when the program tracks it
    tier_changes: tuple[TierChange, ...] = ()
    grants: tuple[RewardGrant, ...] = ()
    campaign_spend: tuple[tuple[str, int], ...] = ()  # (campaign id, points) drawn from budgets
    signals: tuple[Signal, ...] = ()

    @property
    def pending_points(self) -> int:
        return sum(lot.points for lot in self.new_lots if lot.pending)


def decide(program: CompiledProgram, member: MemberState, event: AnyEvent) -> Decision:
    # Purchases asked first: isinstance answering no costs an event model's metaclass check, yes costs nothing.
    if isinstance(event, Purchase):
        if member.order is not None:
            raise EventRejected("order_id", f"order {event.order_id!r} was already reported by another event")
        return _decide_earn(program, member, event)
    if isinstance(event, Refund):
        return _decide_refund(program, member, event)
    return _decide_earn(program, member, event)


def decide_occasion(program: CompiledProgram, member: MemberState, occasion: str, year: int, at: datetime) -> Decision:
    """A birthday or anniversary grant: the occasion's points (settling points owed first) and its reward."""
    document = program.document
    spec = document.birthday if occasion == "birthday" else document.anniversary
    if spec is None:
        raise EventRejected("occasion", f"the program gives nothing on a member's {occasion}")
    points = spec.points or 0
    outcomes = [RuleOutcome(occasion, True, points, f"{occasion} {year}")]
    grants = [] if spec.reward is None else [_grant(document, spec.reward, occasion, f"{occasion} {year}")]
    lots, postings, notes = _earn_postings(program, member, at, None, 0, points)
    return Decision(
        event_type=occasion,
        program_version=program.version,
        points=points,
        outcomes=tuple(outcomes),
        postings=postings,
        new_lots=tuple(lots),
        notes=tuple(notes),
        grants=tuple(grants),
    )


def _decide_earn(program: CompiledProgram, member: MemberState, event: Purchase | Signup | Custom) -> Decision:
    trigger = rule_trigger(event)
    rules = program.rules_by_trigger.get(trigger, ())
    document = program.document
    progress = member.progress
    tier_changes: list[TierChange] = []
    if document.tiers is not None and progress.tier is not None:  # without a tier there is nothing to review
        progress, tier_changes = tiers.review(
            document.tiers, progress, event.occurred_at, program.zone, document.currency
        )
    # The event's moment in the program's time zone, converted once for everything that reads it.
    local = event.occurred_at.astimezone(program.zone)
    context = _LazyContext(event, local, member.member_id, member.attributes, progress, program, trigger)
    outcomes: list[RuleOutcome] = []
    usage: list[UsageIncrement] = []
    references: list[str] = []
    pending_points = immediate_points = 0
    stopped_by: str | None = None
    variables: dict[str, Any] | None = None  # the expression variables, built for the first condition
    for compiled in rules:
        rule = compiled.rule
        if stopped_by is not None:
            outcomes.append(RuleOutcome(rule.id, False, 0, f"skipped: rule {stopped_by!r} stops later rules"))
            continue
        reference = None
        if rule.unique_by is not None:
            reference, refusal = _reference(rule, event, progress, references)
            if refusal is not None:
                outcomes.append(RuleOutcome(rule.id, False, 0, refusal))
                continue
        if compiled.when is not None:
            if variables is None:
                variables = context.value
            verdict = compiled.when.judge(variables, context.for_cel)
            if verdict is not True:
                assert compiled.unmet is not None
                if verdict is False:
                    outcomes.append(compiled.unmet)
                    continue
                failed = compiled.failures.get(verdict)
                if failed is None:
                    failed = RuleOutcome(rule.id, False, 0, f"expression failed: {verdict}")
                    if len(compiled.failures) < _KEPT_FAILURES:
                        compiled.failures[verdict] = failed
                outcomes.append(failed)
                continue
        try:
            points = compiled.fixed_points
            if points is None:
                points = _rule_points(program, compiled, event, context)
        except ExpressionError as exc:
            outcomes.append(RuleOutcome(rule.id, False, 0, f"expression failed: {exc}"))
            continue
        cap_reason = None
        if rule.caps:
            points, cap_reason, increments = _apply_caps(program, rule, member.usage, event.occurred_at, points)
        if points <= 0:
            outcomes.append(RuleOutcome(rule.id, False, 0, cap_reason or "earns 0 points"))
            continue
        if rule.caps:
            usage.extend(increments)
        if reference is not None:
            references.append(reference)
        if cap_reason is None:
            fired = compiled.fired.get(points)
            if fired is None:
                fired = RuleOutcome(rule.id, True, points, "fired")
                if len(compiled.fired) < _KEPT_FIRED:
                    compiled.fired[points] = fired
            outcomes.append(fired)
        else:
            outcomes.append(RuleOutcome(rule.id, True, points, cap_reason))
        if compiled.pending:
            pending_points += points
        else:
            immediate_points += points
        if rule.stop_after:
            stopped_by = rule.id

    grants: list[RewardGrant] = []
    signals: list[Signal] = []
    campaign_spend: list[tuple[str, int]] = []
    if isinstance(event, Purchase) and (document.tiers is not None or program.campaigns):
        extra = 0  # without a tier there is no tier bonus
        if progress.tier is not None:
            extra = _tier_bonus(program, progress, pending_points + immediate_points, outcomes)
        span, wall = program.campaign_span, program.campaign_wall_span
        # `local`: the same moment, quicker to compare
        if span is not None and (wall is None or wall[0] <= local < wall[1]) and span[0] <= local < span[1]:
            extra += _campaigns(
                program,
                member,
                progress,
                event,
                context,
                pending_points + immediate_points + extra,
                outcomes,
                grants,
                campaign_spend,
            )
        # Bonuses on a purchase wait the return window like the purchase's own points.
        if document.pending_days > 0:
            pending_points += extra
        else:
            immediate_points += extra
    new_progress = None
    if program.tracks_progress:
        new_progress = _progress_after(
            program, progress, event, context, pending_points + immediate_points, references, outcomes, grants, signals
        )
        if document.tiers is not None:
            new_progress, upgrades = tiers.upgrade(
                document.tiers, new_progress, event.occurred_at, program.zone, document.currency, local
            )
            tier_changes.extend(upgrades)
        if new_progress is member.progress:
            new_progress = None  # unchanged: nothing to write

    order_id = event.order_id if isinstance(event, Purchase) else None
    lots, postings, notes = _earn_postings(
        program, member, event.occurred_at, order_id, pending_points, immediate_points, local
    )
    if tier_changes:
        notes.extend(_tier_notes(document, tier_changes))
    order = None
    if isinstance(event, Purchase):
        order = OrderChange(event.order_id, event.total, pending_points + immediate_points, _NOTHING, 0)
    # Positional: keywords cost a decision more than a microsecond. The fields in Decision's order.
    return Decision(
        event.type,
        program.version,
        pending_points + immediate_points,
        tuple(outcomes),
        postings,
        tuple(lots),
        (),  # lot debits: only refunds take points back from lots
        tuple(usage) if usage else (),
        order,
        tuple(notes) if notes else (),
        new_progress,
        tuple(tier_changes) if tier_changes else (),
        tuple(grants) if grants else (),
        tuple(campaign_spend) if campaign_spend else (),
        tuple(signals) if signals else (),
    )


def _grant(document: ProgramDocument, reward_id: str, source: str, reason: str) -> RewardGrant:
    reward = document.reward(reward_id)
    assert reward is not None  # the program document refuses grants of rewards it does not have
    return RewardGrant(reward_id, reward.kind.value, source, reason)


def _tier_notes(document: ProgramDocument, changes: list[TierChange]) -> list[str]:
    if document.tiers is None or not changes:
        return []
    names = {level.id: level.name for level in document.tiers.levels}
    return [
        f"tier {names.get(c.from_tier or '', 'none')} -> {names.get(c.to_tier or '', 'none')}: {c.reason}"
        for c in changes
    ]


def _reference(
    rule: EarnRule, event: Purchase | Signup | Custom, progress: Progress, taken_now: list[str]
) -> tuple[str | None, str | None]:
    """The external reference a unique_by rule keys on, or why the rule cannot fire."""
    assert rule.unique_by is not None
    value = event.attributes.get(rule.unique_by) if isinstance(event, Custom) else None
    if value is None or value == "" or isinstance(value, bool):
        return None, f"needs the attribute {rule.unique_by!r} (the external reference) to fire"
    key = f"{rule.id}:{value}"
    if key in progress.references or key in taken_now:
        return None, f"already rewarded for {rule.unique_by} {value!r}"
    return key, None


def _tier_bonus(program: CompiledProgram, progress: Progress, base: int, outcomes: list[RuleOutcome]) -> int:
    document = program.document
    level = document.tiers.level(progress.tier) if document.tiers is not None else None
    if level is None or level.earn_multiplier == 1 or base <= 0:
        return 0
    extra = document.earning.rounding.to_points(Decimal(base) * (level.earn_multiplier - 1))
    if extra <= 0:
        return 0
    outcomes.append(
        RuleOutcome(f"tier:{level.id}", True, extra, f"{level.name} earns x{level.earn_multiplier} on purchases")
    )
    return extra


def _campaigns(
    program: CompiledProgram,
    member: MemberState,
    progress: Progress,
    event: Purchase,
    context: "_LazyContext",
    base: int,
    outcomes: list[RuleOutcome],
    grants: list[RewardGrant],
    spend: list[tuple[str, int]],
) -> int:
    """Running campaigns by priority: each targeted one adds its effect; an exclusive one applies only alone."""
    document = program.document
    total = 0
    applied: list[str] = []
    stopped_by: str | None = None
    for compiled in program.campaigns:
        campaign = compiled.campaign
        if not campaign.starts_at <= event.occurred_at < campaign.ends_at:
            continue
        rule_id = f"campaign:{campaign.id}"
        if stopped_by is not None:
            outcomes.append(RuleOutcome(rule_id, False, 0, f"skipped: exclusive campaign {stopped_by!r} applied"))
            continue
        refusal = _campaign_refusal(program, compiled, progress, event, context)
        if refusal is not None:
            outcomes.append(RuleOutcome(rule_id, False, 0, refusal))
            continue
        if campaign.exclusive and applied:
            outcomes.append(RuleOutcome(rule_id, False, 0, f"exclusive: not combined with {applied[0]!r}"))
            continue
        effect = campaign.effect
        points = effect.bonus_points or 0
        if effect.multiplier is not None:
            points += document.earning.rounding.to_points(Decimal(base) * (effect.multiplier - 1))
        points = max(points, 0)
        reason = "fired"
        left = member.campaign_budgets.get(campaign.id) if campaign.budget_points is not None else None
        if left is not None:
            left -= sum(p for c, p in spend if c == campaign.id)
            if left <= 0:
                outcomes.append(RuleOutcome(rule_id, False, 0, "stopped: its points budget is spent"))
                continue
            if points > left:
                points, reason = left, f"the last {left} points of its budget"
        if points:
            spend.append((campaign.id, points))
        if effect.reward is not None:
            grants.append(_grant(document, effect.reward, rule_id, f"campaign {campaign.name!r}"))
            reason += f"; gives reward {effect.reward!r}"
        outcomes.append(RuleOutcome(rule_id, True, points, reason))
        total += points
        applied.append(campaign.id)
        if campaign.exclusive:
            stopped_by = campaign.id
    return total


def _campaign_refusal(
    program: CompiledProgram,
    compiled: CompiledCampaign,
    progress: Progress,
    event: Purchase,
    context: "_LazyContext",
) -> str | None:
    target = compiled.campaign.target
    document = program.document
    tier_rules = document.tiers
    if (
        target.tier is not None
        and tier_rules is not None
        and tier_rules.rank(progress.tier) < tier_rules.rank(target.tier)
    ):
        return f"not targeted: for tier {target.tier!r} and above"
    if target.lapsed_days is not None:
        # A member who never bought is new, not lapsed: win-back offers are for those who came and stopped.
        last = progress.last_purchase_at
        if last is None or event.occurred_at - last < timedelta(days=target.lapsed_days):
            return f"not targeted: for members with no purchase in {target.lapsed_days} days"
    if compiled.when is not None:
        try:
            if not context.holds(compiled.when):
                return f"not targeted: {target.when}"
        except ExpressionError as exc:
            return f"expression failed: {exc}"
    return None


def _progress_after(
    program: CompiledProgram,
    progress: Progress,
    event: Purchase | Signup | Custom,
    context: "_LazyContext",
    points: int,
    references: list[str],
    outcomes: list[RuleOutcome],
    grants: list[RewardGrant],
    signals: list[Signal],
) -> Progress:
    """The member's progress after the event: only the parts some mechanic of the program reads are kept."""
    at = event.occurred_at
    needs = program.progress_needs
    categories, skus, cards, scores = progress.categories, progress.skus, progress.cards, progress.scores
    last_purchase = progress.last_purchase_at
    if isinstance(event, Purchase):
        spend, visits = event.total, 1
        if event.lines and "purchases" in needs:
            categories, skus = dict(categories), dict(skus)
            for line in event.lines:
                skus[line.sku] = skus.get(line.sku, 0) + line.quantity
                if line.category:
                    categories[line.category] = categories.get(line.category, 0) + line.quantity
        if program.cards:
            cards = _stamp(program, progress, event, context, outcomes, grants, signals)
        if "last_purchase" in needs:
            last_purchase = at
    else:
        spend, visits = _NOTHING, 0
        if isinstance(event, Custom):
            score = event.attributes.get("score")
            if isinstance(score, int) and not isinstance(score, bool):
                scores = {**scores, event.name: score}
    months, lifetime = progress.months, progress.lifetime
    # A purchase always counts (a visit); another event only when it earns points.
    if "tally" in needs and (points or isinstance(event, Purchase)):
        months, lifetime = tiers.counted(progress, context.local, points, spend, visits)
    seen = progress.references | frozenset(references) if references else progress.references
    unchanged = (
        months is progress.months
        and categories is progress.categories
        and cards is progress.cards
        and not (program.cards and isinstance(event, Purchase))  # a purchase under cards always wrote progress
        and last_purchase == progress.last_purchase_at
        and seen is progress.references
        and scores is progress.scores
    )
    if unchanged:
        return progress  # nothing this program keeps has changed: nothing to write
    # Built directly rather than with dataclasses.replace, which costs more than the decision on a hot path.
    return Progress(
        progress.tier,
        progress.tier_since,
        progress.reviewed_through,
        months,
        lifetime,
        cards,
        categories,
        skus,
        last_purchase,
        seen,
        scores,
    )


def _stamp(
    program: CompiledProgram,
    progress: Progress,
    event: Purchase,
    context: "_LazyContext",
    outcomes: list[RuleOutcome],
    grants: list[RewardGrant],
    signals: list[Signal],
) -> Mapping[str, OpenCard]:
    """Stamps each card whose condition the purchase meets; a full card gives its reward and a new card starts."""
    if not program.cards:
        return progress.cards
    cards = progress.cards
    stamped: dict[str, OpenCard] | None = None  # the cards copied when one is stamped: most purchases stamp none
    at = event.occurred_at
    for compiled in program.cards:
        card = compiled.card
        try:
            if not context.holds(compiled.when):
                assert compiled.no_stamp is not None
                outcomes.append(compiled.no_stamp)
                continue
        except ExpressionError as exc:
            outcomes.append(RuleOutcome(f"stamp_card:{card.id}", False, 0, f"expression failed: {exc}"))
            continue
        rule_id = f"stamp_card:{card.id}"
        current = cards.get(card.id)
        reasons = []
        if (
            current is not None
            and card.expires_after_days is not None
            and at >= current.started_at + timedelta(days=card.expires_after_days)
        ):
            reasons.append(f"the card with {current.count} stamp(s) expired; a new one starts")
            current = None
        if current is None or not current.count:
            # A card's clock starts at its first stamp, not when the last one was completed or refunded empty.
            current = OpenCard(at)
        count = current.count + card.stamps
        completed = 0
        while count >= card.size:
            count -= card.size
            completed += 1
            grants.append(_grant(program.document, card.reward, rule_id, f"{card.name} complete"))
            signals.append(
                Signal(
                    "stamp_card.completed",
                    {"card": card.id, "reward": card.reward, "order_id": event.order_id, "at": at.isoformat()},
                )
            )
        if completed:
            # The stamps that overflowed start the new card; a refund can no longer take back the full card's.
            current = OpenCard(at, (Stamp(event.order_id, count, _stamped_order(event)),) if count else ())
            reasons.append(
                f"card complete ({completed}x): reward {card.reward!r}; {count} of {card.size} on the new card"
            )
        else:
            current = OpenCard(
                current.started_at, (*current.stamps, Stamp(event.order_id, card.stamps, _stamped_order(event)))
            )
            reasons.append(f"{card.stamps} stamp(s): {count} of {card.size}")
        if stamped is None:
            stamped = dict(cards)
        stamped[card.id] = current
        outcomes.append(RuleOutcome(rule_id, True, 0, "; ".join(reasons)))
    return cards if stamped is None else stamped


def _stamped_order(event: Purchase) -> StampedOrder:
    lines = tuple(StampedLine(line.sku, line.category, line.quantity, line.unit_price) for line in event.lines)
    return StampedOrder(event.occurred_at, event.total, lines, event.channel, event.store)


def _rule_points(program: CompiledProgram, compiled: CompiledRule, event: AnyEvent, context: "_LazyContext") -> int:
    rate = compiled.rate
    if rate is not None:  # per unit, the most common rule: asked first
        assert isinstance(event, Purchase)  # the program document refuses per-unit points on other events
        base = event.total * rate
    else:
        spec = compiled.rule.points
        if isinstance(spec, Fixed):
            base = Decimal(spec.fixed)
        else:
            assert isinstance(spec, Formula)
            assert compiled.formula is not None
            base = Decimal(compiled.formula.integer(context.for_cel()))
    multiplier = compiled.multiplier  # None for most rules: they skip a Decimal product
    return int((base if multiplier is None else base * multiplier).to_integral_value(program.rounding_mode))


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
    local: datetime | None = None,
) -> tuple[list[NewLot], tuple[Posting, ...], list[str]]:
    """The new lots, the postings (balanced) and notes of earning so many points now and so many after the
    return window."""
    expiry = program.expiry(occurred_at, occurred_at.astimezone(program.zone) if local is None else local)
    lots: list[NewLot] = []
    notes: list[str] = []
    settled = min(member.owed, immediate_points)
    if pending_points and not immediate_points and not settled:  # a purchase under a return window: most events
        lots.append(NewLot(pending_points, True, occurred_at + program.pending_for, expiry, order_id))
        return lots, _waiting_postings(pending_points), notes
    postings = [Posting(_ISSUED, -(pending_points + immediate_points))]
    if pending_points:
        available_at = occurred_at + program.pending_for
        lots.append(NewLot(pending_points, True, available_at, expiry, order_id))
        postings.append(Posting(_PENDING, pending_points))
    if settled:
        postings.append(Posting(_DEBT, settled))
        notes.append(f"{settled} points settle points owed from an earlier refund")
    if immediate_points - settled:
        lots.append(NewLot(immediate_points - settled, False, occurred_at, expiry, order_id))
        postings.append(Posting(_AVAILABLE, immediate_points - settled))
    return lots, balanced(postings), notes


def _waiting_postings(points: int) -> tuple[Posting, ...]:
    """Issuing `points` to the pending account, made once per amount: postings are values, and most decisions post
    exactly these."""
    postings = _WAITING_POSTINGS.get(points)
    if postings is None:
        postings = balanced([Posting(_ISSUED, -points), Posting(_PENDING, points)])
        if len(_WAITING_POSTINGS) < 16_384:  # bounded: points per purchase are a few thousand amounts at most
            _WAITING_POSTINGS[points] = postings
    return postings


_WAITING_POSTINGS: dict[int, tuple[Posting, ...]] = {}


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
    outcomes = [
        RuleOutcome(
            "refund",
            clawback > 0,
            -clawback,
            f"claws back {clawback} of the {order.earned} points the order earned",
        )
    ]
    progress = None
    tier_changes: list[TierChange] = []
    if program.tracks_progress:
        progress, tier_changes = _progress_after_refund(
            program, member, event, clawback, refunded_after >= order.total, outcomes
        )
        if progress is member.progress:
            progress = None  # unchanged: nothing to write
        notes.extend(_tier_notes(program.document, tier_changes))
    return Decision(
        event_type=event.type,
        program_version=program.version,
        points=-clawback,
        outcomes=tuple(outcomes),
        postings=balanced(postings),
        lot_debits=tuple(from_pending + from_available),
        order=OrderChange(order.order_id, order.total, order.earned, event.refunded, clawback),
        notes=tuple(notes),
        progress=progress,
        tier_changes=tuple(tier_changes),
    )


def _progress_after_refund(
    program: CompiledProgram,
    member: MemberState,
    event: Refund,
    clawback: int,
    in_full: bool,
    outcomes: list[RuleOutcome],
) -> tuple[Progress, list[TierChange]]:
    """A refund takes back what the order counted towards tiers (never demoting at once: downgrades wait for the
    window's end), and the stamps it put on cards not yet complete when what remains of it no longer earns them."""
    document = program.document
    progress = member.progress
    changes: list[TierChange] = []
    if document.tiers is not None:
        progress, changes = tiers.review(document.tiers, progress, event.occurred_at, program.zone, document.currency)
    if progress.cards:
        cards = _stamps_after_refund(program, member, progress, event, in_full, outcomes)
        if cards != progress.cards:
            progress = replace(progress, cards=cards)
    if "tally" in program.progress_needs:
        progress = tiers.add_tally(progress, event.occurred_at, program.zone, Tally(-clawback, -event.refunded, 0))
    return progress, changes


def _stamps_after_refund(
    program: CompiledProgram,
    member: MemberState,
    progress: Progress,
    event: Refund,
    in_full: bool,
    outcomes: list[RuleOutcome],
) -> dict[str, OpenCard]:
    """The open cards after a refund of an order that earned stamps on them.

    Refunded in full, the order loses its stamps. Refunded by lines, the card's condition is judged again on what
    remains of the order (its lines less the refunded ones, its total less the refund, at the time of purchase):
    the stamps go when it no longer holds. Refunded by amount only, nothing says which items came back, so the
    stamps stay until the order is refunded in full. A completed card is never touched: its reward was given, and
    its stamps are no longer on the member's cards.
    """
    cards = dict(progress.cards)
    conditions = {compiled.card.id: compiled for compiled in program.cards}
    for card_id, card in progress.cards.items():
        own = [s for s in card.stamps if s.order_id == event.order_id]
        if not own:
            continue
        rule_id = f"stamp_card:{card_id}"
        removed = sum(s.count for s in own)
        kept = tuple(s for s in card.stamps if s.order_id != event.order_id)
        if in_full:
            cards[card_id] = OpenCard(card.started_at, kept)
            outcomes.append(RuleOutcome(rule_id, True, 0, f"{removed} stamp(s) of the refunded order removed"))
            continue
        compiled = conditions.get(card_id)
        if not event.lines or compiled is None or any(s.order is None for s in own):
            remains = [_after_refund(s, event) for s in own]
            cards[card_id] = OpenCard(card.started_at, _replaced(card.stamps, own, remains))
            outcomes.append(
                RuleOutcome(
                    rule_id,
                    False,
                    0,
                    f"{removed} stamp(s) kept: a partial refund by amount does not say which items came back; "
                    "the stamps go only when the whole order is refunded",
                )
            )
            continue
        remains = [_after_refund(s, event) for s in own]
        verdict = _still_earns(program, member, progress, compiled, event, remains[0])
        if verdict is None:
            cards[card_id] = OpenCard(card.started_at, _replaced(card.stamps, own, remains))
            outcomes.append(
                RuleOutcome(
                    rule_id,
                    False,
                    0,
                    f"{removed} stamp(s) kept: what remains of the order still meets {compiled.card.when}",
                )
            )
        else:
            cards[card_id] = OpenCard(card.started_at, kept)
            outcomes.append(
                RuleOutcome(rule_id, True, 0, f"{removed} stamp(s) of the refunded order removed: {verdict}")
            )
    return cards


def _after_refund(stamp: Stamp, event: Refund) -> Stamp:
    """The stamp with its order less the refund: fewer items of the refunded lines' products, a smaller total."""
    order = stamp.order
    if order is None:
        return stamp
    returned: dict[str, int] = {}
    for refunded in event.lines:
        returned[refunded.sku] = returned.get(refunded.sku, 0) + refunded.quantity
    lines = []
    for line in order.lines:
        taken = min(returned.get(line.sku, 0), line.quantity)
        if taken:
            returned[line.sku] -= taken
        if line.quantity > taken:
            lines.append(StampedLine(line.sku, line.category, line.quantity - taken, line.unit_price))
    total = max(order.total - event.refunded, Decimal(0))
    return Stamp(stamp.order_id, stamp.count, StampedOrder(order.at, total, tuple(lines), order.channel, order.store))


def _replaced(stamps: tuple[Stamp, ...], old: list[Stamp], new: list[Stamp]) -> tuple[Stamp, ...]:
    swap = {id(before): after for before, after in zip(old, new, strict=True)}
    return tuple(swap.get(id(stamp), stamp) for stamp in stamps)


def _still_earns(
    program: CompiledProgram,
    member: MemberState,
    progress: Progress,
    compiled: CompiledCard,
    event: Refund,
    stamp: Stamp,
) -> str | None:
    """None when what remains of the stamped order still meets the card's condition; else why it does not."""
    order = stamp.order
    assert order is not None
    if not order.lines:
        return "no item of the order is left"
    remaining = Purchase(
        event_id=event.event_id,
        member_id=event.member_id,
        occurred_at=order.at,
        order_id=event.order_id,
        total=order.total,
        lines=tuple(
            OrderLine(sku=line.sku, category=line.category, quantity=line.quantity, unit_price=line.unit_price)
            for line in order.lines
        ),
        channel=order.channel,
        store=order.store,
    )
    local = order.at.astimezone(program.zone)
    context = _LazyContext(remaining, local, member.member_id, member.attributes, progress, program, "purchase")
    try:
        if context.holds(compiled.when):
            return None
    except ExpressionError:
        return None  # a condition that cannot be judged takes nothing back
    return f"what remains of the order no longer meets {compiled.card.when}"


class _LazyContext:
    """Builds the expression variables only when an expression needs them (most purchases need none), and converts
    them for CEL only when an expression the fast path cannot answer needs that."""

    __slots__ = (
        "_attributes",
        "_categories",
        "_cel",
        "_event",
        "_member_id",
        "_plan",
        "_program",
        "_progress",
        "_shared",
        "_value",
        "local",
    )

    def __init__(
        self,
        event: AnyEvent,
        local: datetime,
        member_id: str,
        attributes: Mapping[str, Any],
        progress: Progress,
        program: CompiledProgram,
        trigger: str,
    ) -> None:
        self._event, self._member_id, self._attributes = event, member_id, attributes
        self.local = local  # the event's moment in the program's time zone
        self._progress, self._program = progress, program
        plan = program.context_plans.get((trigger, type(event)))
        if plan is None:
            plan = program.context_plans[(trigger, type(event))] = _ContextPlan.of(program, trigger, type(event))
        self._plan = plan
        self._shared = plan.shared
        self._value: dict[str, Any] | None = None
        self._cel: Variables | None = None
        self._categories: list[str] | None = None

    def holds(self, expression: Expression) -> bool:
        verdict = expression.judge(self._value if self._value is not None else self.value, self.for_cel)
        if verdict is True or verdict is False:
            return verdict
        raise ExpressionError(verdict)

    def for_cel(self) -> Variables:
        if self._cel is None:
            self._cel = Bindings(self.value) if self._shared else self.value
        return self._cel

    @property
    def value(self) -> dict[str, Any]:
        if self._value is None:
            plan = self._plan
            variables: dict[str, Any] = {}
            if plan.event is not None:
                event = self._event
                found = {}
                for name, get in plan.event:  # a loop: a comprehension costs a frame of its own
                    found[name] = get(event)
                for name, work_out in plan.engine:
                    found[name] = work_out(self)
                variables["event"] = found
            if plan.member is not None:
                member = {}
                for name, read in plan.member:
                    member[name] = read(self)
                variables["member"] = member
            self._value = variables
        return self._value

    def categories(self) -> list[str]:
        """The categories of the event's lines, sorted, worked out once for every field that reads them."""
        categories = self._categories
        if categories is None:
            event = self._event
            lines = event.lines if isinstance(event, (Purchase, Refund)) else ()
            categories = self._categories = sorted({line.category for line in lines if line.category}) if lines else []
        return categories


def _new_categories(context: _LazyContext) -> list[str]:
    categories = context.categories()
    if not categories:
        return []
    bought = context._progress.categories
    return [c for c in categories if c not in bought]


# Fields CEL sees on the event besides the event's own, each worked out by its own function, so building a context
# calls only those some expression reads. Local time makes "weekdays 14:00-17:00 in the store" a plain condition
# (event.local_weekday <= 5 && event.local_hour >= 14 && ...); new_categories needs the member's progress: the
# categories they bought before.
_ENGINE_FIELDS: dict[str, Callable[[_LazyContext], Any]] = {
    "local_hour": lambda c: c.local.hour,
    "local_minute": lambda c: c.local.minute,
    "local_time": lambda c: f"{c.local.hour:02d}:{c.local.minute:02d}",
    "local_weekday": lambda c: c.local.isoweekday(),  # Monday 1 .. Sunday 7
    "local_date": lambda c: c.local.date().isoformat(),
    "categories": _LazyContext.categories,
    "category_count": lambda c: len(c.categories()),
    "new_categories": _new_categories,
}


@dataclass(frozen=True, slots=True)
class _ContextPlan:
    """What the expressions of one trigger read of an event of one type, in the order the variables are built."""

    event: tuple[tuple[str, Getter], ...] | None  # None: no expression reads the event
    engine: tuple[tuple[str, Callable[[_LazyContext], Any]], ...]  # the fields the engine works out (local time…)
    member: tuple[tuple[str, Callable[[_LazyContext], Any]], ...] | None  # None: no expression reads the member
    shared: bool  # whether CEL variables are converted once and shared by the trigger's expressions

    @classmethod
    def of(cls, program: CompiledProgram, trigger: str, event_type: type) -> "_ContextPlan":
        shape = program.context_shapes.get(trigger, {})
        event_fields = shape.get("event", frozenset())
        member_fields = shape.get("member", frozenset())
        engine = _ENGINE_EVENT_FIELDS if event_fields is None else event_fields & _ENGINE_EVENT_FIELDS
        return cls(
            None if event_fields == frozenset() else expression_getters(event_type, event_fields),
            tuple((name, _ENGINE_FIELDS[name]) for name in sorted(engine)) if event_fields != frozenset() else (),
            None
            if member_fields == frozenset()
            else tuple(
                (name, read) for name, read in _MEMBER_FIELDS.items() if member_fields is None or name in member_fields
            ),
            trigger in program.shared_bindings,
        )


_MEMBER_FIELDS: dict[str, Callable[[_LazyContext], Any]] = {
    "id": lambda c: c._member_id,
    "attributes": lambda c: dict(c._attributes),
    "tier": lambda c: c._progress.tier or "",
    "visits": lambda c: c._progress.lifetime.visits,
    "categories": lambda c: sorted(c._progress.categories),
}


_ENGINE_EVENT_FIELDS = frozenset(_ENGINE_FIELDS)
