"""Win-back offers: members lapsed from a running campaign's target hear of it, once, without coming back first.

The engine applies a lapsed-member campaign when the member's next purchase arrives; this job is how a member
who never comes back learns there is a reason to. A member is lapsed when their last order is at least the
campaign's `lapsed_days` old (the engine's own test); a member who never bought is new, not lapsed. Each offer
is recorded in `campaign_offers` and announced as `campaign.offered` in the same transaction, so a rerun, a second
worker, or an outbox pruned since finds nothing left to announce.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, exists, func, insert, select

from patron.domain.program import Campaign
from patron.services import outbox
from patron.services.outbox import Emitted, EventType
from patron.services.program_cache import ProgramCache
from patron.store.members import lock_many
from patron.store.sets import id_in
from patron.store.tables import campaign_budgets, campaign_offers, orders
from patron.worker.registry import JobContext, JobKind, Schedule


def offer_to_lapsed(ctx: JobContext) -> Mapping[str, Any]:
    """Announces every running lapsed-member campaign to the members lapsed now, in chunks of members."""
    cache = ProgramCache()
    campaigns = offered = 0
    for program_id, campaign in _lapsed_campaigns(ctx, cache):
        campaigns += 1
        offered += _offer(ctx, program_id, campaign)
    return {"campaigns": campaigns, "members": offered}


def _lapsed_campaigns(ctx: JobContext, cache: ProgramCache) -> list[tuple[int, Campaign]]:
    with ctx.db.read() as conn:
        found: list[tuple[int, Campaign]] = []
        for program_id, document in cache.all_in_force(conn, ctx.now):
            running = [
                c for c in document.campaigns if c.target.lapsed_days is not None and c.starts_at <= ctx.now < c.ends_at
            ]
            found.extend((program_id, c) for c in running if not _budget_spent(conn, program_id, c))
        return found


def _budget_spent(conn: Connection, program_id: int, campaign: Campaign) -> bool:
    """A campaign whose budget is gone gives nothing any more: offering it would be a promise not kept."""
    if campaign.budget_points is None:
        return False
    spent = conn.execute(
        select(campaign_budgets.c.spent).where(
            campaign_budgets.c.program_id == program_id, campaign_budgets.c.campaign_id == campaign.id
        )
    ).scalar()
    return spent is not None and int(spent) >= campaign.budget_points


def _lapsed_query(program_id: int, campaign: Campaign, now: datetime) -> Any:
    assert campaign.target.lapsed_days is not None
    cutoff = now - timedelta(days=campaign.target.lapsed_days)
    last_purchase = func.max(orders.c.occurred_at)
    offered = exists().where(
        and_(
            campaign_offers.c.program_id == program_id,
            campaign_offers.c.campaign_id == campaign.id,
            campaign_offers.c.member_id == orders.c.member_id,
        )
    )
    return (
        select(orders.c.member_id, last_purchase.label("last_purchase_at"))
        .where(orders.c.program_id == program_id, ~offered)
        .group_by(orders.c.member_id)
        .having(last_purchase <= cutoff)
        .order_by(orders.c.member_id)
    )


def _offer(ctx: JobContext, program_id: int, campaign: Campaign) -> int:
    query = _lapsed_query(program_id, campaign, ctx.now)
    after = offered = 0
    while True:
        with ctx.db.read() as conn:
            chunk = [
                int(m)
                for m in conn.execute(query.where(orders.c.member_id > after).limit(ctx.settings.job_chunk)).scalars()
            ]
        if not chunk:
            return offered
        offered += ctx.db.run(lambda conn: _offer_chunk(conn, program_id, campaign, chunk, ctx.now))  # noqa: B023
        after = chunk[-1]
        ctx.chunk_done(len(chunk))


def _offer_chunk(conn: Connection, program_id: int, campaign: Campaign, member_ids: list[int], now: datetime) -> int:
    # Under the members' locks, asked again: a purchase or another worker's offer since the read settles it.
    lock_many(conn, member_ids)
    lapsed = conn.execute(
        _lapsed_query(program_id, campaign, now).where(id_in(conn, orders.c.member_id, member_ids))
    ).all()
    if not lapsed:
        return 0
    conn.execute(
        insert(campaign_offers),
        [
            {"program_id": program_id, "campaign_id": campaign.id, "member_id": m.member_id, "offered_at": now}
            for m in lapsed
        ],
    )
    outbox.emit(
        conn,
        [
            Emitted(
                program_id,
                EventType.CAMPAIGN_OFFERED,
                int(m.member_id),
                _offer_data(campaign, m.last_purchase_at),
                now,
                dedupe_key=f"{EventType.CAMPAIGN_OFFERED.value}:{campaign.id}:{m.member_id}",
            )
            for m in lapsed
        ],
        now=now,
    )
    return len(lapsed)


def _offer_data(campaign: Campaign, last_purchase_at: datetime) -> dict[str, Any]:
    effect = campaign.effect
    return {
        "campaign_id": campaign.id,
        "campaign_name": campaign.name,
        "ends_at": campaign.ends_at.isoformat(),
        "lapsed_days": campaign.target.lapsed_days,
        "last_purchase_at": last_purchase_at.isoformat(),
        "multiplier": str(effect.multiplier) if effect.multiplier is not None else None,
        "bonus_points": effect.bonus_points,
        "reward": effect.reward,
    }


OFFER_TO_LAPSED = JobKind(
    "campaigns.offer_to_lapsed",
    offer_to_lapsed,
    "Announce campaign.offered, once per campaign and member, to members lapsed from a running campaign's target.",
    Schedule(timedelta(days=1)),
)
