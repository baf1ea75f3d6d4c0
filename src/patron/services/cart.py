"""Cart evaluation: what an order would earn, the coupons that apply to it, and how close the member is to more.

Nothing is written. The earning comes from the same engine and member state that ingestion uses (as a dry run
does), so the preview is what the purchase would really earn if it were reported now.
"""

import secrets
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from patron.domain.amounts import Money
from patron.domain.carts import Cart
from patron.domain.coupons import normalize_code
from patron.domain.engine import CompiledProgram, Decision, EventRejected, MemberState, decide
from patron.domain.events import Purchase
from patron.services import coupons
from patron.services import members as member_service
from patron.services.coupons import CouponCheck
from patron.services.errors import Invalid, NotFound

# The engine decides a member's state and an event; ingestion's own function builds that state.
from patron.services.events import _member_state as member_state_for
from patron.services.program_cache import ProgramCache
from patron.services.views import Balance, RuleResult
from patron.store.database import Database
from patron.store.members import MemberRow

MINOR = Decimal("0.01")
# How far above the cart an upsell may point: beyond this, "spend more" is no longer a nudge.
MAX_NUDGE_FACTOR = 2


class CartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cart: Cart
    coupons: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default=[], max_length=20)
    channel: Annotated[str, Field(max_length=64)] = ""
    store: Annotated[str, Field(max_length=64)] = ""


class Hint(BaseModel):
    kind: str = Field(description="spend_more (a rule), coupon (a coupon's minimum spend) or stamp_card")
    message: str
    spend_more: Money | None = None
    extra_points: int | None = None
    source: str = Field(description="the rule, coupon code or card the hint is about")


class CartEvaluation(BaseModel):
    member_id: str
    program_version: int
    points: int = Field(description="what the order would earn, in total")
    pending_points: int
    rules: list[RuleResult]
    notes: list[str]
    coupons: list[CouponCheck] = Field(description="codes sent with the cart, and the member's own codes")
    best_discount: Money = Field(description="the largest discount one of the applicable coupons gives")
    hints: list[Hint]
    balance: Balance


def evaluate(
    db: Database, cache: ProgramCache, program_id: int, member_external_id: str, request: CartRequest, *, now: datetime
) -> CartEvaluation:
    with db.read() as conn:
        member = member_service.require(conn, program_id, member_external_id)
        program = cache.in_force(conn, program_id, now)
        purchase = Purchase(
            event_id="cart-preview",
            member_id=member.external_id,
            # An id no order has, so the preview is judged as a new order.
            order_id=f"cart-preview-{secrets.token_hex(8)}",
            occurred_at=now,
            total=request.cart.total,
            lines=request.cart.lines,
            channel=request.channel,
            store=request.store,
        )
        state = member_state_for(conn, program_id, program, member, purchase)
        decision = _decide(program, state, purchase)
        checks = _coupon_checks(conn, program_id, member, request, now=now)
        hints = (
            _rule_hints(program, state, purchase, decision) + _stamp_hints(program, decision) + _coupon_hints(checks)
        )
        applicable = [c.discount for c in checks if c.applies]
        return CartEvaluation(
            member_id=member.external_id,
            program_version=decision.program_version,
            points=decision.points,
            pending_points=decision.pending_points,
            rules=[
                RuleResult(rule_id=o.rule_id, fired=o.fired, points=o.points, reason=o.reason)
                for o in decision.outcomes
            ],
            notes=list(decision.notes),
            coupons=checks,
            best_discount=max(applicable, default=Decimal(0)),
            hints=hints,
            balance=member_service.balance(conn, member.id),
        )


def _decide(program: CompiledProgram, state: MemberState, purchase: Purchase) -> Decision:
    try:
        return decide(program, state, purchase)
    except EventRejected as exc:
        raise Invalid(exc.message, field=f"cart.{exc.field}") from exc


def _coupon_checks(
    conn: Connection, program_id: int, member: MemberRow, request: CartRequest, *, now: datetime
) -> list[CouponCheck]:
    sent = list(dict.fromkeys(normalize_code(c) for c in request.coupons))
    checks = []
    for code in sent:
        try:
            checks.append(coupons.check_code(conn, program_id, code, request.cart, member, now=now))
        except NotFound as exc:
            raise NotFound(exc.detail, field="coupons") from exc
    own = [c for c in coupons.member_coupons(conn, program_id, member, request.cart, now=now) if c.code not in sent]
    return checks + own


def _rule_hints(program: CompiledProgram, state: MemberState, purchase: Purchase, base: Decision) -> list[Hint]:
    """For each purchase rule that does not fire on this cart, the least extra spend that would make it fire,
    if that is within reach (at most the cart's total again, plus 100)."""
    hints = []
    fired = {o.rule_id for o in base.outcomes if o.fired}
    ceiling = purchase.total * MAX_NUDGE_FACTOR + 100
    for compiled in program.rules_by_trigger.get("purchase", ()):
        rule = compiled.rule
        if rule.id in fired or compiled.when is None:
            continue

        def fires_with(extra: Decimal, rule_id: str = rule.id) -> Decision | None:
            probe = purchase.model_copy(update={"total": purchase.total + extra})
            try:
                decision = decide(program, state, probe)
            except EventRejected:
                return None
            return decision if any(o.rule_id == rule_id and o.fired for o in decision.outcomes) else None

        if fires_with(ceiling - purchase.total) is None:
            continue
        # Conditions on the total are thresholds: bisect, in cents, for the least extra spend that fires.
        low, high = 0, int((ceiling - purchase.total) / MINOR)
        while low + 1 < high:
            middle = (low + high) // 2
            if fires_with(middle * MINOR) is None:
                low = middle
            else:
                high = middle
        extra = high * MINOR
        decision = fires_with(extra)
        if decision is None:
            continue
        gained = decision.points - base.points
        what = rule.description or f"rule {rule.id}"
        hints.append(
            Hint(
                kind="spend_more",
                message=f"spend {extra} more for {what} (+{gained} points)",
                spend_more=extra,
                extra_points=gained,
                source=rule.id,
            )
        )
    return hints


def _stamp_hints(program: CompiledProgram, decision: Decision) -> list[Hint]:
    """How many stamps each card the member has started (or this cart starts) still needs for its reward."""
    if decision.progress is None:
        return []
    hints = []
    for card in program.document.stamp_cards:
        stamped = any(o.rule_id == f"stamp_card:{card.id}" and o.fired for o in decision.outcomes)
        open_card = decision.progress.cards.get(card.id)
        count = open_card.count if open_card is not None else 0
        if not stamped and count == 0:
            continue
        to_go = card.size - count
        reward = program.document.reward(card.reward)
        prize = reward.name if reward is not None else card.reward
        stamps = "stamp" if to_go == 1 else "stamps"
        after = "after this order, " if stamped else ""
        hints.append(Hint(kind="stamp_card", message=f"{after}{to_go} more {stamps} to {prize}", source=card.id))
    return hints


def _coupon_hints(checks: list[CouponCheck]) -> list[Hint]:
    return [
        Hint(
            kind="coupon",
            message=f"spend {c.spend_more} more to use coupon {c.code} ({c.description})",
            spend_more=c.spend_more,
            source=c.code,
        )
        for c in checks
        if not c.applies and c.spend_more is not None
    ]
