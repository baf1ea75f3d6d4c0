"""Reading and writing what decisions remember beyond points: member progress, tier changes, rewards given for
free, campaign budgets. Called by single and batch ingestion inside their transaction, under the member locks."""

__all__ = ["Effects", "budget_limits", "load", "load_one", "lock_budgets", "record"]

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select, update

from patron.domain.engine import CompiledProgram, Decision
from patron.domain.progress import Progress
from patron.services import outbox
from patron.services.errors import Conflict
from patron.services.redemptions import coupon_code
from patron.store.bulk import Together, upsert_rows
from patron.store.progress import load, load_one
from patron.store.tables import campaign_budgets, member_progress, reward_grants, tier_changes


def budget_limits(programs: Iterable[CompiledProgram], moments: Iterable[datetime]) -> dict[str, int]:
    """The points budget of each budgeted campaign running at one of `moments` (the smallest, if versions differ).
    Only those are locked: a campaign not running at the time of an event cannot spend from its budget."""
    times = sorted(set(moments))
    limits: dict[str, int] = {}
    for program in programs:
        for c in program.document.campaigns:
            if c.budget_points is not None and any(c.starts_at <= t < c.ends_at for t in times):
                limits[c.id] = min(c.budget_points, limits.get(c.id, c.budget_points))
    return limits


def lock_budgets(conn: Connection, program_id: int, budgets: dict[str, int]) -> dict[str, int]:
    """Points left per budgeted campaign. In a write transaction the budget rows stay locked until it ends: the
    campaign's spending is then serialised, so a budget is never passed however many purchases race for it."""
    if not budgets:
        return {}
    query = _LOCK_BUDGETS if conn.get_execution_options().get("patron_write") else _READ_BUDGETS
    spent = {
        r.campaign_id: r.spent for r in conn.execute(query, {"program_id": program_id, "campaigns": sorted(budgets)})
    }
    return {c: max(limit - spent.get(c, 0), 0) for c, limit in budgets.items()}


_READ_BUDGETS = (
    select(campaign_budgets.c.campaign_id, campaign_budgets.c.spent)
    .where(
        campaign_budgets.c.program_id == bindparam("program_id"),
        campaign_budgets.c.campaign_id.in_(bindparam("campaigns", expanding=True)),
    )
    .order_by(campaign_budgets.c.campaign_id)
)
_LOCK_BUDGETS = _READ_BUDGETS.with_for_update()
_SPEND_BUDGET = (
    update(campaign_budgets)
    .where(
        campaign_budgets.c.program_id == bindparam("budget_program"),
        campaign_budgets.c.campaign_id == bindparam("campaign"),
        campaign_budgets.c.spent + bindparam("points") <= bindparam("budget"),
    )
    .values(spent=campaign_budgets.c.spent + bindparam("points"))
)


@dataclass(frozen=True, slots=True)
class Effects:
    """One decision's effects beyond the ledger, for one member."""

    member_id: int
    event_row_id: int | None
    occurred_at: datetime
    decision: Decision
    # One code per grant of the decision, drawn before the receipt was written so that it can name them
    # (`draw_codes`); drawn here when none were.
    coupon_codes: Sequence[str] | None = None


def draw_codes(decision: Decision) -> list[str]:
    """A fresh coupon code for each reward the decision grants, in order."""
    return [coupon_code() for _ in decision.grants]


def record(
    conn: Connection,
    program_id: int,
    effects: Sequence[Effects],
    final_progress: dict[int, Progress],
    limits: dict[str, int],
    *,
    now: datetime,
    together: Together | None = None,
) -> list[str]:
    """Writes progress (the last state of each member), tier changes, reward grants and campaign spending.
    Returns the coupon codes granted, in the order of the decisions' grants. With `together`, progress waits to go
    with its writes, which are sent before rows that point at them."""
    _save_progress(conn, final_progress, now, together)
    changes = [
        {
            "program_id": program_id,
            "member_id": e.member_id,
            "from_tier": c.from_tier,
            "to_tier": c.to_tier,
            "reason": c.reason,
            "occurred_at": c.at,
            "event_id": e.event_row_id,
            "recorded_at": now,
        }
        for e in effects
        for c in e.decision.tier_changes
    ]
    if changes:
        if together is not None:
            together.flush()  # the changes name event rows that may be held
        conn.execute(insert(tier_changes), changes)
    codes: list[str] = []
    grants = []
    announced: list[outbox.Emitted] = []
    for e in effects:
        for c in e.decision.tier_changes:
            data = {"from_tier": c.from_tier, "to_tier": c.to_tier, "reason": c.reason}
            announced.append(outbox.Emitted(program_id, outbox.EventType.TIER_CHANGED, e.member_id, data, c.at))
        by_source: dict[str, list[str]] = {}
        drawn = draw_codes(e.decision) if e.coupon_codes is None else e.coupon_codes
        for grant, code in zip(e.decision.grants, drawn, strict=True):
            codes.append(code)
            by_source.setdefault(grant.source, []).append(code)
            data = {"reward_id": grant.reward_id, "coupon_code": code, "source": grant.source}
            announced.append(
                outbox.Emitted(program_id, outbox.EventType.COUPON_ISSUED, e.member_id, data, e.occurred_at)
            )
            grants.append(
                {
                    "program_id": program_id,
                    "member_id": e.member_id,
                    "reward_id": grant.reward_id,
                    "reward_kind": grant.reward_kind,
                    "source": grant.source,
                    "reason": grant.reason,
                    "coupon_code": code,
                    "event_id": e.event_row_id,
                    "granted_at": e.occurred_at,
                }
            )
        for signal in e.decision.signals:
            if signal.type == outbox.EventType.STAMP_CARD_COMPLETED.value:
                source = f"stamp_card:{signal.data['card']}"
                left = by_source.get(source)
                data = {**signal.data, "coupon_code": left.pop(0) if left else None}
                announced.append(
                    outbox.Emitted(program_id, outbox.EventType.STAMP_CARD_COMPLETED, e.member_id, data, e.occurred_at)
                )
    if grants:
        if together is not None:
            together.flush()  # the grants name event rows that may be held
        conn.execute(insert(reward_grants), grants)
    outbox.emit(conn, announced, now=now)  # at once: these come before the caller's own messages
    spent: dict[str, int] = {}
    for e in effects:
        for campaign_id, points in e.decision.campaign_spend:
            spent[campaign_id] = spent.get(campaign_id, 0) + points
    for campaign_id, points in sorted(spent.items()):
        limit = limits.get(campaign_id)
        if limit is None:
            continue  # unbudgeted: nothing to count
        # Budget rows were locked before deciding; the condition is the database's own guard all the same.
        spend = {"budget_program": program_id, "campaign": campaign_id, "points": points, "budget": limit}
        if conn.execute(_SPEND_BUDGET, spend).rowcount != 1:
            raise Conflict(f"campaign {campaign_id!r} has no budget left", field="campaign")
    return codes


def _save_progress(
    conn: Connection, final_progress: dict[int, Progress], now: datetime, together: Together | None
) -> None:
    if not final_progress:
        return
    upsert_rows(
        conn,
        member_progress,
        [{"member_id": m, "state": p.to_json(), "updated_at": now} for m, p in sorted(final_progress.items())],
        keys=["member_id"],
        replace=["state", "updated_at"],
        together=together,
    )
